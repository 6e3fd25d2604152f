using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Finds the values of some top-level properties of a JSON object (a request's <c>model</c>, an answer's
/// <c>usage</c>), reading it chunk by chunk with a few bytes of state: no token, however long (a base64 image), is held
/// whole. Each value found is given as its byte range and, when asked for, its bytes (up to a cap).
/// </summary>
internal sealed class JsonTopLevelScanner
{
    private const int MaxKey = 64;
    private const int ScanChunk = 64 * 1024;

    /// <summary>What changes the state inside a nested value: a string's start, and brackets.</summary>
    private static readonly System.Buffers.SearchValues<byte> NestedSyntax = System.Buffers.SearchValues.Create("\"{}[]"u8);

    /// <summary>What ends a number, <c>true</c>, <c>false</c> or <c>null</c> at the top level.</summary>
    private static readonly System.Buffers.SearchValues<byte> ScalarEnd = System.Buffers.SearchValues.Create(" \t\n\r,}"u8);

    private readonly byte[][] _names;
    private readonly int _capture;
    private readonly List<JsonTopLevelValue> _found;

    // One buffer holds every value kept, one after another: an answer's usage and model cost one array, not one each.
    // Growing it leaves the values found before in the array they were found in.
    private byte[]? _kept;
    private int _keptEnd;
    private bool _capturing;
    private int _keptStart;
    private int _keptLength;
    private int _matchedName = -1;
    private KeyBytes _key;
    private State _state = State.BeforeRoot;
    // Where the chunk being read starts in the body.
    private long _position;
    private int _keyLength;
    private bool _keyEscaped;
    private bool _escape;
    private long _valueStart;
    private int _depth;

    /// <summary>Looks for the top-level properties named <paramref name="names"/>; keeps up to <paramref name="capture"/> bytes of each value (0: ranges only).</summary>
    public JsonTopLevelScanner(int capture, params ReadOnlySpan<string> names)
        : this(capture, Utf8(names))
    {
    }

    /// <summary>Looks for the top-level properties named <paramref name="names"/> (UTF-8, shared: never changed here).</summary>
    public JsonTopLevelScanner(int capture, byte[][] names)
    {
        _capture = capture;
        _names = names;
        _found = new(names.Length);
    }

    /// <summary>Encodes names once, for scanners made per answer.</summary>
    public static byte[][] Utf8(params ReadOnlySpan<string> names)
    {
        var encoded = new byte[names.Length][];
        for (var i = 0; i < names.Length; i++)
        {
            encoded[i] = System.Text.Encoding.UTF8.GetBytes(names[i]);
        }

        return encoded;
    }

    private enum State
    {
        BeforeRoot,
        BeforeKey,
        InKey,
        BeforeColon,
        BeforeValue,
        InStringValue,
        InNested,
        InNestedString,
        InScalar,
        AfterValue,
        Done,
        Invalid,
    }

    public void Feed(ReadOnlySpan<byte> chunk)
    {
        // The state lives in a local while the chunk is read, and the value being kept is copied once per chunk (or once
        // when it ends), not byte by byte: a structural byte costs a switch, and a run of plain bytes one vector search.
        var state = _state;
        var at = 0;
        var keepFrom = _capturing ? 0 : -1;
        while (at < chunk.Length && state < State.Done)
        {
            var b = chunk[at];
            switch (state)
            {
                case State.BeforeRoot:
                    state = IsSpace(b) ? State.BeforeRoot : b == '{' ? State.BeforeKey : State.Invalid;
                    at++;
                    break;
                case State.BeforeKey:
                    if (b == '"')
                    {
                        (state, _keyLength, _keyEscaped, _escape) = (State.InKey, 0, false, false);
                    }
                    else if (b == '}')
                    {
                        state = State.Done;
                    }
                    else if (!IsSpace(b) && b != ',')
                    {
                        state = State.Invalid;
                    }

                    at++;
                    break;
                case State.InKey:
                    at = ReadKey(chunk, at, ref state);
                    break;
                case State.BeforeColon:
                    state = b == ':' ? State.BeforeValue : IsSpace(b) ? State.BeforeColon : State.Invalid;
                    at++;
                    break;
                case State.BeforeValue:
                    if (!IsSpace(b))
                    {
                        _valueStart = _position + at;
                        if (_matchedName >= 0 && _capture > 0)
                        {
                            // Small at first (a usage object is a few dozen bytes, a model name fewer), grown if need be.
                            _kept ??= new byte[Math.Min((long)_capture * _names.Length, 128)];
                            (_capturing, _keptStart, _keptLength, keepFrom) = (true, _keptEnd, 0, at);
                        }

                        (state, _escape, _depth) = b switch
                        {
                            (byte)'"' => (State.InStringValue, false, 0),
                            (byte)'{' or (byte)'[' => (State.InNested, false, 1),
                            (byte)',' or (byte)'}' or (byte)']' or (byte)':' => (State.Invalid, false, 0),
                            _ => (State.InScalar, false, 0),
                        };
                    }

                    at++;
                    break;
                case State.InStringValue:
                case State.InNestedString:
                    if (SkipString(chunk, ref at))
                    {
                        // The closing quote, kept with the value.
                        at++;
                        if (state == State.InNestedString)
                        {
                            state = State.InNested;
                        }
                        else
                        {
                            state = EndValue(chunk, at, ref keepFrom);
                        }
                    }

                    break;
                case State.InNested:
                    var next = chunk[at..].IndexOfAny(NestedSyntax);
                    if (next < 0)
                    {
                        at = chunk.Length;
                        break;
                    }

                    at += next + 1;
                    switch (chunk[at - 1])
                    {
                        case (byte)'"':
                            (state, _escape) = (State.InNestedString, false);
                            break;
                        case (byte)'{' or (byte)'[':
                            _depth++;
                            break;
                        default:
                            if (--_depth == 0)
                            {
                                state = EndValue(chunk, at, ref keepFrom);
                            }

                            break;
                    }

                    break;
                case State.InScalar:
                    var end = chunk[at..].IndexOfAny(ScalarEnd);
                    if (end < 0)
                    {
                        at = chunk.Length;
                        break;
                    }

                    // The delimiter belongs to the object: read again as what follows the value.
                    at += end;
                    state = EndValue(chunk, at, ref keepFrom);
                    break;
                case State.AfterValue:
                    state = b == ',' ? State.BeforeKey : b == '}' ? State.Done : IsSpace(b) ? State.AfterValue : State.Invalid;
                    at++;
                    break;
            }
        }

        if (keepFrom >= 0 && _capturing)
        {
            Keep(chunk[keepFrom..]);
        }

        _state = state;
        _position += chunk.Length;
    }

    /// <summary>Reads a key's bytes from <paramref name="at"/>; returns where reading stopped (past its closing quote, or the chunk's end).</summary>
    private int ReadKey(ReadOnlySpan<byte> chunk, int at, ref State state)
    {
        while (at < chunk.Length)
        {
            if (_escape)
            {
                // The byte after a backslash, whatever it is.
                KeepKey(chunk.Slice(at++, 1));
                _escape = false;
                continue;
            }

            var rest = chunk[at..];
            var stop = rest.IndexOfAny((byte)'"', (byte)'\\');
            KeepKey(stop < 0 ? rest : rest[..stop]);
            if (stop < 0)
            {
                return chunk.Length;
            }

            at += stop + 1;
            if (rest[stop] == '"')
            {
                _matchedName = MatchedName();
                state = State.BeforeColon;
                return at;
            }

            KeepKey(rest.Slice(stop, 1));
            (_keyEscaped, _escape) = (true, true);
        }

        return at;
    }

    /// <summary>Keeps a key's next bytes for the match, up to the longest name worth matching; past it only their count.</summary>
    private void KeepKey(ReadOnlySpan<byte> bytes)
    {
        if (_keyLength < MaxKey)
        {
            bytes[..Math.Min(bytes.Length, MaxKey - _keyLength)].CopyTo(((Span<byte>)_key)[_keyLength..]);
        }

        _keyLength = (int)Math.Min(int.MaxValue, (long)_keyLength + bytes.Length);
    }

    /// <summary>Passes over a string's bytes from <paramref name="at"/>; returns true with <paramref name="at"/> on its closing quote, false at the chunk's end.</summary>
    private bool SkipString(ReadOnlySpan<byte> chunk, ref int at)
    {
        while (at < chunk.Length)
        {
            if (_escape)
            {
                (at, _escape) = (at + 1, false);
                continue;
            }

            var stop = chunk[at..].IndexOfAny((byte)'"', (byte)'\\');
            if (stop < 0)
            {
                at = chunk.Length;
                return false;
            }

            at += stop;
            if (chunk[at] == '"')
            {
                return true;
            }

            (at, _escape) = (at + 1, true);
        }

        return false;
    }

    /// <summary>Feeds a whole stream (a spilled body), a chunk at a time.</summary>
    public async ValueTask FeedAsync(Stream stream, CancellationToken cancellationToken)
    {
        var chunk = System.Buffers.ArrayPool<byte>.Shared.Rent(ScanChunk);
        try
        {
            int count;
            while ((count = await stream.ReadAsync(chunk, cancellationToken)) > 0)
            {
                Feed(chunk.AsSpan(0, count));
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(chunk);
        }
    }

    /// <summary>Returns the values found, or null when the body was not one whole JSON object.</summary>
    public List<JsonTopLevelValue>? Complete() => _state == State.Done ? _found : null;

    /// <summary>Gets the values found so far, whether or not the object was whole (an answer cut short).</summary>
    public IReadOnlyList<JsonTopLevelValue> Found => _found;

    /// <summary>Keeps the value's next bytes, up to the cap; past it only their count is kept.</summary>
    private void Keep(ReadOnlySpan<byte> bytes)
    {
        // Saturated: a value of gigabytes is only ever over the cap.
        var length = (int)Math.Min(int.MaxValue, (long)_keptLength + bytes.Length);
        if (length <= _capture)
        {
            var end = _keptStart + length;
            if (end > _kept!.Length)
            {
                Array.Resize(ref _kept, Math.Max(_kept.Length * 2, end));
            }

            bytes.CopyTo(_kept.AsSpan(_keptStart + _keptLength));
        }

        _keptLength = length;
    }

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r';

    /// <summary>Ends the value just before <paramref name="end"/> (an index into <paramref name="chunk"/>); returns the state after it.</summary>
    private State EndValue(ReadOnlySpan<byte> chunk, int end, ref int keepFrom)
    {
        if (_matchedName >= 0)
        {
            ReadOnlyMemory<byte>? value = null;
            if (_capturing)
            {
                Keep(chunk[keepFrom..end]);
                if (_keptLength <= _capture)
                {
                    value = _kept.AsMemory(_keptStart, _keptLength);
                    _keptEnd = _keptStart + _keptLength;
                }
            }

            _found.Add(new JsonTopLevelValue(_matchedName, _valueStart, _position + end, value));
            (_capturing, _matchedName, keepFrom) = (false, -1, -1);
        }

        return State.AfterValue;
    }

    /// <summary>Returns which name the key is, or -1; an escaped key ("mod\u0065l") is decoded as the provider's parser would.</summary>
    private int MatchedName()
    {
        if (_keyLength > MaxKey)
        {
            return -1;
        }

        for (var i = 0; i < _names.Length; i++)
        {
            if (_keyEscaped ? EscapedKeyIs(_names[i]) : ((ReadOnlySpan<byte>)_key)[.._keyLength].SequenceEqual(_names[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>The bytes of a key, as far as any name worth matching goes: inline, so that a scanner is one object.</summary>
    [System.Runtime.CompilerServices.InlineArray(MaxKey)]
    private struct KeyBytes
    {
        private byte _first;
    }

    private bool EscapedKeyIs(byte[] name)
    {
        var quoted = new byte[_keyLength + 2];
        quoted[0] = quoted[^1] = (byte)'"';
        ((ReadOnlySpan<byte>)_key)[.._keyLength].CopyTo(quoted.AsSpan(1));
        var reader = new Utf8JsonReader(quoted);
        try
        {
            return reader.Read() && reader.ValueTextEquals(name);
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

/// <summary>A top-level value found by <see cref="JsonTopLevelScanner"/>: which name, where, and its bytes when kept (null when over the cap).</summary>
internal readonly record struct JsonTopLevelValue(int Name, long Start, long End, ReadOnlyMemory<byte>? Value);
