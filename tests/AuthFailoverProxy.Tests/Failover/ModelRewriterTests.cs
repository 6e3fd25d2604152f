using System.Text;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Tests.Failover;

public sealed class ModelRewriterTests
{
    [Theory]
    [InlineData("""{"model":"claude-opus-4","max_tokens":5}""", """{"model":"claude-haiku-4-5","max_tokens":5}""")]
    [InlineData("""{ "max_tokens": 5,  "model" : "x", "stream":true }""", """{ "max_tokens": 5,  "model" : "claude-haiku-4-5", "stream":true }""")]
    // Only the top-level model: a nested "model" is the agent's data.
    [InlineData("""{"metadata":{"model":"keep"},"model":"x"}""", """{"metadata":{"model":"keep"},"model":"claude-haiku-4-5"}""")]
    public void TopLevelModel_IsReplaced_EveryOtherByteKept(string before, string after)
        => Assert.Equal(after, Encoding.UTF8.GetString(ModelRewriter.TryRewrite(Encoding.UTF8.GetBytes(before), "claude-haiku-4-5")!));

    [Theory]
    [InlineData("""{"max_tokens":5}""")]
    [InlineData("""[{"model":"x"}]""")]
    [InlineData("""{"model": oops""")]
    [InlineData("")]
    public void NoTopLevelModelOrNotJson_IsLeftAlone(string body)
        => Assert.Null(ModelRewriter.TryRewrite(Encoding.UTF8.GetBytes(body), "claude-haiku-4-5"));

    [Fact]
    public void ModelName_IsJsonEscaped()
    {
        var rewritten = ModelRewriter.TryRewrite("""{"model":"x"}"""u8, "a\"b")!;

        Assert.Equal("a\"b", System.Text.Json.JsonDocument.Parse(rewritten).RootElement.GetProperty("model").GetString());
    }
}
