using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Globalization;

namespace AuthFailoverProxy.Demo.Provider;

// What the provider refuses about a request itself, whatever the key: unknown fields and betas (echoed back, as the
// real API does), models the organization may not use or has exhausted, an OpenAI organization header of another org.
internal sealed partial class SimulatedProvider
{
    /// <summary>The organization the OpenAI dialect's keys belong to; another one in <c>OpenAI-Organization</c> gets 401.</summary>
    internal const string OpenAIOrganization = "org-simulated";

    /// <summary>The project the OpenAI dialect's keys belong to; another one in <c>OpenAI-Project</c> gets 401.</summary>
    internal const string OpenAIProject = "proj_simulated";

    /// <summary>The models the Anthropic dialect lists and serves, newest first.</summary>
    internal static readonly (string Id, string DisplayName, string Created)[] AnthropicModels =
    [
        ("claude-opus-4-8", "Claude Opus 4.8", "2026-09-01T00:00:00Z"),
        ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
        ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
        ("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    ];

    /// <summary>The top-level fields the Messages API takes; any other is refused with "&lt;field&gt;: Extra inputs are not permitted".</summary>
    private static readonly FrozenSet<string> MessagesFields = FrozenSet.Create(StringComparer.Ordinal,
        "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_k", "top_p",
        "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers", "context_management", "output_config",
        "output_format");

    /// <summary>The top-level fields chat completions take; any other is refused with "Unrecognized request argument supplied: …".</summary>
    private static readonly FrozenSet<string> ChatCompletionFields = FrozenSet.Create(StringComparer.Ordinal,
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
        "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options",
        "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options");

    /// <summary>The top-level fields <c>count_tokens</c> takes.</summary>
    private static readonly FrozenSet<string> CountTokensFields = FrozenSet.Create(StringComparer.Ordinal,
        "model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management", "output_config", "output_format");

    /// <summary>
    /// The <c>anthropic-beta</c> values the simulated API knows: the common public ones and every value the pinned Claude
    /// Code sends (see FACTS.md). A value it does not know is refused, as the real API refuses made-up ones.
    /// </summary>
    private static readonly FrozenSet<string> KnownBetas = FrozenSet.Create(StringComparer.Ordinal,
        "oauth-2025-04-20", "claude-code-20250219", "prompt-caching-2024-07-31", "prompt-caching-scope-2026-01-05",
        "context-1m-2025-08-07", "context-management-2025-06-27", "interleaved-thinking-2025-05-14", "thinking-token-count-2026-05-13",
        "mid-conversation-system-2026-04-07", "effort-2025-11-24", "fine-grained-tool-streaming-2025-05-14",
        "token-efficient-tools-2025-02-19", "output-128k-2025-02-19", "files-api-2025-04-14", "computer-use-2025-01-24",
        "code-execution-2025-08-25", "mcp-client-2025-04-04", "web-fetch-2025-09-10", "skills-2025-10-02",
        "structured-outputs-2025-11-13", "advanced-tool-use-2025-11-20", "extended-cache-ttl-2025-04-11",
        "model-context-window-exceeded-2025-08-26", "message-batches-2024-09-24", "pdfs-2024-09-25", "token-counting-2024-11-01");

    /// <summary>The <see cref="HttpContext.Items"/> entry holding the organization of the request's key.</summary>
    private const string OrganizationItem = "simulated.organization";

    private readonly ConcurrentDictionary<(string? Organization, string Model), (ModelFault Fault, TimeSpan RetryAfter)> _modelFaults = new();

    /// <summary>
    /// Makes every request for <paramref name="model"/> by a key of <paramref name="organization"/> (by default: of any
    /// organization) fail with <paramref name="fault"/> from now on: access and limits are the organization's, per model.
    /// <see cref="ModelFault.None"/> restores it.
    /// </summary>
    public void SetModelFault(string model, ModelFault fault, TimeSpan? retryAfter = null, string? organization = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (fault == ModelFault.None)
        {
            _modelFaults.TryRemove((organization, model), out _);
        }
        else
        {
            _modelFaults[(organization, model)] = (fault, retryAfter ?? DefaultRetryAfter);
        }
    }

    /// <summary>What the Messages API answers a request that is wrong in itself, before any model runs; null when it is fine.</summary>
    private ErrorReply? RefuseAnthropicRequest(HttpContext context, RequestShape shape, bool countTokens)
    {
        if (!shape.IsValidJson)
        {
            return new ErrorReply(400, "invalid_request_error", "There was an error parsing the body of your request: it is not a valid JSON object.", null);
        }

        if (UnknownBeta(context.Request.Headers) is { } beta)
        {
            return new ErrorReply(400, "invalid_request_error", $"Unexpected value(s) `{beta}` for the `anthropic-beta` header. Please consult our documentation at docs.claude.com or try again without the header.", null);
        }

        if (shape.FirstMissing(countTokens ? ["model", "messages"] : ["model", "messages", "max_tokens"]) is { } missing)
        {
            return new ErrorReply(400, "invalid_request_error", $"{missing}: Field required", null);
        }

        if (shape.FirstUnknown(countTokens ? CountTokensFields : MessagesFields) is { } extra)
        {
            return new ErrorReply(400, "invalid_request_error", $"{extra}: Extra inputs are not permitted", null);
        }

        if (RefuseModel(context, Dialect.Anthropic, shape.Model) is { } model)
        {
            return model;
        }

        if (shape.HasBadImage)
        {
            return new ErrorReply(400, "invalid_request_error", "messages.0.content.0.image.source.base64.data: The image was specified using the image/png media type, but does not appear to be a valid png image", null);
        }

        if (!countTokens && shape.InputTokens > _options.InputTokensPerMinute)
        {
            // The request alone is over the limit: the budget is untouched, and no retry can help.
            var headers = context.Response.Headers;
            var limit = _options.InputTokensPerMinute.ToString(CultureInfo.InvariantCulture);
            headers["anthropic-ratelimit-input-tokens-limit"] = limit;
            headers["anthropic-ratelimit-input-tokens-remaining"] = limit;
            headers["anthropic-ratelimit-input-tokens-reset"] = (_time.GetUtcNow() + TimeSpan.FromMinutes(1)).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            headers["anthropic-ratelimit-requests-limit"] = "50";
            headers["anthropic-ratelimit-requests-remaining"] = "49";
            headers.RetryAfter = "60";
            return new ErrorReply(429, "rate_limit_error",
                $"This request would exceed the rate limit for your organization ({OrganizationId}) of {_options.InputTokensPerMinute:N0} input tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.", null);
        }

        return null;
    }

    /// <summary>What the OpenAI API answers a chat completion that names a field it does not take, or a model it does not have.</summary>
    private ErrorReply? RefuseChatCompletion(HttpContext context, RequestShape shape)
    {
        if (shape.FirstUnknown(ChatCompletionFields) is { } extra)
        {
            return new ErrorReply(400, "invalid_request_error", $"Unrecognized request argument supplied: {extra}", null);
        }

        if (shape.HasStreamOptions && !_options.TakesStreamOptions)
        {
            return new ErrorReply(400, "invalid_request_error", "Unrecognized request argument supplied: stream_options", null);
        }

        if (shape.HasStreamOptions && !shape.Stream)
        {
            return new ErrorReply(400, "invalid_request_error", "The 'stream_options' parameter is only allowed when 'stream' is enabled.", null) { Param = "stream_options" };
        }

        return RefuseModel(context, Dialect.OpenAI, shape.Model);
    }

    /// <summary>The page a front's firewall answers with: HTML, not the provider's error JSON.</summary>
    private static void WriteFirewallPage(HttpContext context, int status)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "text/html; charset=utf-8";
        _ = response.WriteAsync(status == StatusCodes.Status401Unauthorized
            ? "<html><head><title>401 Authorization Required</title></head><body><center><h1>401 Authorization Required</h1></center></body></html>\n"
            : "<html><head><title>403 Forbidden</title></head><body><h1>Request blocked</h1><p>The request was blocked by the security policy.</p></body></html>\n");
    }

    /// <summary>What the API answers for a model it does not have, or one the organization may not use or has exhausted.</summary>
    private ErrorReply? RefuseModel(HttpContext context, Dialect dialect, string? model)
    {
        if (dialect == Dialect.Anthropic && (model is null || Array.FindIndex(AnthropicModels, m => m.Id == model) < 0))
        {
            return new ErrorReply(404, "not_found_error", $"model: {model}", null);
        }

        if (dialect == Dialect.OpenAI && model is not null && Array.IndexOf(OpenAIModels, model) < 0)
        {
            return new ErrorReply(404, "invalid_request_error", $"The model `{model}` does not exist or you do not have access to it.", "model_not_found");
        }

        var organization = context.Items[OrganizationItem] as string;
        if (model is null || !(_modelFaults.TryGetValue((organization, model), out var fault) || _modelFaults.TryGetValue((null, model), out fault)))
        {
            return null;
        }

        var anthropic = dialect == Dialect.Anthropic;
        if (fault.Fault == ModelFault.Forbidden)
        {
            return anthropic
                ? new ErrorReply(403, "permission_error", $"Your organization does not have access to the model `{model}`. Contact your organization's admin or sales to request access.", null)
                : new ErrorReply(404, "invalid_request_error", $"The model `{model}` does not exist or you do not have access to it.", "model_not_found");
        }

        var seconds = Math.Max(1, (long)Math.Ceiling(fault.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        var headers = context.Response.Headers;
        headers.RetryAfter = seconds;
        if (anthropic)
        {
            headers["anthropic-ratelimit-output-tokens-limit"] = "8000";
            headers["anthropic-ratelimit-output-tokens-remaining"] = "0";
            headers["anthropic-ratelimit-output-tokens-reset"] = (_time.GetUtcNow() + TimeSpan.FromMinutes(1)).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
            return new ErrorReply(429, "rate_limit_error",
                $"This request would exceed your organization's rate limit of 8,000 output tokens per minute (model: {model}). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please try again later.", null);
        }

        headers["x-ratelimit-reset-tokens"] = seconds + "s";
        return new ErrorReply(429, "tokens", $"Rate limit reached for {model} in organization {organization ?? OpenAIOrganization} on tokens per min (TPM): Limit 30000, Used 30000, Requested 120. Please try again in {seconds}s.", "rate_limit_exceeded");
    }

    /// <summary>What the OpenAI API answers an <c>OpenAI-Organization</c> or <c>OpenAI-Project</c> the key does not belong to.</summary>
    private static ErrorReply? RefuseOpenAIAccount(IHeaderDictionary headers, string keyOrganization)
    {
        if (headers.TryGetValue("openai-organization", out var organization) && organization.ToString() != keyOrganization)
        {
            return new ErrorReply(401, "invalid_request_error", "OpenAI-Organization header should match organization for API key", "mismatched_organization");
        }

        if (headers.TryGetValue("openai-project", out var project) && project.ToString() != OpenAIProject)
        {
            return new ErrorReply(401, "invalid_request_error", "OpenAI-Project header should match project for API key", "mismatched_project");
        }

        return null;
    }

    private static string? UnknownBeta(IHeaderDictionary headers)
    {
        foreach (var value in headers["anthropic-beta"])
        {
            foreach (var beta in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!KnownBetas.Contains(beta))
                {
                    return beta;
                }
            }
        }

        return null;
    }
}
