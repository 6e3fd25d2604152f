using System.Buffers;
using System.Text;
using System.Text.Json;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Replaces the top-level <c>"model"</c> value of a JSON request body for safe mode, every time it occurs: a body with
/// <c>model</c> twice is read by the provider's parser as its last one, so rewriting only the first would let the
/// original model through. Every other byte of the agent's request is sent exactly as it came. A body that is not a
/// JSON object, or has no top-level model, is left alone: the proxy never breaks a request it does not understand.
/// A spilled body is not copied: the rewrite is a view that splices the new value into the file as it is read.
/// </summary>
internal static class ModelRewriter
{
    private const int ScanChunk = 64 * 1024;

    /// <summary>Returns <paramref name="json"/> with every top-level model replaced, or null when there is none to replace.</summary>
    public static byte[]? TryRewrite(ReadOnlySpan<byte> json, string model)
    {
        var scanner = new TopLevelScanner("model"u8);
        scanner.Feed(json);
        if (scanner.Complete() is not { Count: > 0 } ranges)
        {
            return null;
        }

        var value = Encoded(model);
        var result = new byte[json.Length + ranges.Sum(r => value.Length - (int)(r.End - r.Start))];
        var (from, to) = (0, 0);
        foreach (var (start, end) in ranges)
        {
            json[from..(int)start].CopyTo(result.AsSpan(to));
            to += (int)start - from;
            value.CopyTo(result.AsSpan(to));
            to += value.Length;
            from = (int)end;
        }

        json[from..].CopyTo(result.AsSpan(to));
        return result;
    }

    /// <summary>
    /// Returns <paramref name="body"/> with every top-level model replaced, or null when there is none. A body held in
    /// memory (1 MiB at most) is copied once; a spilled one is read once to find the values, then served as a view.
    /// </summary>
    public static async ValueTask<ReplayableBody?> TryRewriteAsync(ReplayableBody body, string model, CancellationToken cancellationToken)
    {
        if (!body.IsSpilled)
        {
            return TryRewrite(body.InMemory, model) is { } bytes ? ReplayableBody.FromBytes(bytes) : null;
        }

        var scanner = new TopLevelScanner("model"u8);
        var chunk = ArrayPool<byte>.Shared.Rent(ScanChunk);
        try
        {
            await using var read = body.OpenRead();
            int count;
            while ((count = await read.ReadAsync(chunk, cancellationToken)) > 0)
            {
                scanner.Feed(chunk.AsSpan(0, count));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return scanner.Complete() is { Count: > 0 } ranges ? ReplayableBody.Spliced(body, ranges, Encoded(model)) : null;
    }

    private static byte[] Encoded(string model) => Encoding.UTF8.GetBytes("\"" + JsonEncodedText.Encode(model).Value + "\"");

    /// <summary>
    /// Finds the byte ranges of the values of one top-level property of a JSON object, reading it chunk by chunk with a
    /// few bytes of state: no token, however long (a base64 image), is ever held whole.
    /// </summary>
    private sealed class TopLevelScanner(ReadOnlySpan<byte> name)
    {
        private const int MaxKey = 64;

        private readonly byte[] _name = name.ToArray();
        private readonly List<(long Start, long End)> _found = [];
        private readonly byte[] _key = new byte[MaxKey];
        private State _state = State.BeforeRoot;
        private long _position;
        private int _keyLength;
        private bool _keyEscaped;
        private bool _escape;
        private bool _matched;
        private long _valueStart;
        private int _depth;

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
            foreach (var b in chunk)
            {
                if (_state is State.Done or State.Invalid)
                {
                    return;
                }

                Step(b);
                _position++;
            }
        }

        /// <summary>Returns the ranges found, or null when the body was not one whole JSON object.</summary>
        public List<(long Start, long End)>? Complete() => _state == State.Done ? _found : null;

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
                        _matched = KeyIsName();
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
                        EndValue(_position + 1);
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
                        EndValue(_position + 1);
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

        private void EndValue(long end)
        {
            if (_matched)
            {
                _found.Add((_valueStart, end));
            }

            _state = State.AfterValue;
        }

        /// <summary>Compares the key with the name; an escaped key ("mod\u0065l") is decoded as the provider's parser would.</summary>
        private bool KeyIsName()
        {
            if (_keyLength > MaxKey)
            {
                return false;
            }

            if (!_keyEscaped)
            {
                return _key.AsSpan(0, _keyLength).SequenceEqual(_name);
            }

            var quoted = new byte[_keyLength + 2];
            quoted[0] = quoted[^1] = (byte)'"';
            _key.AsSpan(0, _keyLength).CopyTo(quoted.AsSpan(1));
            var reader = new Utf8JsonReader(quoted);
            try
            {
                return reader.Read() && reader.ValueTextEquals(_name);
            }
            catch (JsonException)
            {
                return false;
            }
        }
    }
}
