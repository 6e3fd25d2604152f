using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Demo;

/// <summary>
/// The simulated provider is only as good as its likeness to the real one, so it is checked on its own, called
/// directly: HTTPS under its own name behind a name-routed front, credentials only in their real scheme, and the real
/// provider's answers to what a request asks (echoing the client's own field and beta names) and to what an
/// organization may do (models it may not use, limits per model, streams that fail in their first event).
/// </summary>
public sealed class SimulatedProviderTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Front_ServesItsOwnName_421sUnknownNames_AndRoutesAnotherSitesNameThere()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        // A careless client that does not check the certificate's name, so the front itself must refuse the name.
        using var client = Client(provider, checkNames: false);
        var key = Secrets.AnthropicApiKey();

        using var own = await client.SendAsync(Get("/v1/models", key), Ct);
        using var unknown = await client.SendAsync(Get("/v1/models", key, host: "proxy.internal:8080"), Ct);
        using var other = await client.SendAsync(Get("/v1/models", key, host: "billing.other-tenant.test"), Ct);

        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, unknown.StatusCode);
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Contains("billing.other-tenant.test", await other.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(2, provider.MisdirectedRequests.Count);
        Assert.Equal(key, provider.MisdirectedRequests[1].Key);
        Assert.Equal(1, provider.RequestCount);
    }

    [Fact]
    public async Task ClientThatChecksNames_FailsTheHandshake_WhenItAsksForAnotherName()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);

        // .NET takes the TLS name from Host: the front's default certificate does not carry this one.
        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => client.SendAsync(Get("/v1/models", Secrets.AnthropicApiKey(), host: "127.0.0.1:8080"), Ct));

        Assert.Equal(HttpRequestError.SecureConnectionError, failure.HttpRequestError);
        Assert.Equal(0, provider.RequestCount);
    }

    [Fact]
    public async Task OAuthToken_OnlyAsBearerWithTheBeta_OtherwiseTheRealRefusals()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        var token = Secrets.AnthropicOAuthToken();

        using var asApiKey = await client.SendAsync(Get("/v1/models", token), Ct);
        var bearer = Get("/v1/models", key: null);
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var withoutBeta = await client.SendAsync(bearer, Ct);
        var withBeta = Get("/v1/models", key: null);
        withBeta.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        withBeta.Headers.Add("anthropic-beta", "prompt-caching-2024-07-31,oauth-2025-04-20");
        using var accepted = await client.SendAsync(withBeta, Ct);

        Assert.Equal((401, "invalid x-api-key"), await ErrorAsync(asApiKey));
        Assert.Equal((401, "OAuth authentication is currently not supported."), await ErrorAsync(withoutBeta));
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Theory]
    [InlineData("""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[],"credit_note":"x"}""", null, 400, "credit_note: Extra inputs are not permitted")]
    [InlineData("""{"model":"claude-sonnet-4-5","messages":[]}""", null, 400, "max_tokens: Field required")]
    [InlineData("""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[]}""", "billing-2026-01-01", 400, "Unexpected value(s) `billing-2026-01-01` for the `anthropic-beta` header")]
    [InlineData("""{"model":"claude-nonexistent-9","max_tokens":16,"messages":[]}""", null, 404, "model: claude-nonexistent-9")]
    public async Task ABadRequest_GetsTheRealAnswer_EchoingWhatTheClientSent(string body, string? beta, int status, string message)
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        var request = Post("/v1/messages", Secrets.AnthropicApiKey(), body);
        if (beta is not null)
        {
            request.Headers.Add("anthropic-beta", beta);
        }

        using var response = await client.SendAsync(request, Ct);

        var (actualStatus, actualMessage) = await ErrorAsync(response);
        Assert.Equal(status, actualStatus);
        Assert.StartsWith(message, actualMessage, StringComparison.Ordinal);
        Assert.StartsWith("req_", response.Headers.GetValues("request-id").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClaudeCodesOwnBetasAndFields_AreAccepted()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        var request = Post("/v1/messages?beta=true", Secrets.AnthropicApiKey(),
            """{"model":"claude-opus-4-8","max_tokens":64000,"messages":[{"role":"user","content":"hi"}],"system":[],"tools":[],"metadata":{"user_id":"u"},"thinking":{"type":"adaptive"},"context_management":{"edits":[]},"output_config":{"effort":"high"},"stream":false}""");
        request.Headers.Add("anthropic-beta", "claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14,thinking-token-count-2026-05-13,context-management-2025-06-27,prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,effort-2025-11-24");

        using var response = await client.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task ModelFaults_AreTheOrganizations_ForEveryKey_AndForThatModelOnly()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        provider.SetModelFault("claude-opus-4-1", ModelFault.Forbidden);
        provider.SetModelFault("claude-opus-4-8", ModelFault.RateLimited, TimeSpan.FromSeconds(20));

        using var forbidden = await client.SendAsync(Post("/v1/messages", Secrets.AnthropicApiKey(), Body("claude-opus-4-1")), Ct);
        using var limited = await client.SendAsync(Post("/v1/messages", Secrets.AnthropicApiKey(), Body("claude-opus-4-8")), Ct);
        using var other = await client.SendAsync(Post("/v1/messages", Secrets.AnthropicApiKey(), Body("claude-haiku-4-5")), Ct);

        Assert.Equal(403, (await ErrorAsync(forbidden)).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("20", limited.Headers.GetValues("retry-after").Single());
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task OverloadedInStream_Is200_WithAnErrorAsTheFirstEvent()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        provider.FailNext(1, UpstreamFault.OverloadedInStream);

        using var response = await client.SendAsync(Post("/v1/messages", Secrets.AnthropicApiKey(), Body("claude-sonnet-4-5", stream: true)), Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("event: error\ndata: {\"type\":\"error\",\"error\":{\"details\":null,\"type\":\"overloaded_error\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WhatRealClientsCall_IsServed()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        var key = Secrets.AnthropicApiKey();

        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/") { Headers = { { "x-api-key", key } } }, Ct);
        using var model = await client.SendAsync(Get("/v1/models/claude-haiku-4-5", key), Ct);
        using var missing = await client.SendAsync(Get("/v1/models/claude-nope", key), Ct);
        using var count = await client.SendAsync(Post("/v1/messages/count_tokens", key, """{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"""), Ct);

        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("claude-haiku-4-5", (await model.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetString());
        Assert.Equal((404, "model: claude-nope"), await ErrorAsync(missing));
        Assert.True((await count.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("input_tokens").GetInt32() > 0);
    }

    [Theory]
    [InlineData("", false)]
    [InlineData(""","stream_options":{"include_usage":false}""", false)]
    [InlineData(""","stream_options":{"include_usage":true}""", true)]
    public async Task OpenAIChatStream_EndsWithAUsageChunk_OnlyWhenAskedFor_AndItsOtherChunksThenSayUsageNull(string options, bool asked)
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        var body = $$"""{"model":"gpt-4o","stream":true{{options}},"messages":[{"role":"user","content":"hi"}]}""";

        using var response = await client.SendAsync(OpenAIPost("/v1/chat/completions", body), Ct);

        var events = (await response.Content.ReadAsStringAsync(Ct)).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.Equal(asked ? 8 : 7, chunks.Count);
        Assert.All(chunks[..7], c => Assert.Equal(1, c.GetProperty("choices").GetArrayLength()));
        Assert.All(chunks[..7], c => Assert.Equal(asked, c.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Null));
        if (asked)
        {
            var usage = chunks[^1].GetProperty("usage");
            Assert.Equal(0, chunks[^1].GetProperty("choices").GetArrayLength());
            Assert.Equal(body.Length / 4, usage.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(9, usage.GetProperty("completion_tokens").GetInt32());
            Assert.Equal((body.Length / 4) + 9, usage.GetProperty("total_tokens").GetInt32());
            Assert.Equal(0, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        }
    }

    [Fact]
    public async Task OpenAIStreamOptions_WithoutAStream_AreRefusedAsTheAPIRefusesThem()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);

        using var response = await client.SendAsync(OpenAIPost("/v1/chat/completions", """{"model":"gpt-4o","stream_options":{"include_usage":true},"messages":[]}"""), Ct);

        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("The 'stream_options' parameter is only allowed when 'stream' is enabled.", error.GetProperty("message").GetString());
        Assert.Equal("stream_options", error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task OpenAIAccountHeaders_OfAnotherOrganization_Get401()
    {
        await using var provider = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        using var client = Client(provider);
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Secrets.OpenAIKey());
        request.Headers.Add("OpenAI-Organization", "org-someone-else");

        using var response = await client.SendAsync(request, Ct);

        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("mismatched_organization", error.GetProperty("code").GetString());
    }

    /// <summary>A client that trusts the provider's CA and resolves its name to its loopback address, as the proxy's pool does.</summary>
    internal static HttpClient Client(SimulatedProvider provider, bool checkNames = true)
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(provider.CaBundlePath!);
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                var port = int.Parse(provider.Endpoint.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
                await socket.ConnectAsync(IPAddress.Loopback, port, ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        handler.SslOptions.CertificateChainPolicy.CustomTrustStore.Add(ca);
        if (!checkNames)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, errors) => (errors & ~SslPolicyErrors.RemoteCertificateNameMismatch) == SslPolicyErrors.None;
        }

        return new HttpClient(handler, disposeHandler: true) { BaseAddress = provider.BaseAddress };
    }

    private static HttpRequestMessage Get(string path, string? key, string? host = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (key is not null)
        {
            request.Headers.Add("x-api-key", key);
        }

        request.Headers.Add("anthropic-version", "2023-06-01");
        if (host is not null)
        {
            request.Headers.Host = host;
        }

        return request;
    }

    private static HttpRequestMessage Post(string path, string key, string body)
    {
        var request = Get(path, key);
        request.Method = HttpMethod.Post;
        request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        return request;
    }

    private static HttpRequestMessage OpenAIPost(string path, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Secrets.OpenAIKey());
        return request;
    }

    private static string Body(string model, bool stream = false)
        => $$"""{"model":"{{model}}","max_tokens":16,"stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""";

    private static async Task<(int Status, string Message)> ErrorAsync(HttpResponseMessage response)
    {
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error");
        return ((int)response.StatusCode, error.GetProperty("message").GetString()!);
    }
}
