using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// Recognises agents by the token they send as <c>x-api-key</c> or <c>Authorization: Bearer</c>, the two places the
/// stock SDKs and Claude Code put a key, or as <c>api-key</c>, where the Azure OpenAI SDKs put it. Tokens are compared
/// as SHA-256 digests in constant time, and every configured token is compared, so neither the token's length nor which
/// one matched shows in the timing.
/// </summary>
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
        var presented = false;
        if (headers.TryGetValue("x-api-key", out var apiKey) && apiKey.Count == 1)
        {
            presented = true;
            if (_tokens.Match(apiKey[0]) is { } name)
            {
                return name;
            }
        }

        var authorization = headers[HeaderNames.Authorization];
        if (authorization.Count == 1 && TokenSet.Bearer(authorization[0]) is { IsEmpty: false } bearer)
        {
            presented = true;
            if (_tokens.Match(bearer) is { } name)
            {
                return name;
            }
        }

        if (headers.TryGetValue("api-key", out var azureKey) && azureKey.Count == 1)
        {
            presented = true;
            if (_tokens.Match(azureKey[0]) is { } name)
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

    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "Refused a request to {Path:l}: {Reason:l}. The upstream was not contacted.")]
    private static partial void LogRefused(ILogger logger, string path, string reason);
}
