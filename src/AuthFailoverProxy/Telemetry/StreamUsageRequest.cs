using System.Text.Json;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Telemetry;

/// <summary>Who asked for the usage chunk of an OpenAI chat-completions stream.</summary>
internal enum StreamUsage
{
    /// <summary>Nobody the proxy knows of: not a chat stream, the pool does not ask, or a body the proxy leaves alone.</summary>
    Untouched,

    /// <summary>The agent did (<c>stream_options.include_usage</c> true): its stream passes as it comes.</summary>
    AskedByClient,

    /// <summary>The proxy did, in the body it sent: the usage chunk, and the <c>"usage":null</c> of every other chunk, are taken out of the agent's stream.</summary>
    AskedByProxy,
}

/// <summary>
/// Asks an OpenAI chat-completions stream for its usage when the agent did not: such a stream reports tokens only in
/// an extra chunk sent when the request sets <c>stream_options.include_usage</c>, so without it the proxy could count
/// nothing. The body is edited at one place (after <c>"stream":true</c>, inside an existing <c>stream_options</c>, or at
/// an <c>include_usage</c> that was false or null), every other byte sent as the agent wrote it; a spilled body is not
/// copied but read through a view (<see cref="ReplayableBody.Splice"/>). A body the proxy does not fully understand (not
/// one JSON object, <c>stream</c> or <c>stream_options</c> twice, a <c>stream_options</c> that is not an object) is left
/// alone: the proxy never breaks a request to count it.
/// </summary>
internal static class StreamUsageRequest
{
    /// <summary>A <c>stream_options</c> larger than this is not one the proxy edits.</summary>
    private const int MaxOptions = 4096;

    private static readonly byte[][] Names = JsonTopLevelScanner.Utf8("stream", "stream_options");
    private static readonly byte[] AfterStream = """true,"stream_options":{"include_usage":true}"""u8.ToArray();
    private static readonly byte[] Options = """{"include_usage":true}"""u8.ToArray();
    private static readonly byte[] FirstOption = "\"include_usage\":true,"u8.ToArray();
    private static readonly byte[] OnlyOption = "\"include_usage\":true"u8.ToArray();
    private static readonly byte[] True = "true"u8.ToArray();

    /// <summary>
    /// Returns whether requests to <paramref name="target"/> on <paramref name="pool"/> are asked for their usage: chat
    /// completions on an OpenAI pool that asks (<c>Pools:{name}:AskForStreamUsage</c>), and whose fallback, if
    /// it has one, asks too (the same body goes there in safe mode).
    /// </summary>
    public static bool Applies(Pool pool, string target)
    {
        if (pool.Kind != ProviderKind.OpenAI || !pool.AsksForStreamUsage || pool.Fallback is { AsksForStreamUsage: false })
        {
            return false;
        }

        var query = target.IndexOf('?');
        return target.AsSpan(0, query < 0 ? target.Length : query).EndsWith("/chat/completions", StringComparison.Ordinal);
    }

    /// <summary>
    /// Returns the body to send and who asked for the stream's usage. <paramref name="asksForStream"/> says whether a body
    /// held in memory asks for a stream (already read by the caller); a spilled body is read once to find out.
    /// </summary>
    public static async ValueTask<(ReplayableBody Body, StreamUsage Usage)> AskAsync(ReplayableBody body, bool asksForStream, CancellationToken cancellationToken)
    {
        Edit? edit;
        if (!body.IsSpilled)
        {
            if (!asksForStream)
            {
                return (body, StreamUsage.Untouched);
            }

            edit = Plan(body.InMemory);
        }
        else
        {
            var scanner = new JsonTopLevelScanner(MaxOptions, Names);
            await using (var read = body.OpenRead())
            {
                await scanner.FeedAsync(read, cancellationToken);
            }

            edit = Plan(scanner.Complete());
        }

        return edit switch
        {
            null => (body, StreamUsage.Untouched),
            { Replacement: null } => (body, StreamUsage.AskedByClient),
            { } cut => (body.Splice(cut.Start, cut.End, cut.Replacement), StreamUsage.AskedByProxy),
        };
    }

    /// <summary>Returns the edit that asks <paramref name="json"/> for its stream's usage, one with no replacement when the agent asked, or null to leave it alone.</summary>
    internal static Edit? Plan(ReadOnlySpan<byte> json)
    {
        var scanner = new JsonTopLevelScanner(MaxOptions, Names);
        scanner.Feed(json);
        return Plan(scanner.Complete());
    }

    private static Edit? Plan(List<JsonTopLevelValue>? found)
    {
        if (found is null)
        {
            return null;
        }

        JsonTopLevelValue? stream = null;
        JsonTopLevelValue? options = null;
        foreach (var value in found)
        {
            ref var slot = ref value.Name == 0 ? ref stream : ref options;
            if (slot is not null)
            {
                // Twice: parsers disagree on which one counts, so the proxy guesses neither.
                return null;
            }

            slot = value;
        }

        if (stream is not { Value: { } streamValue } || !streamValue.Span.SequenceEqual(True))
        {
            return null;
        }

        if (options is not { } given)
        {
            return new Edit(stream.Value.Start, stream.Value.End, AfterStream);
        }

        if (given.Value is not { } bytes)
        {
            return null;
        }

        return bytes.Span.SequenceEqual("null"u8) ? new Edit(given.Start, given.End, Options) : PlanInside(bytes.Span, given.Start);
    }

    /// <summary>Plans the edit inside an agent's own <c>stream_options</c> object (at <paramref name="offset"/> in the body), keeping its other fields.</summary>
    private static Edit? PlanInside(ReadOnlySpan<byte> options, long offset)
    {
        var reader = new Utf8JsonReader(options);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            var empty = true;
            (long Start, long End, JsonTokenType Type)? include = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                empty = false;
                var isInclude = reader.ValueTextEquals("include_usage"u8);
                reader.Read();
                if (isInclude)
                {
                    if (include is not null)
                    {
                        return null;
                    }

                    include = (reader.TokenStartIndex, reader.BytesConsumed, reader.TokenType);
                }

                reader.Skip();
            }

            return include switch
            {
                null => new Edit(offset + 1, offset + 1, empty ? OnlyOption : FirstOption),
                { Type: JsonTokenType.True } => new Edit(0, 0, null),
                { Type: JsonTokenType.False or JsonTokenType.Null } at => new Edit(offset + at.Start, offset + at.End, True),
                // Not a boolean: the provider refuses the request, as it would without the proxy.
                _ => null,
            };
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Bytes <see cref="Start"/> to <see cref="End"/> of the body become <see cref="Replacement"/>; none: the agent asked already.</summary>
    internal readonly record struct Edit(long Start, long End, byte[]? Replacement);
}
