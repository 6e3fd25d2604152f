using System.Net;
using System.Text;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>
/// A request's body is kept for replays only while a replay can happen: once the answer is going to the agent it is
/// let go as soon as the upstream has read it, so a thousand long streams do not hold a thousand bodies or spill files.
/// </summary>
public sealed class BodyReleaseTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Released_AfterTheUpstreamReadItAll_IsLetGoAtOnce()
    {
        await using var body = await ReadAsync(new string('a', 10_000), memoryThreshold: 1 << 20);
        var stream = body.OpenRead();
        await stream.CopyToAsync(Stream.Null, Ct);

        body.Release();

        Assert.True(body.InMemory.IsEmpty);
    }

    [Fact]
    public async Task Released_WhileTheUpstreamStillReads_IsLetGoWhenItReachesTheEnd()
    {
        await using var body = await ReadAsync(new string('b', 10_000), memoryThreshold: 1 << 20);
        var stream = body.OpenRead();
        var first = new byte[100];
        Assert.Equal(100, await stream.ReadAsync(first, Ct));

        body.Release();

        // Still being read: the bytes stay until the last one is out.
        Assert.Equal(10_000, body.InMemory.Length);
        var rest = new MemoryStream();
        await stream.CopyToAsync(rest, Ct);
        Assert.Equal(9_900, rest.Length);
        Assert.True(body.InMemory.IsEmpty);
    }

    [Fact]
    public async Task SpilledBody_ItsFileIsDeleted_OnceReleasedAndRead()
    {
        var directory = Directory.CreateTempSubdirectory("afp-spill-");
        try
        {
            var spill = new BodySpill(new RequestBodyOptions { MemoryThresholdBytes = 64 * 1024, TempDirectory = directory.FullName });
            await using var body = await ReadAsync(new string('c', 300_000), spill);
            Assert.Single(SpillFiles.OpenUnder(directory.FullName));
            Assert.Equal(1024 * 1024, spill.Spilled);
            await body.OpenRead().CopyToAsync(Stream.Null, Ct);

            body.Release();

            Assert.Empty(SpillFiles.OpenUnder(directory.FullName));
            Assert.Equal(0, spill.Spilled);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task LongStream_HoldsNoSpillFile_OnceItsAnswerIsUnderWay()
    {
        var directory = Directory.CreateTempSubdirectory("afp-spill-");
        try
        {
            await using var s = await Scenario.StartAsync(configure: c => c
                .Set("RequestBody:MemoryThresholdBytes", 64 * 1024)
                .Set("RequestBody:TempDirectory", directory.FullName));
            var holding = new TaskCompletionSource();
            var release = new TaskCompletionSource();
            s.Upstream.BeforeStreamEvent = async (index, ct) =>
            {
                if (index == 4)
                {
                    holding.TrySetResult();
                    await release.Task.WaitAsync(ct);
                }
            };
            var body = $$"""{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"{{new string('d', 500_000)}}"}]}""";

            using var response = await s.Proxy.Agent.SendAsync(
                new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(body, Encoding.UTF8, "application/json") },
                HttpCompletionOption.ResponseHeadersRead, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await holding.Task.WaitAsync(TimeSpan.FromSeconds(20), Ct);

            // Mid-stream: the 500 KB body was spilled, read by the upstream, and is gone.
            Assert.Empty(SpillFiles.OpenUnder(directory.FullName));
            Assert.Equal(0, s.Proxy.Services.GetRequiredService<BodySpill>().Spilled);
            release.SetResult();
            Assert.Contains("event: message_stop", await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static Task<ReplayableBody> ReadAsync(string text, int memoryThreshold)
        => ReadAsync(text, new BodySpill(new RequestBodyOptions { MemoryThresholdBytes = memoryThreshold }));

    internal static async Task<ReplayableBody> ReadAsync(string text, BodySpill spill)
    {
        var context = new DefaultHttpContext();
        var bytes = Encoding.UTF8.GetBytes(text);
        context.Request.Body = new MemoryStream(bytes);
        context.Request.ContentLength = bytes.Length;
        return (await ReplayableBody.ReadAsync(context.Request, spill, Ct)).Body!;
    }
}
