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

    /// <summary>
    /// Thousands of generated objects, with escapes, brackets and the names themselves inside strings and nested values,
    /// cut into random reads: the scan finds exactly what System.Text.Json's reader says is at the top level, where it is.
    /// </summary>
    [Fact]
    public void GeneratedObjects_CutAnywhere_YieldWhatAJsonReaderFindsAtTheTopLevel()
    {
        var random = new Random(20261205);
        for (var document = 0; document < 3000; document++)
        {
            var text = new StringBuilder();
            WriteObject(text, random, depth: 0);
            var bytes = Encoding.UTF8.GetBytes(text.ToString());
            var expected = TopLevel(bytes, "model", "usage");

            var scanner = new JsonTopLevelScanner(32, "model", "usage");
            for (var at = 0; at < bytes.Length;)
            {
                var length = Math.Min(random.Next(1, 40), bytes.Length - at);
                scanner.Feed(bytes.AsSpan(at, length));
                at += length;
            }

            var found = scanner.Complete();
            Assert.NotNull(found);
            Assert.Equal(expected, found.Select(f => (f.Name, f.Start, f.End, f.Value is { } v ? Encoding.UTF8.GetString(v.Span) : null)));
        }
    }

    /// <summary>The top-level values named <paramref name="names"/>, as a JSON reader finds them; bytes only when within the cap of 32.</summary>
    private static List<(int Name, long Start, long End, string? Value)> TopLevel(byte[] bytes, params string[] names)
    {
        var found = new List<(int, long, long, string?)>();
        var reader = new System.Text.Json.Utf8JsonReader(bytes);
        reader.Read();
        while (reader.Read() && reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
        {
            var name = Array.IndexOf(names, reader.GetString());
            reader.Read();
            var start = reader.TokenStartIndex;
            long end;
            if (reader.TokenType is System.Text.Json.JsonTokenType.StartObject or System.Text.Json.JsonTokenType.StartArray)
            {
                reader.Skip();
                end = reader.TokenStartIndex + 1;
            }
            else
            {
                end = start + reader.ValueSpan.Length + (reader.TokenType == System.Text.Json.JsonTokenType.String ? 2 : 0);
            }

            if (name >= 0)
            {
                found.Add((name, start, end, end - start <= 32 ? Encoding.UTF8.GetString(bytes, (int)start, (int)(end - start)) : null));
            }
        }

        return found;
    }

    private static void WriteObject(StringBuilder text, Random random, int depth)
    {
        string[] keys = ["model", "usage", "mod\\u0065l", "us\\u0061ge", "model\\\"", "content", "\\\"model\\\"", "usage ", "m"];
        text.Append('{').Append(Space(random));
        var count = random.Next(depth == 0 ? 1 : 0, 6);
        for (var i = 0; i < count; i++)
        {
            if (i > 0)
            {
                text.Append(',').Append(Space(random));
            }

            text.Append('"').Append(keys[random.Next(keys.Length)]).Append('"').Append(Space(random)).Append(':').Append(Space(random));
            WriteValue(text, random, depth + 1);
            text.Append(Space(random));
        }

        text.Append('}');
    }

    private static void WriteValue(StringBuilder text, Random random, int depth)
    {
        string[] strings = ["", "a \\\"model\\\": \\\"x\\\" }", "}{][,:", "\\\\", "\\\\\\\"", "tök€n \\u00e9", "\\/\\b\\n", "model", "{\\\"usage\\\":1}"];
        switch (random.Next(depth > 3 ? 3 : 5))
        {
            case 0:
                text.Append('"').Append(strings[random.Next(strings.Length)]).Append('"');
                break;
            case 1:
                text.Append(random.Next(-5, 100_000)).Append(random.Next(3) == 0 ? ".5e3" : string.Empty);
                break;
            case 2:
                text.Append(random.Next(3) switch { 0 => "true", 1 => "false", _ => "null" });
                break;
            case 3:
                WriteObject(text, random, depth);
                break;
            default:
                text.Append('[').Append(Space(random));
                var count = random.Next(0, 4);
                for (var i = 0; i < count; i++)
                {
                    if (i > 0)
                    {
                        text.Append(',').Append(Space(random));
                    }

                    WriteValue(text, random, depth + 1);
                }

                text.Append(Space(random)).Append(']');
                break;
        }
    }

    private static string Space(Random random) => random.Next(4) switch { 0 => " ", 1 => "\n  ", 2 => "\t\r\n", _ => string.Empty };
}
