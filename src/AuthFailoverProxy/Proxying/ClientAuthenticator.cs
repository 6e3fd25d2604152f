using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// Recognises agents by the token they send as <c>x-api-key</c> or <c>Authorization: Bearer</c>, the two places the
/// stock SDKs and Claude Code put a key. Tokens are compared as SHA-256 digests in constant time, and every configured
/// token is compared, so neither the token's length nor which one matched shows in the timing.
/// </summary>
internal sealed partial class ClientAuthenticator
{
    /// <summary>The name recorded for requests admitted without a token under <see cref="ClientOptions.AllowAnonymous"/>.</summary>
    public const string AnonymousClient = "anonymous";

    private const int MaxTokenChars = 1024;
    private readonly (string Name, byte[] Digest)[] _tokens;
    private readonly bool _allowAnonymous;

    public ClientAuthenticator(IOptions<ClientOptions> options, ILogger<ClientAuthenticator> logger)
    {
        var value = options.Value;
        _tokens = [.. value.Tokens.Select((t, i) => (t.Name ?? $"client-{i + 1}", SHA256.HashData(Encoding.UTF8.GetBytes(t.Token ?? string.Empty))))];
        _allowAnonymous = value.AllowAnonymous;
        Logger = logger;
    }

    private ILogger Logger { get; }

    public bool AllowsAnonymous => _allowAnonymous;

    /// <summary>Returns the client's name, or <see langword="null"/> when the request must be refused.</summary>
    public string? Authenticate(HttpRequest request)
    {
        var headers = request.Headers;
        string? presented = null;
        if (headers.TryGetValue("x-api-key", out var apiKey) && apiKey.Count == 1)
        {
            presented = apiKey[0];
            if (Match(presented) is { } name)
            {
                return name;
            }
        }

        var authorization = headers[HeaderNames.Authorization];
        if (authorization.Count == 1 && authorization[0] is { } value && value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented ??= value;
            if (Match(value.AsSpan(7).Trim()) is { } name)
            {
                return name;
            }
        }

        if (_allowAnonymous)
        {
            return AnonymousClient;
        }

        LogRefused(Logger, request.Path.Value ?? "/", presented is null ? "no client token" : "an unknown client token");
        return null;
    }

    private string? Match(ReadOnlySpan<char> token)
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

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Refused a request to {Path:l}: {Reason:l}. The upstream was not contacted.")]
    private static partial void LogRefused(ILogger logger, string path, string reason);
}
