using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// Recognises agents by the token they send as <c>x-api-key</c> or <c>Authorization: Bearer</c>, the two places the
/// stock SDKs and Claude Code put a key, or as <c>api-key</c>, where the Azure OpenAI SDKs put it. Tokens are compared
/// as SHA-256 digests in constant time, and every configured token is compared, so neither the token's length nor which
/// one matched shows in the timing.
/// </summary>
/// <remarks>
/// An agent sends the same token on every request of a keep-alive connection, and a SHA-256 digest per request is the
/// largest single cost of the check. So an HTTP/1.x connection remembers the token its last request was admitted with
/// (<see cref="AdmittedToken"/>), and a request presenting it again is admitted by a constant-time comparison with it.
/// HTTP/1.x only: its requests on a connection come one at a time, while HTTP/2's streams would share the memo at once.
/// </remarks>
internal sealed partial class ClientAuthenticator
{
    /// <summary>The name recorded for requests admitted without a token under <see cref="ClientOptions.AllowAnonymous"/>.</summary>
    public const string AnonymousClient = "anonymous";

    private readonly TokenSet _tokens;
    private readonly bool _allowAnonymous;
    private readonly ILogger _logger;

    public ClientAuthenticator(IOptions<ClientOptions> options, ILogger<ClientAuthenticator> logger)
    {
        var value = options.Value;
        _tokens = new TokenSet(value.Tokens.Select((t, i) => (t.Name ?? $"client-{i + 1}", t.Token ?? string.Empty)));
        _allowAnonymous = value.AllowAnonymous;
        _logger = logger;
    }

    public bool AllowsAnonymous => _allowAnonymous;

    /// <summary>Returns the client's name, or <see langword="null"/> when the request must be refused.</summary>
    public string? Authenticate(HttpRequest request)
    {
        var headers = request.Headers;
        var connection = HttpProtocol.IsHttp11(request.Protocol) || HttpProtocol.IsHttp10(request.Protocol)
            ? request.HttpContext.Features.Get<IConnectionItemsFeature>()?.Items
            : null;
        var presented = false;
        if (headers.TryGetValue("x-api-key", out var apiKey) && apiKey.Count == 1)
        {
            presented = true;
            if (Match(apiKey[0], connection) is { } name)
            {
                return name;
            }
        }

        var authorization = headers[HeaderNames.Authorization];
        if (authorization.Count == 1 && TokenSet.Bearer(authorization[0]) is { IsEmpty: false } bearer)
        {
            presented = true;
            if (Match(bearer, connection) is { } name)
            {
                return name;
            }
        }

        if (headers.TryGetValue("api-key", out var azureKey) && azureKey.Count == 1)
        {
            presented = true;
            if (Match(azureKey[0], connection) is { } name)
            {
                return name;
            }
        }

        if (_allowAnonymous)
        {
            return AnonymousClient;
        }

        LogRefused(_logger, request.Path.Value ?? "/", presented ? "an unknown client token" : "no client token");
        return null;
    }

    private string? Match(ReadOnlySpan<char> token, IDictionary<object, object?>? connection)
    {
        if (connection is null)
        {
            return _tokens.Match(token);
        }

        if (connection.TryGetValue(typeof(AdmittedToken), out var memo) && memo is AdmittedToken admitted && admitted.Is(token))
        {
            return admitted.Name;
        }

        var name = _tokens.Match(token);
        if (name is not null && AdmittedToken.For(token, name) is { } remembered)
        {
            connection[typeof(AdmittedToken)] = remembered;
        }

        return name;
    }

    /// <summary>
    /// The token a connection's last request was admitted with, kept as its characters in a buffer of fixed size,
    /// zero-padded, so that comparing a presented token with it takes a time that depends on the presented token's length
    /// only: neither the remembered token's length nor where a guess differs shows, even on a connection a front shares
    /// between agents. The characters are compared as they came, with nothing encoded or copied per request, eight bytes
    /// at a time (<see cref="Same"/>).
    /// </summary>
    internal sealed class AdmittedToken
    {
        /// <summary>The longest token remembered, in characters; a longer one is checked by digest each time.</summary>
        public const int MaxChars = 256;

        private readonly char[] _padded = new char[MaxChars];
        private readonly int _length;

        private AdmittedToken(ReadOnlySpan<char> token, string name)
        {
            token.CopyTo(_padded);
            _length = token.Length;
            Name = name;
        }

        public string Name { get; }

        public static AdmittedToken? For(ReadOnlySpan<char> token, string name)
            => token.Length <= MaxChars ? new AdmittedToken(token, name) : null;

        /// <summary>Returns whether <paramref name="token"/> is the remembered one, in a time set by its own length.</summary>
        public bool Is(ReadOnlySpan<char> token)
        {
            if (token.Length > MaxChars)
            {
                // Not remembered (every remembered token fits), whatever was: said at once, as for any over-long guess.
                return false;
            }

            return Same(token, _padded.AsSpan(0, token.Length)) & (token.Length == _length);
        }

        /// <summary>
        /// Compares two spans of the same length in a time set by that length only: every 8 bytes are read and their
        /// difference OR-ed in, with no branch on what they hold. <see cref="CryptographicOperations.FixedTimeEquals"/>
        /// does the same a byte at a time, compiled without optimisation: 150 ns for a 40-character token, against 12 ns
        /// here, on every request of a keep-alive connection.
        /// </summary>
        [MethodImpl(MethodImplOptions.NoInlining)]
        private static bool Same(ReadOnlySpan<char> left, ReadOnlySpan<char> right)
        {
            var a = MemoryMarshal.AsBytes(left);
            var b = MemoryMarshal.AsBytes(right);
            ulong difference = 0;
            var at = 0;
            for (; at + sizeof(ulong) <= a.Length; at += sizeof(ulong))
            {
                difference |= MemoryMarshal.Read<ulong>(a[at..]) ^ MemoryMarshal.Read<ulong>(b[at..]);
            }

            for (; at < a.Length; at++)
            {
                difference |= (uint)(a[at] ^ b[at]);
            }

            return difference == 0;
        }
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Refused a request to {Path:l}: {Reason:l}. The upstream was not contacted.")]
    private static partial void LogRefused(ILogger logger, string path, string reason);
}
