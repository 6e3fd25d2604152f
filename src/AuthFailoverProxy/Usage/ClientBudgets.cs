using System.Collections.Frozen;
using System.Globalization;
using AuthFailoverProxy.Events;
using AuthFailoverProxy.Proxying;
using AuthFailoverProxy.State;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Usage;

/// <summary>Which of a client's limits a request met.</summary>
internal enum BudgetLimit
{
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
}

/// <summary>Why a client's request is refused before any upstream call: which limit, how much, and when it resets.</summary>
internal sealed record BudgetRefusal(string Client, BudgetLimit Limit, long Allowed, DateTimeOffset ResetsAt);

/// <summary>
/// Budgets per client token, so that one runaway agent cannot burn the organization's rate limit or credit for every
/// other agent. The request path decides on figures in memory, never on a Redis round trip: the deployment's totals as
/// of the last sync, plus what this replica counted since. The sync (<see cref="UsageSync"/>, every
/// <see cref="UsageOptions.SyncInterval"/>) adds this replica's counts to the shared counters in Redis and reads the
/// totals back in one <c>INCRBY</c> each. Without Redis the counts are this process's and exact. While Redis cannot be
/// reached the budget fails open: the last totals plus this replica's own count decide, and nothing is refused because
/// Redis is gone.
/// </summary>
/// <remarks>
/// The overshoot this allows: tokens are known only when an answer ends, so every request admitted while a client was
/// under its token budget may still spend up to its <c>max_tokens</c>; across replicas, each may also admit for up to
/// one sync interval on totals that do not yet hold the others' latest counts.
/// </remarks>
internal sealed class ClientBudgets
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    private readonly FrozenDictionary<string, ClientBudget> _budgets;
    private readonly TimeProvider _time;
    private readonly ProxyEvents _events;
    private readonly IServiceProvider _services;

    public ClientBudgets(IOptions<ClientOptions> options, TimeProvider time, ProxyEvents events, IServiceProvider services)
    {
        _time = time;
        _events = events;
        _services = services;
        _budgets = options.Value.Tokens
            .Select((t, i) => (Name: t.Name ?? $"client-{i + 1}", t.Budget, Index: i))
            .Where(t => t.Budget is { IsSet: true })
            .ToFrozenDictionary(t => t.Name, t => new ClientBudget(t.Name, t.Index, t.Budget!), StringComparer.Ordinal);
    }

    /// <summary>Gets whether any client has a budget.</summary>
    public bool Any => _budgets.Count > 0;

    /// <summary>
    /// Admits one request of <paramref name="client"/>, counting it, or returns why it must be refused. Figures in memory
    /// only: this is on the request path.
    /// </summary>
    public BudgetRefusal? Admit(string client)
    {
        if (_budgets.Count == 0 || !_budgets.TryGetValue(client, out var budget))
        {
            return null;
        }

        var refusal = budget.Admit(_time.GetUtcNow(), out var firstInWindow);
        if (firstInWindow)
        {
            _ = TellReachedAsync(budget, refusal!);
        }

        return refusal;
    }

    /// <summary>Counts the tokens an answer to <paramref name="client"/> spent.</summary>
    public void Spent(string client, long tokens)
    {
        if (_budgets.Count != 0 && tokens > 0 && _budgets.TryGetValue(client, out var budget))
        {
            budget.Spend(_time.GetUtcNow(), tokens);
        }
    }

    /// <summary>
    /// Sends each budget's counts since the last sync to the shared counters and takes the deployment's totals back. A
    /// failure keeps the counts for the next sync and leaves the totals as they were.
    /// </summary>
    public async Task SyncAsync(RedisUsageStore shared)
    {
        if (_budgets.Count == 0)
        {
            return;
        }

        var now = _time.GetUtcNow();
        var batch = _budgets.Values.Select(b => (Budget: b, Sent: b.BeginSync(now))).ToList();
        var counters = batch.SelectMany(b => b.Sent.Counters).ToList();
        try
        {
            var totals = await shared.IncrementAsync(counters);
            var at = 0;
            foreach (var (budget, sent) in batch)
            {
                budget.EndSync(sent, totals.AsSpan(at, sent.Counters.Count));
                at += sent.Counters.Count;
            }
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or ObjectDisposedException)
        {
            foreach (var (budget, sent) in batch)
            {
                budget.FailSync(sent);
            }
        }
    }

    /// <summary>Gets each budget as this replica sees it now, for <c>/status</c>.</summary>
    public IReadOnlyList<BudgetStatus> Status()
    {
        var now = _time.GetUtcNow();
        return [.. _budgets.Values.OrderBy(b => b.Client, StringComparer.Ordinal).Select(b => b.Status(now))];
    }

    internal static DateTimeOffset EndOfMinute(DateTimeOffset now) => Start(now, Minute) + Minute;

    internal static DateTimeOffset EndOfDay(DateTimeOffset now) => Start(now, Day) + Day;

    private static DateTimeOffset Start(DateTimeOffset now, TimeSpan window)
        => new(now.UtcTicks - (now.UtcTicks % window.Ticks), TimeSpan.Zero);

    /// <summary>Tells a budget reached once for the deployment per window: the replicas that meet it race for one claim.</summary>
    private async Task TellReachedAsync(ClientBudget budget, BudgetRefusal refusal)
    {
        var window = refusal.ResetsAt.ToUnixTimeSeconds();
        var store = _services.GetRequiredService<IKeyStateStore>();
        if (!await store.TryClaimAsync($"budget:{budget.Client}:{refusal.Limit}:{window}", refusal.ResetsAt - _time.GetUtcNow() + Minute))
        {
            return;
        }

        var (what, setting) = refusal.Limit switch
        {
            BudgetLimit.RequestsPerMinute => ("requests per minute", "RequestsPerMinute"),
            BudgetLimit.TokensPerMinute => ("tokens per minute", "TokensPerMinute"),
            _ => ("tokens per day (UTC)", "TokensPerDay"),
        };
        var wait = refusal.ResetsAt - _time.GetUtcNow();
        var retry = wait <= Proxying.ProviderErrorResponse.LongestObeyedRetryAfter
            ? string.Create(CultureInfo.InvariantCulture, $"retry-after {Math.Ceiling(wait.TotalSeconds):0} s")
            : "told not to retry";
        _events.Publish(new ProxyEvent
        {
            Kind = EventKinds.BudgetReached,
            Severity = EventSeverity.Warning,
            At = _time.GetUtcNow(),
            Client = budget.Client,
            Message = string.Create(CultureInfo.InvariantCulture,
                $"Client '{budget.Client}' has spent its budget of {refusal.Allowed:N0} {what}. Its requests are refused with 429 until {refusal.ResetsAt:HH:mm:ss} UTC ({retry}), without any upstream call; every other client is served as before."),
            Remediation = $"If the agent is stuck in a loop, stop it. If it needs more, raise Clients:Tokens:{budget.Index}:Budget:{setting}.",
        });
    }
}

/// <summary>One client's budget as <c>/status</c> shows it: each limit with what was used of it in its window.</summary>
internal sealed record BudgetStatus(string Client, BudgetWindowStatus? RequestsPerMinute, BudgetWindowStatus? TokensPerMinute, BudgetWindowStatus? TokensPerDay);

/// <param name="Limit">What the window allows.</param>
/// <param name="Used">What was used in it: the deployment's total at the last sync plus this replica's count since.</param>
/// <param name="ResetsAt">When the window ends.</param>
internal sealed record BudgetWindowStatus(long Limit, long Used, DateTimeOffset ResetsAt);

/// <summary>What a sync takes from a budget: the counters to add to, each with its delta, and the windows they belong to.</summary>
internal sealed record BudgetSync(long Minute, long Day, IReadOnlyList<(string Key, long Delta, TimeSpan Ttl)> Counters);

/// <summary>One client's counters, under a lock of their own (taken once per request of that client only: an answer's tokens are added without it).</summary>
internal sealed class ClientBudget(string client, int index, ClientBudgetOptions limits)
{
    private static readonly TimeSpan MinuteTtl = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan DayTtl = TimeSpan.FromHours(25);

    private readonly Lock _lock = new();
    private long _minute = -1;
    private long _day = -1;
    private Count _requests;
    private Count _tokens;
    private Count _dayTokens;
    private int _told;

    // Tokens spent in the current windows since the lock was last taken (Spend); folded in by Roll.
    private long _unfolded;

    public string Client { get; } = client;

    public int Index { get; } = index;

    public BudgetRefusal? Admit(DateTimeOffset now, out bool firstInWindow)
    {
        lock (_lock)
        {
            Roll(now);
            var refusal = limits.RequestsPerMinute is { } rpm && _requests.Used >= rpm ? new BudgetRefusal(Client, BudgetLimit.RequestsPerMinute, rpm, ClientBudgets.EndOfMinute(now))
                : limits.TokensPerMinute is { } tpm && _tokens.Used >= tpm ? new BudgetRefusal(Client, BudgetLimit.TokensPerMinute, tpm, ClientBudgets.EndOfMinute(now))
                : limits.TokensPerDay is { } tpd && _dayTokens.Used >= tpd ? new BudgetRefusal(Client, BudgetLimit.TokensPerDay, tpd, ClientBudgets.EndOfDay(now))
                : null;
            firstInWindow = false;
            if (refusal is null)
            {
                _requests.Local++;
            }
            else if ((_told & (1 << (int)refusal.Limit)) == 0)
            {
                // Told once per limit and window, not once per refused request.
                firstInWindow = true;
                _told |= 1 << (int)refusal.Limit;
            }

            return refusal;
        }
    }

    /// <summary>
    /// Counts tokens an answer spent. In the windows as last rolled (nearly always) they are added without the lock, which
    /// every request of the client takes once already in <see cref="Admit"/>, and are folded into the counts by the next
    /// operation that takes it (the next admission, a sync with Redis, a status): nothing reads the counts before that.
    /// </summary>
    public void Spend(DateTimeOffset now, long tokens)
    {
        var seconds = now.ToUnixTimeSeconds();
        if (seconds / 60 == Volatile.Read(ref _minute) && seconds / 86_400 == Volatile.Read(ref _day))
        {
            Interlocked.Add(ref _unfolded, tokens);
            return;
        }

        lock (_lock)
        {
            Roll(now);
            _tokens.Local += tokens;
            _dayTokens.Local += tokens;
        }
    }

    public BudgetSync BeginSync(DateTimeOffset now)
    {
        lock (_lock)
        {
            Roll(now);
            var minute = _minute.ToString(CultureInfo.InvariantCulture);
            var day = _day.ToString(CultureInfo.InvariantCulture);
            return new BudgetSync(_minute, _day,
            [
                ($"{Client}:rpm:{minute}", _requests.Send(), MinuteTtl),
                ($"{Client}:tpm:{minute}", _tokens.Send(), MinuteTtl),
                ($"{Client}:tpd:{day}", _dayTokens.Send(), DayTtl),
            ]);
        }
    }

    public void EndSync(BudgetSync sent, ReadOnlySpan<long> totals)
    {
        lock (_lock)
        {
            if (sent.Minute == _minute)
            {
                _requests.Sent(totals[0]);
                _tokens.Sent(totals[1]);
            }

            if (sent.Day == _day)
            {
                _dayTokens.Sent(totals[2]);
            }
        }
    }

    public void FailSync(BudgetSync sent)
    {
        lock (_lock)
        {
            if (sent.Minute == _minute)
            {
                _requests.Failed();
                _tokens.Failed();
            }

            if (sent.Day == _day)
            {
                _dayTokens.Failed();
            }
        }
    }

    public BudgetStatus Status(DateTimeOffset now)
    {
        lock (_lock)
        {
            Roll(now);
            var endOfMinute = ClientBudgets.EndOfMinute(now);
            return new BudgetStatus(
                Client,
                limits.RequestsPerMinute is { } rpm ? new BudgetWindowStatus(rpm, _requests.Used, endOfMinute) : null,
                limits.TokensPerMinute is { } tpm ? new BudgetWindowStatus(tpm, _tokens.Used, endOfMinute) : null,
                limits.TokensPerDay is { } tpd ? new BudgetWindowStatus(tpd, _dayTokens.Used, ClientBudgets.EndOfDay(now)) : null);
        }
    }

    /// <summary>A new window starts from nothing: what was counted in the last one no longer counts.</summary>
    private void Roll(DateTimeOffset now)
    {
        // Tokens spent without the lock were spent in the windows as they stood: they count there, before any roll.
        if (Interlocked.Exchange(ref _unfolded, 0) is var unfolded and not 0)
        {
            _tokens.Local += unfolded;
            _dayTokens.Local += unfolded;
        }

        var seconds = now.ToUnixTimeSeconds();
        if (seconds / 60 != _minute)
        {
            Volatile.Write(ref _minute, seconds / 60);
            _requests = default;
            _tokens = default;
            _told &= 1 << (int)BudgetLimit.TokensPerDay;
        }

        if (seconds / 86_400 != _day)
        {
            Volatile.Write(ref _day, seconds / 86_400);
            _dayTokens = default;
            _told &= ~(1 << (int)BudgetLimit.TokensPerDay);
        }
    }

    /// <summary>
    /// One counter: the deployment's total at the last sync (this replica's part included), what a sync under way is
    /// sending, and what this replica counted since.
    /// </summary>
    private struct Count
    {
        public long Shared;
        public long Sending;
        public long Local;

        public readonly long Used => Shared + Sending + Local;

        public long Send()
        {
            Sending += Local;
            Local = 0;
            return Sending;
        }

        public void Sent(long total)
        {
            Shared = total;
            Sending = 0;
        }

        public void Failed()
        {
            Local += Sending;
            Sending = 0;
        }
    }
}
