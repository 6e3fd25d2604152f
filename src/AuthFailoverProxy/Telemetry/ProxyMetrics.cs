using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using AuthFailoverProxy.Failover;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using Polly.CircuitBreaker;

namespace AuthFailoverProxy.Telemetry;

/// <summary>
/// The proxy's instruments, created once on the meter <c>AuthFailoverProxy</c>. Counters and histograms are recorded on
/// the request path with a <see cref="TagList"/> on the stack and label values that are already strings (pool and key
/// names, constants), so a measurement allocates nothing and costs one branch when nobody listens. State (keys, pools,
/// circuits, the store) is observed only when metrics are collected, at a scrape.
/// </summary>
/// <remarks>
/// Prometheus names (the exporter adds <c>_total</c> to counters and <c>_seconds</c> for unit <c>s</c>):
/// <c>afp_requests_total</c>, <c>afp_failovers_total</c>, <c>afp_retries_total</c>,
/// <c>afp_upstream_duration_seconds</c>, <c>afp_upstream_time_to_first_byte_seconds</c>, <c>afp_key_state</c>,
/// <c>afp_pool_usable_keys</c>, <c>afp_pool_safe_mode</c>, <c>afp_circuit_state</c>, <c>afp_store_connected</c>,
/// <c>afp_alerts_total</c>, <c>afp_events_total</c>, <c>afp_tokens_total</c>, and OpenTelemetry's GenAI conventions
/// <c>gen_ai_client_token_usage</c>, <c>gen_ai_client_operation_duration_seconds</c> and
/// <c>gen_ai_client_operation_time_to_first_chunk_seconds</c>. The pools, the state board and the store are resolved at the first
/// collection: this is built before the host validates options.
/// </remarks>
internal sealed class ProxyMetrics
{
    private static readonly KeyState[] KeyStates = Enum.GetValues<KeyState>();
    private static readonly string[] KeyStateNames = [.. KeyStates.Select(s => s.ToString().ToLowerInvariant())];
    private static readonly (CircuitState State, string Name)[] CircuitStates =
        [(CircuitState.Closed, "closed"), (CircuitState.Open, "open"), (CircuitState.HalfOpen, "half_open"), (CircuitState.Isolated, "isolated")];

    private readonly IServiceProvider _services;
    private readonly TimeProvider _time;
    // afp.requests, counted here and read at a scrape: one dictionary look-up per request instead of a measurement.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Pool, string Key, string StatusClass), StrongBox<long>> _answered = new();
    private readonly Counter<long> _failovers;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _rejections;
    private readonly Histogram<double> _upstreamDuration;
    private readonly Histogram<double> _timeToFirstByte;
    private readonly Counter<long> _alerts;
    private readonly Counter<long> _events;
    private readonly Histogram<long> _tokenUsage;
    private readonly Histogram<double> _operationDuration;
    private readonly Histogram<double> _timeToFirstChunk;
    private readonly Counter<long> _budgetRefusals;
    private PoolRegistry? _registry;

    public ProxyMetrics(IMeterFactory meterFactory, IServiceProvider services, TimeProvider time)
    {
        _services = services;
        _time = time;
        Meter = meterFactory.Create(new MeterOptions(ProxyTelemetry.Name) { Version = typeof(ProxyMetrics).Assembly.GetName().Version?.ToString() });

        Meter.CreateObservableCounter("afp.requests", ObserveAnswered, "{request}",
            "Agent requests answered, by pool, the key whose answer was delivered (none: the proxy answered itself) and status class.");
        _failovers = Meter.CreateCounter<long>("afp.failovers", "{failover}",
            "Moves of a request past a key to the next one (to=none: there was no next key), by pool, from, to and reason (dead, cooling, circuit_open).");
        _retries = Meter.CreateCounter<long>("afp.retries", "{retry}",
            "Upstream calls tried again on the same key because the upstream was unwell, by pool, key and reason (status, timeout, connection).");
        _rejections = Meter.CreateCounter<long>("afp.rejections", "{answer}",
            "Answers about the request rather than the key (a client error, a refusal two keys gave alike, a refusal of one key, a suspicion a check cleared), by pool, key, status, model family and reason. No key is blamed for them.");
        _upstreamDuration = Meter.CreateHistogram<double>("afp.upstream.duration", "s",
            "Duration of each upstream call, until its answer was delivered or judged, by pool, key and status class.");
        _timeToFirstByte = Meter.CreateHistogram<double>("afp.upstream.time_to_first_byte", "s",
            "Time from sending an upstream call to its response headers, by pool, key and status class.");
        // OpenTelemetry's GenAI semantic conventions, which collectors and dashboards understand, plus the proxy's labels.
        _tokenUsage = Meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}",
            "Tokens used per answer, by gen_ai.token.type (input, output), provider, operation, request and response model, and the proxy's pool, key and client.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304] });
        _operationDuration = Meter.CreateHistogram<double>("gen_ai.client.operation.duration", "s",
            "Duration of each upstream call made for a model (chat, text completion, embeddings), until its answer had passed to the agent or was judged, by provider, operation, request and response model, error.type (when it failed), and the proxy's pool, key and client.");
        _timeToFirstChunk = Meter.CreateHistogram<double>("gen_ai.client.operation.time_to_first_chunk", "s",
            "Time from sending a streamed upstream call to its first content event, by the labels of gen_ai.client.operation.duration but error.type. Streams only.");
        // Read from the usage ledger at a scrape, which the request path adds to anyway: four fewer measurements per answer.
        Meter.CreateObservableCounter("afp.tokens", ObserveTokens, "{token}",
            "Tokens spent, by pool, key, client, model and type (input: every input token, cached ones included; output; cache_read and cache_creation: the cache's part of input).");
        _budgetRefusals = Meter.CreateCounter<long>("afp.budget.refusals", "{request}",
            "Requests refused with 429 before any upstream call because their client had spent its budget, by client and limit (requests_per_minute, tokens_per_minute, tokens_per_day).");
        _alerts = Meter.CreateCounter<long>("afp.alerts", "{alert}", "Alerts sent, by channel and outcome (delivered, failed).");
        _events = Meter.CreateCounter<long>("afp.events", "{event}", "Events this replica raised (key.dead, pool.exhausted and the others), by kind.");

        Meter.CreateObservableGauge("afp.key.state", ObserveKeyStates, description:
            "1 for the state each key is in (usable, cooling, dead, pending, disabled), 0 for the others, by pool, key and state.");
        Meter.CreateObservableGauge("afp.key.scoped", ObserveKeyScopes, description:
            "1 for each part of what a key is out for while it serves everything else (a model, a model class, a kind of client), by pool, key and scope.");
        Meter.CreateObservableGauge("afp.pool.usable_keys", ObserveUsableKeys, "{key}", "Keys of each pool that can carry a request now.");
        Meter.CreateObservableGauge("afp.pool.safe_mode", ObserveSafeMode, description: "1 while a pool's fallback serves its requests (safe mode), by pool.");
        Meter.CreateObservableGauge("afp.circuit.state", ObserveCircuits, description:
            "1 for the state each pool's circuit breaker is in (closed, open, half_open, isolated), 0 for the others; pools without one are absent.");
        Meter.CreateObservableGauge("afp.store.connected", ObserveStore, description: "1 while the key state store is reachable (always 1 for the embedded store), by store (memory, redis).");
    }

    /// <summary>Gets the meter; the metrics pipeline exports this meter and no other instance of the same name.</summary>
    public Meter Meter { get; }

    private PoolRegistry Registry => _registry ??= _services.GetRequiredService<PoolRegistry>();

    public void RequestAnswered(string pool, string key, string statusClass)
    {
        var where = (pool, key, statusClass);
        Interlocked.Increment(ref (_answered.TryGetValue(where, out var count) ? count : _answered.GetOrAdd(where, static _ => new StrongBox<long>())).Value);
    }

    public void FailedOver(string pool, string from, string to, string reason)
    {
        if (_failovers.Enabled)
        {
            var tags = new TagList { { "pool", pool }, { "from", from }, { "to", to }, { "reason", reason } };
            _failovers.Add(1, in tags);
        }
    }

    public void Retried(string pool, string key, string reason)
    {
        if (_retries.Enabled)
        {
            var tags = new TagList { { "pool", pool }, { "key", key }, { "reason", reason } };
            _retries.Add(1, in tags);
        }
    }

    public void Rejected(string pool, string key, int status, string modelFamily, string reason)
    {
        if (_rejections.Enabled)
        {
            var tags = new TagList { { "pool", pool }, { "key", key }, { "status", status }, { "model_family", modelFamily }, { "reason", reason } };
            _rejections.Add(1, in tags);
        }
    }

    /// <summary>Records one upstream call: its duration and, when it got an answer, the time to its response headers.</summary>
    public void UpstreamCalled(string pool, string key, int status, TimeSpan duration, TimeSpan? timeToFirstByte)
    {
        if (!_upstreamDuration.Enabled && !_timeToFirstByte.Enabled)
        {
            return;
        }

        var tags = new TagList { { "pool", pool }, { "key", key }, { "status_class", ProxyTelemetry.StatusClass(status) } };
        _upstreamDuration.Record(duration.TotalSeconds, in tags);
        if (timeToFirstByte is { } ttfb)
        {
            _timeToFirstByte.Record(ttfb.TotalSeconds, in tags);
        }
    }

    /// <summary>Records what one delivered answer spent; model names are labels already bounded by <see cref="ModelLabels"/>.</summary>
    public void TokensUsed(in TokenUsageTags where, TokenUsage usage)
    {
        if (_tokenUsage.Enabled)
        {
            var tags = GenAiTags(in where);
            tags.Add("gen_ai.token.type", "input");
            _tokenUsage.Record(usage.Input, in tags);
            tags[^1] = new("gen_ai.token.type", "output");
            _tokenUsage.Record(usage.Output, in tags);
        }
    }

    public void BudgetRefused(string client, string limit)
    {
        if (_budgetRefusals.Enabled)
        {
            var tags = new TagList { { "client", client }, { "limit", limit } };
            _budgetRefusals.Add(1, in tags);
        }
    }

    /// <summary>
    /// Records one upstream call as a GenAI operation: its duration, and for a stream its time to first content. Model
    /// names are labels already bounded by <see cref="ModelLabels"/>; the response model is null when the answer named
    /// none (or was not read), <paramref name="errorType"/> when the call did not fail.
    /// </summary>
    public void OperationEnded(in TokenUsageTags where, string? errorType, TimeSpan duration, TimeSpan? timeToFirstChunk)
    {
        if (!_operationDuration.Enabled && !_timeToFirstChunk.Enabled)
        {
            return;
        }

        var tags = GenAiTags(in where);
        if (timeToFirstChunk is { } ttfc)
        {
            _timeToFirstChunk.Record(ttfc.TotalSeconds, in tags);
        }

        if (errorType is not null)
        {
            tags.Add("error.type", errorType);
        }

        _operationDuration.Record(duration.TotalSeconds, in tags);
    }

    /// <summary>
    /// The labels every GenAI instrument shares (the response model only when known): seven at most, so that with the one
    /// an instrument adds a <see cref="TagList"/> keeps them all on the stack (it holds eight inline).
    /// </summary>
    private static TagList GenAiTags(in TokenUsageTags where)
    {
        var tags = new TagList
        {
            { "gen_ai.provider.name", where.Provider },
            { "gen_ai.operation.name", where.Operation },
            { "gen_ai.request.model", where.RequestModel },
            { "afp.pool", where.Pool },
            { "afp.key", where.Key },
            { "afp.client", where.Client },
        };
        if (where.ResponseModel is { } responseModel)
        {
            tags.Add("gen_ai.response.model", responseModel);
        }

        return tags;
    }

    public void AlertSent(string channel, string outcome)
        => _alerts.Add(1, new KeyValuePair<string, object?>("channel", channel), new KeyValuePair<string, object?>("outcome", outcome));

    public void EventRaised(string kind) => _events.Add(1, new KeyValuePair<string, object?>("kind", kind));

    private IEnumerable<Measurement<int>> ObserveKeyStates()
    {
        var now = _time.GetUtcNow();
        foreach (var pool in Registry.Pools)
        {
            foreach (var key in pool.Keys)
            {
                var state = key.Health.EffectiveState(now);
                for (var i = 0; i < KeyStates.Length; i++)
                {
                    yield return new Measurement<int>(KeyStates[i] == state ? 1 : 0, new("pool", pool.Name), new("key", key.Name), new("state", KeyStateNames[i]));
                }
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveAnswered()
    {
        foreach (var ((pool, key, statusClass), count) in _answered)
        {
            yield return new Measurement<long>(Volatile.Read(ref count.Value), new("pool", pool), new("key", key), new("status_class", statusClass));
        }
    }

    private IEnumerable<Measurement<long>> ObserveTokens()
    {
        foreach (var (source, totals) in _services.GetRequiredService<Usage.UsageLedger>().Totals())
        {
            KeyValuePair<string, object?>[] where = [new("pool", source.Pool), new("key", source.Key), new("client", source.Client), new("model", source.Model)];
            yield return new Measurement<long>(totals.Input, [.. where, new("type", "input")]);
            yield return new Measurement<long>(totals.Output, [.. where, new("type", "output")]);
            yield return new Measurement<long>(totals.CacheRead, [.. where, new("type", "cache_read")]);
            yield return new Measurement<long>(totals.CacheCreation, [.. where, new("type", "cache_creation")]);
        }
    }

    private IEnumerable<Measurement<int>> ObserveKeyScopes()
    {
        var nowUnixMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var pool in Registry.Pools)
        {
            foreach (var key in pool.Keys)
            {
                foreach (var scope in key.Scopes ?? [])
                {
                    // Capped per key (PoolKey.MaxScopes), so the label set stays bounded whatever models clients name.
                    if (scope.UntilUnixMs > nowUnixMs)
                    {
                        yield return new Measurement<int>(1, new("pool", pool.Name), new("key", key.Name), new("scope", scope.Name));
                    }
                }
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveUsableKeys()
    {
        var now = _time.GetUtcNow();
        foreach (var pool in Registry.Pools)
        {
            yield return new Measurement<int>(pool.CountUsable(now), new KeyValuePair<string, object?>("pool", pool.Name));
        }
    }

    private IEnumerable<Measurement<int>> ObserveSafeMode()
    {
        var safeMode = _services.GetRequiredService<SafeMode>();
        foreach (var pool in Registry.Pools)
        {
            if (pool.Fallback is not null)
            {
                yield return new Measurement<int>(safeMode.Since(pool) is null ? 0 : 1, new KeyValuePair<string, object?>("pool", pool.Name));
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveCircuits()
    {
        foreach (var pool in Registry.Pools)
        {
            if (pool.Circuit is { } circuit)
            {
                var state = circuit.State;
                foreach (var (candidate, name) in CircuitStates)
                {
                    yield return new Measurement<int>(candidate == state ? 1 : 0, new("pool", pool.Name), new("state", name));
                }
            }
        }
    }

    private Measurement<int> ObserveStore()
    {
        var status = _services.GetRequiredService<IKeyStateStore>().Status;
        return new Measurement<int>(status.Connected ? 1 : 0, new KeyValuePair<string, object?>("store", status.Kind));
    }
}

/// <summary>
/// Where tokens were spent, or a GenAI operation ran: the labels of <see cref="ProxyMetrics.TokensUsed"/> and
/// <see cref="ProxyMetrics.OperationEnded"/>, never a secret. <see cref="ResponseModel"/> is null only for an operation
/// whose answer named no model.
/// </summary>
internal readonly record struct TokenUsageTags(string Provider, string Operation, string RequestModel, string? ResponseModel, string Pool, string Key, string Client);
