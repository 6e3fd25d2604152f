using System.Globalization;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Forwarder;

namespace AuthFailoverProxy.Tests.KeyPool;

public sealed class PoolSelectionTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture));

    [Fact]
    public void Priority_PrimaryStaysPrimaryWhileUsable()
    {
        var pool = Pool(KeySelection.Priority, ("backup", 1), ("primary", 0));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("primary", pool.SelectKey(null, _time)!.Name);
        }
    }

    [Fact]
    public void Selection_SkipsDeadAndTriedKeys_AndReturnsNullWhenNoneLeft()
    {
        var pool = Pool(KeySelection.Priority, ("a", 0), ("b", 1), ("c", 2));
        var board = new KeyStateBoard(_time, new InMemoryKeyStateStore(), NullLogger<KeyStateBoard>.Instance);
        board.ReportDead(pool.Keys[0], Failure(401));

        Assert.Equal("b", pool.SelectKey(null, _time)!.Name);
        Assert.Equal("c", pool.SelectKey([pool.Keys[1]], _time)!.Name);
        Assert.Null(pool.SelectKey([pool.Keys[1], pool.Keys[2]], _time));
    }

    [Fact]
    public void CoolingKey_ReturnsAtItsDeadline()
    {
        var pool = Pool(KeySelection.Priority, ("a", 0), ("b", 1));
        var board = new KeyStateBoard(_time, new InMemoryKeyStateStore(), NullLogger<KeyStateBoard>.Instance);
        board.ReportCooling(pool.Keys[0], Failure(429), _time.GetUtcNow().AddSeconds(30));

        Assert.Equal("b", pool.SelectKey(null, _time)!.Name);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal("a", pool.SelectKey(null, _time)!.Name);
    }

    [Fact]
    public void RoundRobin_RotatesOnlyWithinTheBestUsablePriority()
    {
        var pool = Pool(KeySelection.RoundRobin, ("a", 0), ("b", 0), ("c", 1));
        var picks = Enumerable.Range(0, 6).Select(_ => pool.SelectKey(null, _time)!.Name).ToList();
        Assert.Equal(3, picks.Count(p => p == "a"));
        Assert.Equal(3, picks.Count(p => p == "b"));

        var board = new KeyStateBoard(_time, new InMemoryKeyStateStore(), NullLogger<KeyStateBoard>.Instance);
        board.ReportDead(pool.Keys[0], Failure(403));
        board.ReportDead(pool.Keys[1], Failure(403));
        Assert.Equal("c", pool.SelectKey(null, _time)!.Name);
    }

    [Fact]
    public void ThousandKeyPool_FindsTheLastUsableKey()
    {
        var keys = Enumerable.Range(0, 1000).Select(i => ($"k{i}", i)).ToArray();
        var pool = Pool(KeySelection.Priority, keys);
        var board = new KeyStateBoard(_time, new InMemoryKeyStateStore(), NullLogger<KeyStateBoard>.Instance);
        foreach (var key in pool.Keys.Take(999))
        {
            board.ReportDead(key, Failure(401));
        }

        Assert.Equal("k999", pool.SelectKey(null, _time)!.Name);
    }

    private static KeyFailure Failure(int status) => new(status, null, null, null, null, DateTimeOffset.UnixEpoch);

    private Pool Pool(KeySelection selection, params (string Name, int Priority)[] keys) => new(
        "test",
        ProviderKind.Anthropic,
        new Uri("http://127.0.0.1:1"),
        new PathString("/test"),
        isDefault: true,
        selection,
        [.. keys.Select(k => new PoolKey("test", k.Name, "sk-ant-api03-" + k.Name + new string('x', 30), k.Priority, "test", CredentialScheme.XApiKey, _time.GetUtcNow()))],
        new HttpMessageInvoker(new SocketsHttpHandler()),
        new ForwarderRequestConfig());
}
