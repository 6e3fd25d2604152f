using System.Net;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Spilled request bodies are an agent's prompts: private to the proxy's user, never left behind, bounded in total; and
/// safe mode rewrites the model of a large body without a second copy of it, every <c>model</c> it carries.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SpillTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("afp-spill-");

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task ASpilledBody_IsOwnerOnly_InAPrivateFolder_AndHasNoNameToFind()
    {
        var spill = new BodySpill(new RequestBodyOptions { MemoryThresholdBytes = 64 * 1024, TempDirectory = _directory.FullName });

        await using var body = await BodyReleaseTests.ReadAsync(new string('p', 300_000), spill);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(spill.Directory));
        Assert.StartsWith(_directory.FullName + "/afp-bodies-", spill.Directory, StringComparison.Ordinal);
        Assert.Empty(SpillFiles.NamedUnder(_directory.FullName));
        var open = Assert.Single(SpillFiles.OpenUnder(_directory.FullName));
        Assert.EndsWith(" (deleted)", open, StringComparison.Ordinal);
        var descriptor = Directory.GetFiles("/proc/self/fd").Single(fd => new FileInfo(fd).LinkTarget == open);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(descriptor));
    }

    [Fact]
    public async Task WhatACrashedProcessLeft_IsRemovedAtStart_AndALiveProcesssFolderIsKept()
    {
        var oldFile = Path.Combine(_directory.FullName, "afp-body-0123456789abcdef.tmp");
        await File.WriteAllTextAsync(oldFile, "an agent's prompt from a version that spilled by name", Ct);
        var deadFolder = Directory.CreateDirectory(Path.Combine(_directory.FullName, "afp-bodies-2147483646-0a1b")).FullName;
        var liveFolder = Directory.CreateDirectory(Path.Combine(_directory.FullName, "afp-bodies-1-0a1b")).FullName; // pid 1 always runs

        string own;
        await using (var s = await Scenario.StartAsync(configure: c => c.Set("RequestBody:TempDirectory", _directory.FullName)))
        {
            Assert.False(File.Exists(oldFile));
            Assert.False(Directory.Exists(deadFolder));
            Assert.True(Directory.Exists(liveFolder));
            own = s.Proxy.Services.GetRequiredService<BodySpill>().Directory;
            Assert.True(Directory.Exists(own));
            Assert.Contains(s.Proxy.Logs.Events, e => e.MessageTemplate.Text.StartsWith("Removed {Count} spilled request body", StringComparison.Ordinal));
        }

        // A clean stop takes its own folder with it.
        Assert.False(Directory.Exists(own));
    }

    [Fact]
    public async Task WhenTheSpillIsFull_TheAgentGets503WithRetryAfter_InTheProvidersFormat_AndNoUpstreamCall()
    {
        await using var s = await Scenario.StartAsync(configure: c => c
            .Set("RequestBody:TempDirectory", _directory.FullName)
            .Set("RequestBody:MemoryThresholdBytes", 64 * 1024)
            .Set("RequestBody:MaxSpillBytes", 1024 * 1024));
        var large = Body(new string('L', 2 * 1024 * 1024));

        using var refused = await s.Proxy.Agent.PostAsync("/v1/messages", new StringContent(large, Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("5", FailoverTests.Header(refused, "retry-after"));
        Assert.Null(FailoverTests.Header(refused, "x-should-retry"));
        var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal("error", error.GetProperty("type").GetString());
        Assert.Equal("overloaded_error", error.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("RequestBody:MaxSpillBytes", error.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, s.Upstream.RequestCount);
        Assert.Equal(0, s.Proxy.Services.GetRequiredService<BodySpill>().Spilled);

        // A body that fits is served, and gives its room back.
        using var served = await s.Proxy.Agent.PostAsync("/v1/messages", new StringContent(Body(new string('s', 500_000)), Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        await FailoverTests.WaitUntilAsync(() => s.Proxy.Services.GetRequiredService<BodySpill>().Spilled == 0);
    }

    [Fact]
    public async Task SafeMode_RewritesEveryModelOfASpilledBody_WithoutASecondCopy_AndKeepsEveryOtherByte()
    {
        await using var primaryOrg = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        await using var secondOrg = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var primaryKey = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", primaryOrg, isDefault: true, keys: [("primary", primaryKey)])
            .Pool("second-org", secondOrg, keys: [("reserve", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Fallback", "second-org")
            .Set("Pools:anthropic:FallbackModel", "claude-haiku-4-5")
            .Set("RequestBody:TempDirectory", _directory.FullName)
            .Set("RequestBody:MemoryThresholdBytes", 64 * 1024);
        await using var proxy = await ProxyHost.StartAsync(config);
        primaryOrg.SetKeyFault(primaryKey, KeyFault.OAuthRejected);
        // "model" twice: the provider's parser keeps the last one, so rewriting only the first would let Opus through.
        var prompt = new string('q', 3 * 1024 * 1024);
        var body = $$"""{"model":"claude-opus-4-1","max_tokens":64,"messages":[{"role":"user","content":"{{prompt}}"}],"model" : "claude-opus-4-1"}""";

        using var response = await proxy.Agent.PostAsync("/v1/messages", new StringContent(body, Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("second-org", FailoverTests.Header(response, "x-afp-safe-mode"));
        var sent = Encoding.UTF8.GetString(secondOrg.Requests.Single().Body);
        Assert.Equal(body.Replace("\"claude-opus-4-1\"", "\"claude-haiku-4-5\"", StringComparison.Ordinal), sent);
        Assert.Equal(0, proxy.Services.GetRequiredService<BodySpill>().Spilled);
    }

    [Theory]
    [InlineData("""{"model":"a","x":1,"model":"b"}""", """{"model":"M","x":1,"model":"M"}""")]
    [InlineData("""{"mod\u0065l":"a","x":{"model":"nested"}}""", """{"mod\u0065l":"M","x":{"model":"nested"}}""")]
    [InlineData("""{ "messages":[{"content":"\"model\":\"x\""}], "model": 7 }""", """{ "messages":[{"content":"\"model\":\"x\""}], "model": "M" }""")]
    [InlineData("""{"model":{"id":"a"},"stream":true}""", """{"model":"M","stream":true}""")]
    public async Task ASpilledBodysRewrite_ReadsAsTheInMemoryOne(string before, string after)
    {
        // Padding puts the body over the memory threshold, so it is spilled and the rewrite is a view of the file.
        var padded = before[..^1] + ",\"pad\":\"" + new string('z', 70_000) + "\"}";
        var spill = new BodySpill(new RequestBodyOptions { MemoryThresholdBytes = 64 * 1024, TempDirectory = _directory.FullName });
        await using var body = await BodyReleaseTests.ReadAsync(padded, spill);
        var spilledBefore = spill.Spilled;

        var rewritten = await ModelRewriter.TryRewriteAsync(body, "M", Ct);

        Assert.NotNull(rewritten);
        Assert.Equal(spilledBefore, spill.Spilled);
        using var read = new MemoryStream();
        await rewritten.OpenRead().CopyToAsync(read, Ct);
        var expected = after[..^1] + ",\"pad\":\"" + new string('z', 70_000) + "\"}";
        Assert.Equal(expected, Encoding.UTF8.GetString(read.ToArray()));
        Assert.Equal(Encoding.UTF8.GetByteCount(expected), rewritten.Length);
        Assert.Equal(Encoding.UTF8.GetString(ModelRewriter.TryRewrite(Encoding.UTF8.GetBytes(padded), "M")!), expected);
    }

    private static string Body(string content) => $$"""{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"{{content}}"}]}""";
}
