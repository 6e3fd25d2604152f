using System.Globalization;
using System.Net;
using System.Text;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Time.Testing;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// Errors before content fail over: the opening of a stream (status, headers, lifecycle events) is held until its first
/// content event, for a few seconds at most. The provider under load answers 200 and then an overloaded_error as the
/// first event; the agent, which had nothing it acts on yet, gets a clean stream from the retry instead.
/// </summary>
public sealed class StreamHoldTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task OverloadedAsTheFirstEvent_TheAgentGetsACleanStreamFromTheRetry()
    {
        await using var s = await Scenario.StartAsync();
        s.Upstream.FailNext(1, UpstreamFault.OverloadedInStream);

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: true), Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("event: message_start", text, StringComparison.Ordinal);
        Assert.DoesNotContain("overloaded_error", text, StringComparison.Ordinal);
        Assert.Contains("event: message_stop", text, StringComparison.Ordinal);
        Assert.Equal("2", FailoverTests.Header(response, "x-afp-attempts"));
        Assert.All(s.Upstream.Requests, r => Assert.Equal(s.Secret("primary"), r.Key));
        Assert.Equal("usable", await s.KeyStateAsync("primary"));
    }

    [Fact]
    public async Task OpenAIChatStream_OpeningWithAnErrorChunk_IsRetriedToo()
    {
        await using var s = await Scenario.StartAsync(kind: "openai");
        s.Upstream.FailNext(1, UpstreamFault.OverloadedInStream);
        var body = new StringContent("""{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");

        using var response = await s.Proxy.Agent.PostAsync("/openai/v1/chat/completions", body, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain("\"error\"", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        Assert.Equal(2, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task OverloadedOnTheFinalTry_ReachesTheAgentAsTheProviderSentIt()
    {
        await using var s = await Scenario.StartAsync(configure: c => c.Set("Failover:UpstreamRetries", 0));
        s.Upstream.FailNext(1, UpstreamFault.OverloadedInStream);

        using var response = await s.Proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(stream: true), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("event: error\ndata: {\"type\":\"error\",\"error\":{\"details\":null,\"type\":\"overloaded_error\"", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        Assert.Equal(1, s.Upstream.RequestCount);
    }

    [Fact]
    public async Task TheOpeningIsHeldUntilContent_ThenContentPassesAtOnce()
    {
        await using var s = await Scenario.StartAsync();
        var firstContentAllowed = new TaskCompletionSource();
        s.Upstream.BeforeStreamEvent = (index, ct) => index == 3 ? firstContentAllowed.Task.WaitAsync(ct) : Task.CompletedTask;

        var sending = s.Proxy.Agent.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody(stream: true) }, HttpCompletionOption.ResponseHeadersRead, Ct);
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == 1);
        await Task.Delay(50, Ct);

        // message_start, content_block_start and ping are out of the provider, but not at the agent yet: nothing to act on.
        Assert.False(sending.IsCompleted);
        firstContentAllowed.SetResult();
        using var response = await sending;
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(["message_start", "content_block_start", "ping", "content_block_delta"], Events(text).Take(4));
        Assert.Equal("message_stop", Events(text).Last());
    }

    [Fact]
    public async Task NoContentWithinTheHoldTime_TheStreamPassesThroughAsItIs()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));
        await using var s = await Scenario.StartAsync(time: time, configure: c => c.Set("Failover:StreamHoldTime", "00:00:03"));
        var firstContentAllowed = new TaskCompletionSource();
        s.Upstream.BeforeStreamEvent = (index, ct) => index == 3 ? firstContentAllowed.Task.WaitAsync(ct) : Task.CompletedTask;

        var sending = s.Proxy.Agent.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = Scenario.MessageBody(stream: true) }, HttpCompletionOption.ResponseHeadersRead, Ct);
        await FailoverTests.WaitUntilAsync(() => s.Upstream.RequestCount == 1);
        await Task.Delay(50, Ct);
        time.Advance(TimeSpan.FromSeconds(3));

        // Past the hold time the agent gets what there is, and the rest as it comes.
        using var response = await sending;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        firstContentAllowed.SetResult();
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(["message_start", "content_block_start", "ping", "content_block_delta"], Events(text).Take(4));
        Assert.Equal("message_stop", Events(text).Last());
    }

    [Fact]
    public async Task OnceTheHeldBytesArePassedOn_AQuietStreamHoldsNoBuffer_AndAZeroByteReadWaitsForTheUpstream()
    {
        var pipe = new System.IO.Pipelines.Pipe();
        using var original = new StreamContent(pipe.Reader.AsStream());
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"), Ct);

        using var hold = await AuthFailoverProxy.Failover.StreamHold.ReadOpeningAsync(original, AuthFailoverProxy.KeyPool.ProviderKind.Anthropic, TimeSpan.FromSeconds(5), TimeProvider.System, Ct);
        Assert.Equal(AuthFailoverProxy.Failover.StreamOpening.Content, hold.Opening);
        var heldLength = hold.Held.Length;
        using var content = hold.ToContent();
        await using var stream = await content.ReadAsStreamAsync(Ct);

        // While held bytes remain, a zero-byte read says at once that there is data.
        Assert.Equal(0, await stream.ReadAsync(Memory<byte>.Empty, Ct));
        var passed = new byte[heldLength];
        await stream.ReadExactlyAsync(passed, Ct);
        Assert.True(hold.Held.IsEmpty, "the hold's buffer is given back once its bytes are passed on");

        // Then a zero-byte read waits on the upstream, as the copier's does on a quiet stream, holding no buffer meanwhile.
        var waiting = stream.ReadAsync(Memory<byte>.Empty, Ct).AsTask();
        await Task.Delay(50, Ct);
        Assert.False(waiting.IsCompleted);
        await pipe.Writer.WriteAsync("event: ping\n\n"u8.ToArray(), Ct);
        Assert.Equal(0, await waiting);
        var next = new byte[64];
        Assert.Equal("event: ping\n\n", Encoding.UTF8.GetString(next, 0, await stream.ReadAsync(next, Ct)));
        await pipe.Writer.CompleteAsync();
        Assert.Equal(0, await stream.ReadAsync(next, Ct));
    }

    private static List<string> Events(string text)
        => [.. text.Split('\n').Where(l => l.StartsWith("event: ", StringComparison.Ordinal)).Select(l => l[7..])];
}
