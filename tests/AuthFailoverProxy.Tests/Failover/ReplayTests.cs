using System.Net;
using System.Security.Cryptography;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>The body the second key gets is the body the agent sent, byte for byte, however large.</summary>
public sealed class ReplayTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(3 * 1024 * 1024, 64 * 1024 * 1024, false)] // stays in memory
    [InlineData(3 * 1024 * 1024, 256 * 1024, true)]        // spilled to a temp file
    [InlineData(200 * 1024, 64 * 1024, true)]              // chunked, spilled
    public async Task MultiMegabyteBody_IsReplayedByteForByte(int size, int memoryThreshold, bool chunked)
    {
        var tempDirectory = Directory.CreateTempSubdirectory("afp-test-");
        await using var s = await Scenario.StartAsync(configure: c => c
            .Set("RequestBody:MemoryThresholdBytes", memoryThreshold)
            .Set("RequestBody:TempDirectory", tempDirectory.FullName));
        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.OAuthRejected);
        var body = RandomJsonBody(size);
        using HttpContent content = chunked ? new StreamContent(new NoLengthStream(body)) : new ByteArrayContent(body);
        content.Headers.ContentType = new("application/json");

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages/count_tokens", content, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("backup", FailoverTests.Header(response, "x-afp-key"));
        var received = s.AgentRequests;
        Assert.Equal(2, received.Count);
        Assert.All(received, r => Assert.Equal(SHA256.HashData(body), SHA256.HashData(r.Body)));
        // No spill file has a name, and none is open once the request is done.
        Assert.Empty(SpillFiles.NamedUnder(tempDirectory.FullName));
        Assert.Empty(SpillFiles.OpenUnder(tempDirectory.FullName));
        tempDirectory.Delete(recursive: true);
    }

    [Fact]
    public async Task BodyOverTheLimit_Gets413BeforeAnyUpstreamCall()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("RequestBody:MaxBytes", 100_000));
        using var content = new ByteArrayContent(RandomJsonBody(100_001));

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages", content, Ct);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(Ct)).GetProperty("error");
        Assert.Equal("request_too_large", error.GetProperty("type").GetString());
        Assert.Contains("RequestBody:MaxBytes", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task ChunkedBodyOverTheLimit_Gets413BeforeAnyUpstreamCall()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("RequestBody:MaxBytes", 100_000).Set("RequestBody:MemoryThresholdBytes", 16_384));
        using var content = new StreamContent(new NoLengthStream(RandomJsonBody(300_000)));

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages", content, Ct);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task DefaultLimit_Accepts32MiB_AboveKestrelsOwn30MB()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.RecordBodies = false;
        using var content = new ByteArrayContent(new byte[32 * 1024 * 1024]);

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages/count_tokens", content, Ct);

        // The simulated upstream does not parse zeros as JSON for count_tokens; what matters is that the proxy forwarded it.
        Assert.NotEqual(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(1, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task MalformedJson_PassesThroughUntouched_AndTheUpstreamAnswerReachesTheClient()
    {
        await using var s = await Scenario.StartAsync();
        var malformed = "{\"model\": \"claude\", \"messages\": [ {oops"u8.ToArray();
        using var content = new ByteArrayContent(malformed);
        content.Headers.ContentType = new("application/json");

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages", content, Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(malformed, s.Upstream.Requests.Single().Body);
        var error = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(Ct)).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task MalformedChunkedBody_Gets400InTheProvidersFormat_AndNothingGoesUpstream()
    {
        await using var s = await Scenario.StartAsync();
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(s.Proxy.AgentAddress.Host, s.Proxy.AgentAddress.Port, Ct);
        var stream = tcp.GetStream();
        // "ZZ" is not a chunk size: the body cannot be read, but the connection can still carry an answer.
        var request = $"POST /v1/messages HTTP/1.1\r\nHost: proxy\r\nx-api-key: {s.Proxy.ClientToken}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nZZ\r\n{{}}\r\n0\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request), Ct);

        using var reader = new StreamReader(stream);
        var response = await reader.ReadToEndAsync(Ct);

        Assert.StartsWith("HTTP/1.1 400", response, StringComparison.Ordinal);
        Assert.Contains("\"invalid_request_error\"", response, StringComparison.Ordinal);
        Assert.Contains("could not be read", response, StringComparison.Ordinal);
        Assert.Equal(0, s.Upstream.RequestCount);
    }

    /// <summary>A valid token-counting request of exactly <paramref name="size"/> bytes, its content random letters.</summary>
    private static byte[] RandomJsonBody(int size)
    {
        var head = "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\""u8;
        var tail = "\"}]}"u8;
        var bytes = new byte[size];
        RandomNumberGenerator.Fill(bytes);
        // Printable, so the content is a plausible (if odd) prompt; the bytes themselves are what is compared.
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)('a' + (bytes[i] % 26));
        }

        head.CopyTo(bytes);
        tail.CopyTo(bytes.AsSpan(size - tail.Length));
        return bytes;
    }

    /// <summary>A stream that hides its length, so HttpClient sends the body chunked.</summary>
    private sealed class NoLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
