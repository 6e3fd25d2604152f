using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Requests a hostile or merely buggy agent sends, each one repeatedly, against a pool of two keys and one of five: the
/// provider refuses them (often echoing the agent's own words: "credit_note: Extra inputs are not permitted"), and no
/// such answer may take a key out of service. Every key stays in service, on every replica; other agents are served
/// meanwhile; the agent gets the provider's own answer; and a bad request costs at most two upstream calls.
/// </summary>
public sealed class HostileRequestTests
{
    private const int Repetitions = 4;
    private const string CreditText = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.";

    private static readonly Dictionary<string, Hostile> Shapes = new Hostile[]
    {
        new("echoed field credit_note", Body("\"credit_note\":\"paid\""), 400, "credit_note: Extra inputs are not permitted"),
        new("echoed field billing_address", Body("\"billing_address\":\"x\""), 400, "billing_address: Extra inputs are not permitted"),
        new("a field named as the credit-balance text", Body($"\"{CreditText}\":1"), 400, CreditText + ": Extra inputs are not permitted"),
        new("echoed beta billing-2026-01-01", Body(), 400, "Unexpected value(s) `billing-2026-01-01` for the `anthropic-beta` header", Beta: "billing-2026-01-01"),
        new("echoed beta insufficient-credit-2026-01-01", Body(), 400, "Unexpected value(s) `insufficient-credit-2026-01-01`", Beta: "prompt-caching-2024-07-31,insufficient-credit-2026-01-01"),
        new("max_tokens missing", """{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}""", 400, "max_tokens: Field required"),
        new("an unknown model named for credit", Body(model: "claude-credit-9"), 404, "model: claude-credit-9"),
        new("a model the organization may not use", Body(model: "claude-opus-4-1"), 403, "Your organization does not have access to the model `claude-opus-4-1`"),
        new("input over the organization's per-minute limit", Body($"\"system\":\"{new string('x', 12_000)}\""), 429, "This request would exceed the rate limit for your organization"),
        new("an image that is not one", Body("\"system\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"bm90LWFuLWltYWdl\"}}]"), 400, "does not appear to be a valid png image"),
        new("a body the front's firewall blocks (HTML 403)", Body("\"system\":\"<script>alert(1)</script>\""), 403, "Request blocked"),
        new("a path the front guards (HTML 401)", null, 401, "401 Authorization Required", Path: "/v1/organizations/me", Method: "GET"),
        new("a body that is not JSON", "{\"model\": \"claude-sonnet-4-5\",", 400, "There was an error parsing the body of your request"),
        new("count_tokens with max_tokens", Body(), 400, "max_tokens: Extra inputs are not permitted", Path: "/v1/messages/count_tokens"),
        new("another organization's OpenAI-Organization", Chat(), 200, "Hello from the simulated upstream.", Kind: "openai", Header: ("OpenAI-Organization", "org-someone-else")),
        new("another project's OpenAI-Project", Chat(), 200, "Hello from the simulated upstream.", Kind: "openai", Header: ("OpenAI-Project", "proj_someone_else")),
        new("echoed argument billing_hard_limit", Chat("\"billing_hard_limit\":true"), 400, "Unrecognized request argument supplied: billing_hard_limit", Kind: "openai"),
        new("an unknown model named for quota", Chat(model: "gpt-insufficient-quota"), 404, "The model `gpt-insufficient-quota` does not exist", Kind: "openai"),
    }.ToDictionary(s => s.Name);

    public static TheoryData<string> ShapeNames => [.. Shapes.Keys];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void TheCatalogue_HasAtLeastFifteenShapes() => Assert.True(Shapes.Count >= 15);

    [Theory]
    [MemberData(nameof(ShapeNames))]
    public Task HostileRequest_AgainstTwoKeys_BlamesNoKey(string shape) => SendRepeatedlyAsync(Shapes[shape], keys: 2);

    [Theory]
    [MemberData(nameof(ShapeNames))]
    public Task HostileRequest_AgainstFiveKeys_BlamesNoKey_AndCostsAtMostTwoCalls(string shape) => SendRepeatedlyAsync(Shapes[shape], keys: 5);

    [Fact]
    public async Task RequestSpecificRejections_AreCountedPerKeyModelAndReason_NotRecordedOneByOne()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["key-1", "key-2"]);
        s.Upstream.SetModelFault("claude-opus-4-1", ModelFault.Forbidden);
        for (var i = 0; i < 3; i++)
        {
            using (await SendAsync(s.Proxy, Shapes["echoed field credit_note"]))
            {
            }

            using (await SendAsync(s.Proxy, Shapes["a model the organization may not use"]))
            {
            }
        }

        var keys = (await s.StatusAsync()).GetProperty("pools")[0].GetProperty("keys").EnumerateArray().ToDictionary(k => k.GetProperty("name").GetString()!);
        static (string, string, int, int) Row(System.Text.Json.JsonElement r)
            => (r.GetProperty("model").GetString()!, r.GetProperty("reason").GetString()!, r.GetProperty("status").GetInt32(), r.GetProperty("count").GetInt32());
        var first = keys["key-1"].GetProperty("rejections").EnumerateArray().Select(Row).ToList();
        Assert.Contains(("claude-sonnet-4-5", "client_error", 400, 3), first);
        Assert.Contains(("claude-opus-4-1", "refused", 403, 3), first);
        Assert.Equal([("claude-opus-4-1", "request_at_fault", 403, 3)], keys["key-2"].GetProperty("rejections").EnumerateArray().Select(Row));
        Assert.All(keys.Values, k => Assert.Equal("usable", k.GetProperty("state").GetString()));

        var metrics = Telemetry.PrometheusText.Parse(await s.Proxy.Management.GetStringAsync("/metrics", Ct));
        Assert.Equal(3, metrics.Value("afp_rejections_total", ("key", "key-1"), ("status", "400"), ("model_family", "sonnet"), ("reason", "client_error")));
        Assert.Equal(3, metrics.Value("afp_rejections_total", ("key", "key-2"), ("status", "403"), ("model_family", "opus"), ("reason", "request_at_fault")));
        // Nothing of it is an event: no audit line, no alert per answer.
        Assert.DoesNotContain(s.Proxy.Logs.Messages(LogEventLevel.Warning), m => m.Contains("key-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task HostileRequests_OnOneReplica_LeaveEveryKeyInServiceOnTheOther()
    {
        await using var d = await Deployment.StartAsync(provider: new SimulatedProviderOptions { InputTokensPerMinute = 2_000 });
        var a = await d.AddReplicaAsync();
        var b = await d.AddReplicaAsync();
        d.Upstream.SetModelFault("claude-opus-4-1", ModelFault.Forbidden);

        foreach (var shape in Shapes.Values.Where(s => s.Kind == "anthropic"))
        {
            using var response = await SendAsync(a, shape);
            Assert.Equal(shape.Status, (int)response.StatusCode);
        }

        Assert.All(Keys(a), k => Assert.Equal(KeyState.Usable, k.Health.State));

        // A real death on A, by contrast, is shared: B learns it. Had a hostile request been blamed, B would have learned
        // that first, and a dead key's first failure is the one it keeps: each must be the revocation's 401.
        d.Upstream.SetKeyFault(d.Backup, KeyFault.Revoked);
        d.Upstream.SetKeyFault(d.Primary, KeyFault.Revoked);
        using (await a.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct))
        {
        }

        await FailoverTests.WaitUntilAsync(() => Keys(b).All(k => k.Health.State == KeyState.Dead));
        d.Upstream.SetKeyFault(d.Primary, KeyFault.None);
        d.Upstream.SetKeyFault(d.Backup, KeyFault.None);
        Assert.All(Keys(b).Concat(Keys(a)), k => Assert.Equal(KeyFailureStatus.Revoked, k.Health.LastFailure?.Status));
    }

    private static async Task SendRepeatedlyAsync(Hostile shape, int keys)
    {
        var names = Enumerable.Range(1, keys).Select(i => $"key-{i}").ToArray();
        await using var s = await Scenario.StartAsync(kind: shape.Kind, keyNames: names, provider: new SimulatedProviderOptions { InputTokensPerMinute = 2_000 });
        s.Upstream.SetModelFault("claude-opus-4-1", ModelFault.Forbidden);
        using var otherAgent = s.Proxy.CreateAgentClient(s.Proxy.ClientToken);

        for (var i = 0; i < Repetitions; i++)
        {
            var callsBefore = s.Upstream.RequestCount + s.Upstream.MisdirectedRequests.Count;
            using (var response = await SendAsync(s.Proxy, shape))
            {
                // The provider's own answer (or its front's), not the proxy's.
                var body = await response.Content.ReadAsStringAsync(Ct);
                Assert.True(shape.Status == (int)response.StatusCode, $"{(int)response.StatusCode}: {body}");
                Assert.Contains(shape.Says, body, StringComparison.Ordinal);
                Assert.DoesNotContain("AuthFailoverProxy:", body, StringComparison.Ordinal);
            }

            Assert.InRange(s.Upstream.RequestCount - callsBefore, 1, 2);

            // Another agent meanwhile is served by the first key, as before.
            using var normal = shape.Kind == "openai"
                ? await otherAgent.PostAsync("/openai/v1/chat/completions", new StringContent(Chat(), Encoding.UTF8, "application/json"), Ct)
                : await otherAgent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
            Assert.Equal(HttpStatusCode.OK, normal.StatusCode);
            Assert.Equal("key-1", FailoverTests.Header(normal, "x-afp-key"));
        }

        var status = await s.StatusAsync();
        var states = status.GetProperty("pools")[0].GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("state").GetString()).ToList();
        Assert.All(states, state => Assert.Equal("usable", state));
        Assert.Equal(keys, states.Count);
        // Not even in part: no key is out for a model, a model class or a kind of client.
        Assert.All(Keys(s.Proxy), k => Assert.Null(k.Scopes));
    }

    private static async Task<HttpResponseMessage> SendAsync(ProxyHost proxy, Hostile shape)
    {
        var path = shape.Path ?? (shape.Kind == "openai" ? "/openai/v1/chat/completions" : "/v1/messages");
        var request = new HttpRequestMessage(new HttpMethod(shape.Method ?? "POST"), path);
        if (shape.Body is not null)
        {
            request.Content = new StringContent(shape.Body, Encoding.UTF8, "application/json");
        }

        request.Headers.Add(shape.Kind == "openai" ? "Authorization" : "x-api-key", shape.Kind == "openai" ? "Bearer " + proxy.ClientToken : proxy.ClientToken);
        if (shape.Beta is not null)
        {
            request.Headers.Add("anthropic-beta", shape.Beta);
        }

        if (shape.Header is { } header)
        {
            request.Headers.Add(header.Name, header.Value);
        }

        using var client = proxy.CreateAgentClient();
        var response = await client.SendAsync(request, Ct);
        await response.Content.LoadIntoBufferAsync(Ct);
        return response;
    }

    private static IEnumerable<PoolKey> Keys(ProxyHost replica) => replica.Services.GetRequiredService<PoolRegistry>().Pools.Single().Keys;

    private static string Body(string? extra = null, string model = "claude-sonnet-4-5")
        => $$"""{"model":"{{model}}","max_tokens":32,"messages":[{"role":"user","content":"Hello"}]{{(extra is null ? string.Empty : "," + extra)}}}""";

    private static string Chat(string? extra = null, string model = "gpt-4o")
        => $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hello"}]{{(extra is null ? string.Empty : "," + extra)}}}""";

    /// <summary>One hostile shape: what is sent, and what the provider (or its front) answers to it.</summary>
    private sealed record Hostile(
        string Name,
        string? Body,
        int Status,
        string Says,
        string Kind = "anthropic",
        string? Path = null,
        string? Method = null,
        string? Beta = null,
        (string Name, string Value)? Header = null);

    private static class KeyFailureStatus
    {
        public const int Revoked = 401;
    }
}
