using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.Hosting;

namespace AuthFailoverProxy.Cli;

/// <summary>What the proxy answered: its status and body.</summary>
internal sealed record ProxyAnswer(int Status, string Body);

/// <summary>
/// The proxy's management listener as afp talks to it. The address comes from <c>--url</c>, else <c>AFP_URL</c>, else the
/// proxy's own <c>AFP_MANAGEMENT_URLS</c> (set in the image and the chart, so <c>kubectl exec … afp status</c> finds it),
/// else <c>http://127.0.0.1:9090</c>. Tokens come only from the environment or files, never from a command-line value
/// (which shells keep in their history and every user sees in the process list): the admin token from
/// <c>--token-file</c>, <c>AFP_ADMIN_TOKEN</c> or <c>AFP_ADMIN_TOKEN_FILE</c>; reading uses <c>AFP_MANAGEMENT_TOKEN</c>
/// (or <c>AFP_MANAGEMENT_TOKEN_FILE</c>) and falls back to the admin token. No message ever shows a token.
/// </summary>
internal sealed class ProxyConnection : IDisposable
{
    public const string DefaultUrl = "http://127.0.0.1:9090";

    private const string TokenSources = "set AFP_ADMIN_TOKEN, or put the token in a file and pass --token-file FILE (or set AFP_ADMIN_TOKEN_FILE); --token-file - reads it from the first line of standard input";

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly HttpClient _http = new() { Timeout = Timeout };
    private readonly CliEnvironment _environment;
    private readonly string? _tokenFile;
    private readonly Lazy<string?> _admin;
    private readonly Lazy<string?> _reader;

    public ProxyConnection(string? url, string? tokenFile, CliEnvironment environment)
    {
        _environment = environment;
        _tokenFile = tokenFile;
        Address = ResolveAddress(url, environment);
        _admin = new(ReadAdminToken);
        _reader = new(() => environment.Variable("AFP_MANAGEMENT_TOKEN")
            ?? (environment.Variable("AFP_MANAGEMENT_TOKEN_FILE") is { } file ? ReadTokenFile(file, "AFP_MANAGEMENT_TOKEN_FILE") : null)
            ?? _admin.Value);
    }

    /// <summary>Gets the management listener's base address, ending in '/'.</summary>
    public Uri Address { get; }

    /// <summary>Gets the address as messages show it: without a user or password.</summary>
    public string Shown => ConfigurationShape.WithoutCredentials(Address.ToString().TrimEnd('/'));

    /// <summary>Reads the admin token now, so that standard input gives it before anything else is read from there.</summary>
    public void RequireAdminToken()
    {
        if (_admin.Value is null)
        {
            throw new CliException(ExitCodes.Usage, $"this command changes keys and needs the admin token: {TokenSources}.");
        }
    }

    /// <summary>GETs <paramref name="path"/> with the management token (or the admin token, or none).</summary>
    public Task<ProxyAnswer> ReadAsync(string path, CancellationToken cancellationToken)
        => SendAsync(HttpMethod.Get, path, content: null, _reader.Value, admin: false, cancellationToken);

    /// <summary>Calls the admin API with the admin token, which it needs.</summary>
    public Task<ProxyAnswer> AdminAsync(HttpMethod method, string path, HttpContent? content, CancellationToken cancellationToken)
    {
        RequireAdminToken();
        return SendAsync(method, path, content, _admin.Value, admin: true, cancellationToken);
    }

    /// <summary>Reads an answer into the service's own type; an answer of another shape is a failure, not a crash.</summary>
    public T Parse<T>(ProxyAnswer answer, JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(answer.Body, type) ?? throw new JsonException("null");
        }
        catch (JsonException)
        {
            throw new CliException(ExitCodes.Failed, $"{Shown} answered with something that is not the proxy's JSON: is this the proxy's management address?");
        }
    }

    public void Dispose() => _http.Dispose();

    internal static Uri ResolveAddress(string? url, CliEnvironment environment)
    {
        var text = url ?? environment.Variable("AFP_URL") ?? FromManagementUrls(environment.Variable("AFP_MANAGEMENT_URLS")) ?? DefaultUrl;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var address) || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliException(ExitCodes.Usage, $"'{ConfigurationShape.WithoutCredentials(text)}' is not the proxy's management address: use an http:// or https:// URL such as {DefaultUrl} (--url or AFP_URL).");
        }

        return address.AbsolutePath.EndsWith('/') ? address : new Uri(address + "/");
    }

    /// <summary>The first of the proxy's management addresses (<c>http://+:9090</c>), as reached from the same machine.</summary>
    private static string? FromManagementUrls(string? urls)
    {
        var first = urls?.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        if (first is null)
        {
            return null;
        }

        foreach (var any in new[] { "://+", "://*", "://0.0.0.0", "://localhost" })
        {
            first = first.Replace(any, "://127.0.0.1", StringComparison.OrdinalIgnoreCase);
        }

        return first.Replace("://[::]", "://[::1]", StringComparison.Ordinal);
    }

    private string? ReadAdminToken()
    {
        if (_tokenFile is not null)
        {
            return ReadTokenFile(_tokenFile, "--token-file");
        }

        return _environment.Variable("AFP_ADMIN_TOKEN")
            ?? (_environment.Variable("AFP_ADMIN_TOKEN_FILE") is { } file ? ReadTokenFile(file, "AFP_ADMIN_TOKEN_FILE") : null);
    }

    private string ReadTokenFile(string path, string setting)
    {
        string? token;
        if (path == "-")
        {
            token = _environment.ReadSecretLine("Admin token (not shown): ");
        }
        else
        {
            try
            {
                token = File.ReadAllText(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw new CliException(ExitCodes.Usage, $"{setting}: cannot read '{path}' ({ex.GetType().Name.Replace("Exception", string.Empty, StringComparison.Ordinal)}).");
            }
        }

        token = token?.Trim();
        return string.IsNullOrEmpty(token)
            ? throw new CliException(ExitCodes.Usage, path == "-" ? $"{setting} -: no token on standard input." : $"{setting}: '{path}' is empty.")
            : token;
    }

    private async Task<ProxyAnswer> SendAsync(HttpMethod method, string path, HttpContent? content, string? token, bool admin, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(Address, path)) { Content = content };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        ProxyAnswer answer;
        try
        {
            using var response = await _http.SendAsync(request, cancellationToken);
            answer = new ProxyAnswer((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
        }
        catch (HttpRequestException ex)
        {
            throw new CliException(ExitCodes.Failed, $"cannot reach the proxy at {Shown} ({ex.InnerException?.Message ?? ex.Message}). Is it running, and is this its management address (port 9090 by default)? Set --url or AFP_URL.");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CliException(ExitCodes.Failed, $"the proxy at {Shown} did not answer within {Timeout.TotalSeconds:0} s.");
        }

        return answer.Status is >= 200 and < 300 ? answer : throw Refusal(answer, token is not null, admin);
    }

    /// <summary>Says why the proxy refused, in its own words where it gave them, with CLI commands for the API's.</summary>
    private CliException Refusal(ProxyAnswer answer, bool sentToken, bool admin)
    {
        string? error = null;
        var providerShaped = false;
        try
        {
            using var body = JsonDocument.Parse(answer.Body);
            if (body.RootElement.ValueKind == JsonValueKind.Object && body.RootElement.TryGetProperty("error", out var e))
            {
                error = e.ValueKind == JsonValueKind.String ? e.GetString() : null;
                providerShaped = e.ValueKind == JsonValueKind.Object;
            }
        }
        catch (JsonException)
        {
        }

        if (providerShaped)
        {
            // {"type":"error","error":{…}}: a pool's answer, so this is the agent port (or the provider itself).
            return new CliException(ExitCodes.Failed, $"{Shown} answered {answer.Status} like an LLM API, not like the proxy's management listener: point --url (or AFP_URL) at the management port (9090 by default), not the agent port.", answer.Status);
        }

        var message = answer.Status switch
        {
            401 when admin => $"the proxy refused the admin token (401): it is not one of the proxy's Admin:Tokens. Check AFP_ADMIN_TOKEN or the token file ({TokenSources}).",
            401 when sentToken => "the proxy refused the token (401): use the proxy's Management:Token as AFP_MANAGEMENT_TOKEN (or AFP_MANAGEMENT_TOKEN_FILE), or an admin token.",
            401 => $"the proxy wants a token for this (401): set AFP_MANAGEMENT_TOKEN to the proxy's Management:Token, or {TokenSources}.",
            _ => ForCommandLine(error) ?? $"the proxy answered {answer.Status}: {SecretMasker.Mask(answer.Body.Length > 300 ? answer.Body[..300] : answer.Body)}",
        };
        return new CliException(answer.Status == 400 ? ExitCodes.Usage : ExitCodes.Failed, message, answer.Status);
    }

    /// <summary>The proxy's advice, written for curl ("POST /admin/pools/p/keys/k/confirm", "?force=true", "GET /status"), as afp commands.</summary>
    internal static string? ForCommandLine(string? message)
    {
        if (message is null)
        {
            return null;
        }

        message = System.Text.RegularExpressions.Regex.Replace(message, @"POST /admin/pools/([A-Za-z0-9._-]+)/keys/([A-Za-z0-9._-]+)/(confirm|disable|enable)(\[\?force=true\])?", "afp keys $3 $1 $2");
        message = System.Text.RegularExpressions.Regex.Replace(message, @"DELETE /admin/pools/([A-Za-z0-9._-]+)/keys/([A-Za-z0-9._-]+)", "afp keys remove $1 $2");
        return message.Replace("Repeat with ?force=true", "Repeat with --force", StringComparison.Ordinal)
            .Replace("GET /status on the management port", "afp status", StringComparison.Ordinal)
            .Replace("GET /status", "afp status", StringComparison.Ordinal)
            .Replace("GET /admin/keys", "afp keys list", StringComparison.Ordinal);
    }
}
