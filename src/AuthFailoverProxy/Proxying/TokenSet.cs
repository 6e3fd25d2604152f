using System.Security.Cryptography;
using System.Text;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// Named tokens checked without leaking them through timing: SHA-256 digests compared in constant time, every
/// configured token compared every time, so neither the token's length nor which one matched shows.
/// </summary>
internal sealed class TokenSet
{
    private const int MaxTokenChars = 1024;
    private readonly (string Name, byte[] Digest)[] _tokens;

    public TokenSet(IEnumerable<(string Name, string Token)> tokens)
        => _tokens = [.. tokens.Select(t => (t.Name, SHA256.HashData(Encoding.UTF8.GetBytes(t.Token))))];

    public bool IsEmpty => _tokens.Length == 0;

    /// <summary>Returns the name of the token presented, or <see langword="null"/>.</summary>
    public string? Match(ReadOnlySpan<char> token)
    {
        if (token.IsEmpty || token.Length > MaxTokenChars)
        {
            return null;
        }

        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(token.Length)];
        var length = Encoding.UTF8.GetBytes(token, utf8);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8[..length], digest);

        string? matched = null;
        foreach (var (name, expected) in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, expected))
            {
                matched ??= name;
            }
        }

        return matched;
    }

    /// <summary>Reads a bearer token from an <c>Authorization</c> header value.</summary>
    public static ReadOnlySpan<char> Bearer(string? authorization)
        => authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization.AsSpan(7).Trim() : default;
}
