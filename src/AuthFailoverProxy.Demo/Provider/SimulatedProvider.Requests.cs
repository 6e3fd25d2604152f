using System.Buffers;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace AuthFailoverProxy.Demo.Provider;

// Taking a request in: reading and recording it, telling the dialect and the key, and routing it.
internal sealed partial class SimulatedProvider
{
    private async Task HandleAsync(HttpContext context)
    {
        if (!IsForThisSite(context))
        {
            return;
        }

        var request = context.Request;
        var path = request.Path.Value ?? "/";
        if (_options.BasePath.Length > 0)
        {
            if (!path.StartsWith(_options.BasePath + "/", StringComparison.Ordinal))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                context.Response.ContentType = "text/plain; charset=utf-8";
                await context.Response.WriteAsync($"404 page not found (this gateway serves the API under {_options.BasePath}/)\n");
                return;
            }

            path = path[_options.BasePath.Length..];
        }
        var credential = Credential.From(request.Headers);
        var dialect = DialectOf(path, request.Headers, credential);
        var key = credential.Key;
        context.Items[OrganizationItem] = OrganizationOf(key, dialect);

        RequestShape shape;
        try
        {
            shape = await ReadAndRecordAsync(context, key, NeedsBody(path));
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or BadHttpRequestException)
        {
            // The caller went away while sending its body; it was recorded with what had arrived.
            return;
        }

        if (shape.TripsTheFirewall || path.StartsWith("/v1/organizations", StringComparison.Ordinal))
        {
            // The front's firewall answers, not the provider: an HTML page, whatever the key.
            WriteFirewallPage(context, shape.TripsTheFirewall ? StatusCodes.Status403Forbidden : StatusCodes.Status401Unauthorized);
            return;
        }

        if (!_options.ServesModels && path.StartsWith("/v1/models", StringComparison.Ordinal))
        {
            // A gateway without a model list: its 404 comes before any look at the key.
            WriteError(context, dialect, dialect == Dialect.Anthropic
                ? new ErrorReply(404, "not_found_error", "Not Found", null)
                : new ErrorReply(404, "invalid_request_error", $"Invalid URL ({request.Method} {path})", "unknown_url"));
            return;
        }

        if (TakeUpstreamFault() is { } upstreamFault)
        {
            await FailUpstreamAsync(context, dialect, upstreamFault, shape.Stream);
            return;
        }

        if (credential.Refusal(dialect, request.Headers) is { } refused)
        {
            WriteError(context, dialect, refused);
            return;
        }

        if (TryTakeKeyFault(key!, out var keyFault) && !(keyFault.Fault == KeyFault.ClaudeCodeOnly && HasBeta(request.Headers, "claude-code-20250219")))
        {
            FailKey(context, dialect, key!, keyFault.Fault, keyFault.RetryAfter);
            return;
        }

        var refusal = dialect == Dialect.OpenAI ? RefuseOpenAIAccount(request.Headers, OrganizationOf(key, dialect)) : null;
        if (refusal is null)
        {
            await RouteAsync(context, dialect, path, shape);
        }
        else
        {
            WriteError(context, dialect, refusal.Value);
        }
    }

    private async Task RouteAsync(HttpContext context, Dialect dialect, string path, RequestShape shape)
    {
        var method = context.Request.Method;
        switch (path)
        {
            case "/" when HttpMethods.IsHead(method) || HttpMethods.IsGet(method):
                // What a client's connectivity check (Claude Code's HEAD /) gets.
                context.Response.StatusCode = StatusCodes.Status200OK;
                break;
            case "/v1/messages" when HttpMethods.IsPost(method):
                if (RefuseAnthropicRequest(context, shape, countTokens: false) is { } badMessage)
                {
                    WriteError(context, dialect, badMessage);
                    break;
                }

                await MessagesAsync(context, shape);
                break;
            case "/v1/messages/count_tokens" when HttpMethods.IsPost(method):
                if (RefuseAnthropicRequest(context, shape, countTokens: true) is { } badCount)
                {
                    WriteError(context, dialect, badCount);
                    break;
                }

                WriteJson(context, dialect, 200, shape, static (json, shape, _) => json.WriteNumber("input_tokens"u8, shape.InputTokens));
                break;
            case "/v1/models" when HttpMethods.IsGet(method):
                WriteJson(context, dialect, 200, shape, dialect == Dialect.Anthropic ? WriteAnthropicModels : WriteOpenAIModels);
                break;
            case not null when path.StartsWith("/v1/models/", StringComparison.Ordinal) && HttpMethods.IsGet(method):
                WriteModel(context, dialect, Uri.UnescapeDataString(path["/v1/models/".Length..]));
                break;
            case "/v1/chat/completions" when HttpMethods.IsPost(method):
                await ChatCompletionsAsync(context, shape);
                break;
            case "/v1/completions" when HttpMethods.IsPost(method):
                await WithValidBodyAsync(context, shape, WriteTextCompletion);
                break;
            case "/v1/embeddings" when HttpMethods.IsPost(method):
                await WithValidBodyAsync(context, shape, WriteEmbeddings);
                break;
            case "/v1/responses" when HttpMethods.IsPost(method):
                await ResponsesAsync(context, shape);
                break;
            default:
                WriteError(context, dialect, dialect == Dialect.Anthropic
                    ? new ErrorReply(404, "not_found_error", "Not Found", null)
                    : new ErrorReply(404, "invalid_request_error", $"Invalid URL ({method} {path})", "unknown_url"));
                break;
        }
    }

    /// <summary>
    /// What the provider's front does with a name: the TLS server name must be one it serves, and the request goes to
    /// the site its <c>Host</c> names, as a front serving many sites on one address routes it. A request for another
    /// site is recorded as misdirected (it reached the wrong place with its credential) and answered by that site; a
    /// name the front does not serve gets 421 Misdirected Request.
    /// </summary>
    private bool IsForThisSite(HttpContext context)
    {
        if (_front is null)
        {
            return true;
        }

        var host = context.Request.Host.Host;
        var serverName = context.Features.Get<ITlsHandshakeFeature>()?.HostName;
        if (string.Equals(host, _options.Name, StringComparison.OrdinalIgnoreCase) && string.Equals(serverName, _options.Name, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        lock (_misdirected)
        {
            _misdirected.Add(Describe(context, Credential.From(context.Request.Headers).Key, []));
        }

        var response = context.Response;
        if (serverName is not null && _front.Serves(serverName) && _front.Serves(host))
        {
            // Another customer's site behind the same front: it answers, and now holds whatever key came with the request.
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/html; charset=utf-8";
            _ = response.WriteAsync($"<html><body><h1>{host}</h1><p>Welcome.</p></body></html>");
            return false;
        }

        response.StatusCode = StatusCodes.Status421MisdirectedRequest;
        response.ContentType = "text/plain; charset=utf-8";
        _ = response.WriteAsync("421 Misdirected Request: this server does not serve the name the request was sent for.\n");
        return false;
    }

    private static Dialect DialectOf(string path, IHeaderDictionary headers, Credential credential) => path switch
    {
        "/v1/chat/completions" or "/v1/completions" or "/v1/embeddings" or "/v1/responses" => Dialect.OpenAI,
        "/v1/messages" or "/v1/messages/count_tokens" => Dialect.Anthropic,
        // Both providers serve /v1/models (and everything unknown): the credential and the headers say which one is asked.
        _ => credential.IsAnthropic || headers.ContainsKey("anthropic-version") ? Dialect.Anthropic : Dialect.OpenAI,
    };

    private static bool NeedsBody(string path)
        => path is "/v1/messages" or "/v1/messages/count_tokens" or "/v1/chat/completions" or "/v1/completions" or "/v1/embeddings" or "/v1/responses";

    /// <summary>Reads the whole body, records the request (with what arrived, even if the caller left half-way) and sizes it up.</summary>
    private async Task<RequestShape> ReadAndRecordAsync(HttpContext context, string? key, bool parse)
    {
        var request = context.Request;
        var keep = RecordBodies;
        var declared = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false ? 0 : request.ContentLength;
        byte[] buffer = [];
        var length = 0;
        var pooled = false;
        try
        {
            try
            {
                if (keep && declared is > 0 && declared <= Array.MaxLength)
                {
                    // The common case: the exact array the record keeps, filled in place.
                    buffer = GC.AllocateUninitializedArray<byte>((int)declared.Value);
                    length = await request.Body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, context.RequestAborted);
                }
                else if (declared != 0)
                {
                    pooled = true;
                    buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 and <= 1 << 20 ? (int)declared.Value : 16 * 1024);
                    int read;
                    while ((read = await request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted)) > 0)
                    {
                        length += read;
                        if (length == buffer.Length)
                        {
                            var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                            buffer.AsSpan(0, length).CopyTo(larger);
                            ArrayPool<byte>.Shared.Return(buffer);
                            buffer = larger;
                        }
                    }
                }
            }
            finally
            {
                var body = !keep || length == 0 ? []
                    : !pooled && length == buffer.Length ? buffer
                    : buffer.AsSpan(0, length).ToArray();
                Record(context, key, body);
            }

            return parse ? RequestShape.Parse(buffer.AsSpan(0, length)) : new RequestShape(true, false, null, length, []);
        }
        finally
        {
            if (pooled)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private void Record(HttpContext context, string? key, byte[] body)
    {
        var recorded = Describe(context, key, body);
        lock (_requests)
        {
            _requests.Add(recorded);
        }

        Interlocked.Increment(ref _requestCount);
    }

    private RecordedRequest Describe(HttpContext context, string? key, byte[] body)
    {
        var request = context.Request;
        var headers = new Dictionary<string, string>(request.Headers.Count, StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in request.Headers)
        {
            headers[name.ToLowerInvariant()] = values.Count == 1 ? values[0] ?? string.Empty : string.Join(", ", (IEnumerable<string?>)values);
        }

        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget is { Length: > 0 } raw
            ? raw
            : string.Concat(request.PathBase.Value, request.Path.Value, request.QueryString.Value);
        return new RecordedRequest(request.Method, target, headers, body, key)
        {
            Host = request.Host.Value ?? string.Empty,
            ServerName = context.Features.Get<ITlsHandshakeFeature>()?.HostName,
            Protocol = request.Protocol,
            At = _time.GetUtcNow(),
        };
    }
}
