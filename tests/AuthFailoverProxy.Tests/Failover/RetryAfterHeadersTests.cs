using System.Globalization;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Tests.Failover;

public sealed class RetryAfterHeadersTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);

    [Fact]
    public void RetryAfterSeconds_IsFromNow()
        => Assert.Equal(Now.AddSeconds(17), RetryAfterHeaders.CoolUntil(Headers(("retry-after", "17")), Now));

    [Fact]
    public void RetryAfterHttpDate_IsTaken()
        => Assert.Equal(Now.AddMinutes(2), RetryAfterHeaders.CoolUntil(Headers(("retry-after", "Tue, 03 Mar 2026 00:02:00 GMT")), Now));

    [Fact]
    public void AnthropicResets_WithoutRetryAfter_OnlyExhaustedLimitsCount_AndTheLatestWins()
    {
        var headers = Headers(
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-03-03T00:00:40Z"),
            ("anthropic-ratelimit-tokens-remaining", "12000"),
            ("anthropic-ratelimit-tokens-reset", "2026-03-03T00:05:00Z"),
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
            ("anthropic-ratelimit-output-tokens-reset", "2026-03-03T00:01:00Z"));

        Assert.Equal(Now.AddMinutes(1), RetryAfterHeaders.CoolUntil(headers, Now));
    }

    [Fact]
    public void RetryAfter_IsTheProvidersAnswer_ItWinsOverLaterFullRefillTimes()
    {
        var headers = Headers(
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-03-03T00:00:40Z"),
            ("retry-after", "10"));

        Assert.Equal(Now.AddSeconds(10), RetryAfterHeaders.CoolUntil(headers, Now));
    }

    [Theory]
    [InlineData("5000", "40", true)]   // input left, requests left: the request's own input is too large
    [InlineData("5000", "0", false)]   // the requests bucket is empty: the key is rate limited
    [InlineData("0", "40", false)]     // the input bucket is empty
    [InlineData(null, null, false)]    // nothing stated
    public void RequestExceedsLimit_OnlyWhenNoStatedLimitIsExhausted(string? inputLeft, string? requestsLeft, bool expected)
    {
        var pairs = new List<(string, string)>();
        if (inputLeft is not null)
        {
            pairs.Add(("anthropic-ratelimit-input-tokens-remaining", inputLeft));
        }

        if (requestsLeft is not null)
        {
            pairs.Add(("anthropic-ratelimit-requests-remaining", requestsLeft));
        }

        Assert.Equal(expected, RetryAfterHeaders.RequestExceedsLimit(Headers([.. pairs])));
    }

    [Fact]
    public void OpenAIResets_AreDurations()
    {
        var headers = Headers(
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1.5s"));

        Assert.Equal(Now.AddMinutes(6), RetryAfterHeaders.CoolUntil(headers, Now));
    }

    [Fact]
    public void NoHeaders_NoDeadline() => Assert.Null(RetryAfterHeaders.CoolUntil(Headers(), Now));

    [Theory]
    [InlineData("1s", 1000)]
    [InlineData("20ms", 20)]
    [InlineData("6m0s", 360_000)]
    [InlineData("1h2m3.5s", 3_723_500)]
    [InlineData("0.5s", 500)]
    public void Durations_ParseLikeGo(string text, double milliseconds)
    {
        Assert.True(RetryAfterHeaders.TryParseDuration(text, out var duration));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("5x")]
    [InlineData("s")]
    public void Durations_RejectGarbage(string text) => Assert.False(RetryAfterHeaders.TryParseDuration(text, out _));

    private static System.Net.Http.Headers.HttpResponseHeaders Headers(params (string Name, string Value)[] headers)
    {
        var response = new HttpResponseMessage();
        foreach (var (name, value) in headers)
        {
            response.Headers.TryAddWithoutValidation(name, value);
        }

        return response.Headers;
    }
}
