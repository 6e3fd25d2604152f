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
        var at = 0;
        while (at < chunk.Length)
        {
            if (_state is State.Done or State.Invalid)
            {
                return;
            }

            // Most of a body is the inside of strings and nested values, where only a few bytes change anything: the
            // bytes up to the next such one are passed over at once (a prompt of a megabyte in well under a millisecond).
            var run = _state switch
            {
                State.InStringValue or State.InNestedString or State.InKey when !_escape => chunk[at..].IndexOfAny((byte)'"', (byte)'\\'),
                State.InNested => chunk[at..].IndexOfAny(NestedSyntax),
                _ => 0,
            };
            if (run != 0)
            {
                run = run < 0 ? chunk.Length - at : run;
                if (_state == State.InKey)
                {
                    // A key's plain bytes: kept for the match, up to the longest name worth matching.
                    if (_keyLength < MaxKey)
                    {
                        var kept = chunk.Slice(at, Math.Min(run, MaxKey - _keyLength));
                        kept.CopyTo(((Span<byte>)_key)[_keyLength..]);
                    }

                    _keyLength = (int)Math.Min(int.MaxValue, (long)_keyLength + run);
                }
                else if (_capturing)
                {
                    Keep(chunk.Slice(at, run));
                }

                (at, _position) = (at + run, _position + run);
                continue;
            }

            var b = chunk[at++];
            Step(b);
            if (_capturing && _state is State.InStringValue or State.InNested or State.InNestedString or State.InScalar)
            {
                Keep(new ReadOnlySpan<byte>(in b));
            }

            _position++;
        }
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

    private void Step(byte b)
    {
        switch (_state)
        {
            case State.BeforeRoot:
                _state = IsSpace(b) ? State.BeforeRoot : b == '{' ? State.BeforeKey : State.Invalid;
                break;
            case State.BeforeKey:
                if (b == '"')
                {
                    (_state, _keyLength, _keyEscaped, _escape) = (State.InKey, 0, false, false);
                }
                else if (b == '}')
                {
                    _state = State.Done;
                }
                else if (!IsSpace(b) && b != ',')
                {
                    _state = State.Invalid;
                }

                break;
            case State.InKey:
                if (!_escape && b == '"')
                {
                    _matchedName = MatchedName();
                    _state = State.BeforeColon;
                    break;
                }

                _escape = !_escape && b == '\\';
                _keyEscaped |= b == '\\';
                if (_keyLength < MaxKey)
                {
                    _key[_keyLength] = b;
                }

                _keyLength++;
                break;
            case State.BeforeColon:
                _state = b == ':' ? State.BeforeValue : IsSpace(b) ? State.BeforeColon : State.Invalid;
                break;
            case State.BeforeValue:
                if (IsSpace(b))
                {
                    break;
                }

                _valueStart = _position;
                if (_matchedName >= 0 && _capture > 0)
                {
                    // Small at first (a usage object is a few dozen bytes, a model name fewer), grown if need be.
                    _kept ??= new byte[Math.Min((long)_capture * _names.Length, 128)];
                    (_capturing, _keptStart, _keptLength) = (true, _keptEnd, 0);
                }

                (_state, _escape, _depth) = b switch
                {
                    (byte)'"' => (State.InStringValue, false, 0),
                    (byte)'{' or (byte)'[' => (State.InNested, false, 1),
                    (byte)',' or (byte)'}' or (byte)']' or (byte)':' => (State.Invalid, false, 0),
                    _ => (State.InScalar, false, 0),
                };
                break;
            case State.InStringValue:
                if (!_escape && b == '"')
                {
                    EndValue(_position + 1, b);
                }
                else
                {
                    _escape = !_escape && b == '\\';
                }

                break;
            case State.InNested:
                if (b == '"')
                {
                    (_state, _escape) = (State.InNestedString, false);
                }
                else if (b is (byte)'{' or (byte)'[')
                {
                    _depth++;
                }
                else if (b is (byte)'}' or (byte)']' && --_depth == 0)
                {
                    EndValue(_position + 1, b);
                }

                break;
            case State.InNestedString:
                if (!_escape && b == '"')
                {
                    _state = State.InNested;
                }
                else
                {
                    _escape = !_escape && b == '\\';
                }

                break;
            case State.InScalar:
                if (IsSpace(b) || b is (byte)',' or (byte)'}')
                {
                    EndValue(_position);
                    Step(b); // the delimiter belongs to the object
                }

                break;
            case State.AfterValue:
                _state = b == ',' ? State.BeforeKey : b == '}' ? State.Done : IsSpace(b) ? State.AfterValue : State.Invalid;
                break;
        }
    }

    /// <summary>Ends the value at <paramref name="end"/>; <paramref name="last"/> is its closing quote or bracket, kept with it.</summary>
    private void EndValue(long end, byte? last = null)
    {
        if (_matchedName >= 0)
        {
            ReadOnlyMemory<byte>? value = null;
            if (_capturing)
            {
                if (last is { } closing)
                {
                    Keep(new ReadOnlySpan<byte>(in closing));
                }

                if (_keptLength <= _capture)
                {
                    value = _kept.AsMemory(_keptStart, _keptLength);
                    _keptEnd = _keptStart + _keptLength;
                }
            }

            _found.Add(new JsonTopLevelValue(_matchedName, _valueStart, end, value));
            (_capturing, _matchedName) = (false, -1);
        }

        _state = State.AfterValue;
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
