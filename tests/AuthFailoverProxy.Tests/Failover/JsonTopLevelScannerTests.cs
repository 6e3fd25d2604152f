using System.Text;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Tests.Failover;

/// <summary>The top-level scan finds the same values however a body is cut into reads, whatever its strings hold.</summary>
public sealed class JsonTopLevelScannerTests
{
    private const string Body = """
        { "messages": [ { "content": "a \"model\": \"x\" } ] { [ \\", "x": { "model": "nested\\\\" } } ],
          "model" : "gpt-4o", "usage": {"note": "}{\"", "n": [1, [2]]}, "escaped\"key": "v\\", "stream":true,
          "mod\u0065l": "second", "tail": [ "\\\"", {} ] }
        """;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(100_000)]
    public void TheSameValues_AreFound_HoweverTheBodyIsCut(int chunk)
    {
        var bytes = Encoding.UTF8.GetBytes(Body);
        var scanner = new JsonTopLevelScanner(64, "model", "usage", "stream");
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            scanner.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
        }

        var found = scanner.Complete();

        Assert.NotNull(found);
        Assert.Equal(
            ["0:\"gpt-4o\"", "1:{\"note\": \"}{\\\"\", \"n\": [1, [2]]}", "2:true", "0:\"second\""],
            found.Select(f => $"{f.Name}:{Encoding.UTF8.GetString(f.Value!.Value.Span)}"));
        Assert.All(found, f => Assert.Equal(Encoding.UTF8.GetString(f.Value!.Value.Span), Body[(int)f.Start..(int)f.End]));
    }

    [Fact]
    public void AValueLongerThanTheCap_IsFoundWithoutItsBytes()
    {
        var body = "{\"usage\":\"" + new string('u', 300) + "\",\"model\":\"m\"}";
        var scanner = new JsonTopLevelScanner(64, "usage", "model");

        scanner.Feed(Encoding.UTF8.GetBytes(body));

        var found = scanner.Complete()!;
        Assert.Null(found[0].Value);
        Assert.Equal((9L, 311L), (found[0].Start, found[0].End));
        Assert.Equal("\"m\"", Encoding.UTF8.GetString(found[1].Value!.Value.Span));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(100_000)]
    public void ValuesKeptInOneBuffer_StayWhole_WhenItGrows_AndOneOverTheCapTakesNoRoom(int chunk)
    {
        // 300 bytes, then one over the cap of 400, then 390: the buffer starts small and grows twice; each value kept
        // reads as it was, however the others came after it.
        var first = new string('a', 298);
        var over = new string('b', 500);
        var last = new string('c', 388);
        var body = $$"""{"v":"{{first}}","v":"{{over}}","other":1,"v":"{{last}}"}""";
        var bytes = Encoding.UTF8.GetBytes(body);
        var scanner = new JsonTopLevelScanner(400, "v");
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            scanner.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
        }

        var found = scanner.Complete();

        Assert.NotNull(found);
        Assert.Equal(3, found.Count);
        Assert.Equal($"\"{first}\"", Encoding.UTF8.GetString(found[0].Value!.Value.Span));
        Assert.Null(found[1].Value);
        Assert.Equal(body[(int)found[1].Start..(int)found[1].End], $"\"{over}\"");
        Assert.Equal($"\"{last}\"", Encoding.UTF8.GetString(found[2].Value!.Value.Span));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(1000)]
    public void ALongKeyStartingWithAName_IsNotThatName(int chunk)
    {
        var bytes = Encoding.UTF8.GetBytes("{\"model" + new string('x', 100) + "\":1,\"" + new string('k', 70) + "\":{\"model\":2},\"model\":\"m\"}");
        var scanner = new JsonTopLevelScanner(64, "model");
        for (var i = 0; i < bytes.Length; i += chunk)
        {
            scanner.Feed(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)));
        }

        var found = Assert.Single(scanner.Complete()!);
        Assert.Equal("\"m\"", Encoding.UTF8.GetString(found.Value!.Value.Span));
    }
}
