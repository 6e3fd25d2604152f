using System.Globalization;
using System.Net.Http.Headers;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Reads when the upstream says a key may be used again: <c>retry-after</c> (seconds or an HTTP date),
/// <c>retry-after-ms</c>, Anthropic's <c>anthropic-ratelimit-*-reset</c> (RFC 3339) and OpenAI's
/// <c>x-ratelimit-reset-*</c> (durations such as <c>6m0s</c>). <c>retry-after</c> is the provider's answer to "when may I
/// retry"; a <c>…-reset</c> says when a bucket is full again, later than needed, so it counts only without one, and only
/// for the limits actually exhausted (remaining 0, or not stated).
/// </summary>
internal static class RetryAfterHeaders
{
    private static readonly string[] AnthropicLimits = ["requests", "tokens", "input-tokens", "output-tokens"];
    private static readonly string[] OpenAILimits = ["requests", "tokens"];

    /// <summary>Returns when a rate-limited key may serve again: <c>retry-after</c>, else the reset of the exhausted limit; null when no header says.</summary>
    public static DateTimeOffset? CoolUntil(HttpResponseHeaders headers, DateTimeOffset now)
        => RetryAfter(headers, now) ?? LatestExhaustedReset(headers, now);

    /// <summary>
    /// Returns whether a 429 was caused by the request itself: the provider states the limits it counts, and none of
    /// them is exhausted (the input tokens it has left are above 0), so the request's own input is over the per-minute
    /// limit. Retrying it, on this key or another of the organization, cannot help.
    /// </summary>
    public static bool RequestExceedsLimit(HttpResponseHeaders headers)
    {
        if (!TryGet(headers, "anthropic-ratelimit-input-tokens-remaining", out var input) || !long.TryParse(input, NumberStyles.None, CultureInfo.InvariantCulture, out var left) || left <= 0)
        {
            return false;
        }

        foreach (var limit in AnthropicLimits)
        {
            if (TryGet(headers, $"anthropic-ratelimit-{limit}-remaining", out var remaining) && remaining.Trim() == "0")
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Returns the latest reset of an exhausted limit, or <see langword="null"/> when no header names one.</summary>
    public static DateTimeOffset? LatestExhaustedReset(HttpResponseHeaders headers, DateTimeOffset now)
    {
        DateTimeOffset? latest = null;

        foreach (var limit in AnthropicLimits)
        {
            if (IsExhausted(headers, $"anthropic-ratelimit-{limit}-remaining")
                && TryGet(headers, $"anthropic-ratelimit-{limit}-reset", out var value)
                && DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var reset))
            {
                latest = Later(latest, reset);
            }
        }

        foreach (var limit in OpenAILimits)
        {
            if (IsExhausted(headers, $"x-ratelimit-remaining-{limit}")
                && TryGet(headers, $"x-ratelimit-reset-{limit}", out var value)
                && TryParseDuration(value, out var duration))
            {
                latest = Later(latest, now + duration);
            }
        }

        return latest;
    }

    /// <summary>Returns the <c>retry-after</c> / <c>retry-after-ms</c> instant alone (used to pace retries of an unwell upstream).</summary>
    public static DateTimeOffset? RetryAfter(HttpResponseHeaders headers, DateTimeOffset now)
    {
        DateTimeOffset? result = null;
        if (TryGet(headers, "retry-after-ms", out var ms)
            && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var millis) && millis >= 0)
        {
            result = now + TimeSpan.FromMilliseconds(millis);
        }

        if (TryGet(headers, "retry-after", out var value))
        {
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0)
            {
                result = Later(result, now + TimeSpan.FromSeconds(seconds));
            }
            else if (DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date))
            {
                result = Later(result, date);
            }
        }

        return result;
    }

    /// <summary>Parses a Go-style duration as OpenAI sends it: <c>1s</c>, <c>20ms</c>, <c>6m0s</c>, <c>1h2m3.5s</c>.</summary>
    public static bool TryParseDuration(string value, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        var span = value.AsSpan().Trim();
        if (span.IsEmpty)
        {
            return false;
        }

        var totalMs = 0d;
        while (!span.IsEmpty)
        {
            var numberLength = 0;
            while (numberLength < span.Length && (char.IsAsciiDigit(span[numberLength]) || span[numberLength] == '.'))
            {
                numberLength++;
            }

            if (numberLength == 0 || !double.TryParse(span[..numberLength], NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            span = span[numberLength..];
            var unitLength = 0;
            while (unitLength < span.Length && char.IsAsciiLetter(span[unitLength]) || (unitLength < span.Length && span[unitLength] == 'µ'))
            {
                unitLength++;
            }

            double? unitMs = span[..unitLength] switch
            {
                "h" => 3_600_000,
                "m" => 60_000,
                "s" => 1_000,
                "ms" => 1,
                "us" or "µs" => 0.001,
                "ns" => 0.000_001,
                _ => null,
            };
            if (unitMs is null)
            {
                return false;
            }

            totalMs += number * unitMs.Value;
            span = span[unitLength..];
        }

        duration = TimeSpan.FromMilliseconds(totalMs);
        return true;
    }

    private static bool IsExhausted(HttpResponseHeaders headers, string remainingHeader)
        => !TryGet(headers, remainingHeader, out var remaining) || remaining.Trim() == "0";

    private static bool TryGet(HttpResponseHeaders headers, string name, out string value)
    {
        if (headers.NonValidated.TryGetValues(name, out var values) && values.Count > 0)
        {
            value = values.ToString();
            return true;
        }

        value = string.Empty;
        return false;
    }

    private static DateTimeOffset Later(DateTimeOffset? a, DateTimeOffset b) => a is { } x && x > b ? x : b;
}
