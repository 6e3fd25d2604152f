using AuthFailoverProxy.Telemetry;
using AuthFailoverProxy.Usage;

namespace AuthFailoverProxy.Tests.Usage;

/// <summary>
/// The request path's counts: one row per pool, key, client and model, taken by the sync as what is new per key and per
/// client, and read whole by the metrics.
/// </summary>
public sealed class UsageLedgerTests
{
    [Fact]
    public void Take_RollsUpPerKeyAndPerClient_AndGivesOnlyWhatIsNew()
    {
        var ledger = new UsageLedger();
        ledger.Record("anthropic", "primary", "agent-a", "claude-sonnet-4", new TokenUsage(100, 10, 5, 1));
        ledger.Record("anthropic", "primary", "agent-b", "claude-sonnet-4", new TokenUsage(200, 20, 0, 0));
        ledger.Record("anthropic", "backup", "agent-a", "claude-sonnet-4", new TokenUsage(7, 3, 0, 0));

        var first = ledger.Take().ToDictionary(t => t.Row, t => t.Counts);

        Assert.Equal(new UsageCounts(2, 300, 30, 5, 1), first[new UsageRow(UsageOf.Key, "anthropic", "primary", "claude-sonnet-4")]);
        Assert.Equal(new UsageCounts(1, 7, 3, 0, 0), first[new UsageRow(UsageOf.Key, "anthropic", "backup", "claude-sonnet-4")]);
        Assert.Equal(new UsageCounts(2, 107, 13, 5, 1), first[new UsageRow(UsageOf.Client, string.Empty, "agent-a", "claude-sonnet-4")]);
        Assert.Equal(new UsageCounts(1, 200, 20, 0, 0), first[new UsageRow(UsageOf.Client, string.Empty, "agent-b", "claude-sonnet-4")]);
        Assert.Equal(4, first.Count);
        Assert.Empty(ledger.Take());

        ledger.Record("anthropic", "primary", "agent-b", "claude-sonnet-4", new TokenUsage(1, 2, 0, 0));
        var second = ledger.Take();
        Assert.Equal(
            [(new UsageRow(UsageOf.Key, "anthropic", "primary", "claude-sonnet-4"), new UsageCounts(1, 1, 2, 0, 0)),
             (new UsageRow(UsageOf.Client, string.Empty, "agent-b", "claude-sonnet-4"), new UsageCounts(1, 1, 2, 0, 0))],
            second.OrderBy(t => t.Row.Of));

        // The metrics read everything since the start, whatever the sync took.
        var totals = ledger.Totals().ToDictionary(t => t.Source, t => t.Totals);
        Assert.Equal(new UsageCounts(2, 201, 22, 0, 0), totals[new UsageSource("anthropic", "primary", "agent-b", "claude-sonnet-4")]);
        Assert.Equal(3, totals.Count);
    }

    [Fact]
    public async Task CountsAddedWhileTaking_AreNeitherLostNorCountedTwice()
    {
        var ledger = new UsageLedger();
        const int PerWriter = 20_000;
        var taken = new UsageCounts();
        var writers = Enumerable.Range(0, 2).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                ledger.Record("p", "k", "c", "m", new TokenUsage(3, 1, 0, 0));
            }
        }, TestContext.Current.CancellationToken)).ToArray();

        while (!writers.All(w => w.IsCompleted))
        {
            taken += Sum(ledger.Take());
        }

        await Task.WhenAll(writers);
        taken += Sum(ledger.Take());

        Assert.Equal(new UsageCounts(2 * PerWriter, 6 * PerWriter, 2 * PerWriter, 0, 0), taken);

        static UsageCounts Sum(List<(UsageRow Row, UsageCounts Counts)> rows)
            => rows.Where(r => r.Row.Of == UsageOf.Key).Aggregate(new UsageCounts(), (sum, r) => sum + r.Counts);
    }

    [Fact]
    public async Task RowsWrittenInTurn_FromEveryCore_EachAddUpExactly_WhateverInstancesNameThem()
    {
        // The ledger looks at the row it counted last before its dictionary: rows that take turns, and the same labels in
        // other string instances (a reloaded key's name), must still land on their own row, and every core's part count.
        var ledger = new UsageLedger();
        const int PerWriter = 10_000;
        var writers = Enumerable.Range(0, Environment.ProcessorCount * 2).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                var model = i % 3 == 0 ? "claude-haiku-4-5" : new string("claude-sonnet-4-5".AsSpan());
                ledger.Record("p", i % 2 == 0 ? "primary" : new string("backup".AsSpan()), "c", model, new TokenUsage(2, 1, i % 5 == 0 ? 1 : 0, 0));
            }
        }, TestContext.Current.CancellationToken)).ToArray();
        await Task.WhenAll(writers);

        var totals = ledger.Totals().ToDictionary(t => t.Source, t => t.Totals);
        Assert.Equal(4, totals.Count);
        var writes = writers.Length * PerWriter;
        Assert.Equal(writes, totals.Values.Sum(t => t.Requests));
        Assert.Equal(2L * writes, totals.Values.Sum(t => t.Input));
        Assert.Equal(writes, totals.Values.Sum(t => t.Output));
        Assert.Equal(writes / 5, totals.Values.Sum(t => t.CacheRead));
        // i even and a multiple of 3: a sixth of the writes.
        Assert.Equal(writers.Length * (PerWriter / 6 + 1), totals[new UsageSource("p", "primary", "c", "claude-haiku-4-5")].Requests);
        var taken = ledger.Take().Where(r => r.Row.Of == UsageOf.Key).Sum(r => r.Counts.Requests);
        Assert.Equal(writes, taken);
    }

    [Fact]
    public void ModelLabels_LearnAtMostTheirCapacity_EvenLearnedInParallel()
    {
        var models = new ModelLabels();
        Parallel.For(0, ModelLabels.Capacity * 3, i => models.Learn($"model-{i % (ModelLabels.Capacity + 50)}"));

        var learned = Enumerable.Range(0, ModelLabels.Capacity + 50).Count(i => models.Label($"model-{i}") != ModelLabels.Other);
        Assert.Equal(ModelLabels.Capacity, learned);
        Assert.Equal(ModelLabels.Other, models.Label(null));
        Assert.Equal(ModelLabels.Other, models.Label("never-answered"));
    }

    [Fact]
    public void ModelLabels_AreTheLearnedInstances_WhicheverNameCameLast()
    {
        var models = new ModelLabels();
        var sonnet = models.LearnAndLabel(new string("claude-sonnet-4-5".AsSpan()));
        var haiku = models.LearnAndLabel(new string("claude-haiku-4-5".AsSpan()));

        // The same name in another string gets the learned instance, for the metrics SDK and the ledger to match by reference.
        Assert.Same(sonnet, models.Label(new string("claude-sonnet-4-5".AsSpan())));
        Assert.Same(sonnet, models.LearnAndLabel(new string("claude-sonnet-4-5".AsSpan())));
        Assert.Same(haiku, models.Label(new string("claude-haiku-4-5".AsSpan())));
        Assert.Equal(ModelLabels.Other, models.Label("claude-haiku-4"));
        Assert.Same(haiku, models.Label(new string("claude-haiku-4-5".AsSpan())));
        Assert.Equal(ModelLabels.Other, models.Label("CLAUDE-HAIKU-4-5"));
        Assert.Equal(ModelLabels.Other, models.LearnAndLabel(null));
        Assert.Equal("claude-sonnet-4-5", sonnet);
        Assert.Equal("claude-haiku-4-5", haiku);
    }

    [Theory]
    [InlineData("\"claude-sonnet-4-5\"", true)]
    [InlineData("\"claude-sonnet-4-6\"", false)]
    [InlineData("\"claude-sonnet-4-\\u0035\"", false)]
    [InlineData("\"mod\u00e8le-fran\u00e7ais\"", true)]
    [InlineData("17", false)]
    public void ModelLabels_FindAnAnswersModel_FromItsJson_OnlyWhenLearned(string json, bool found)
    {
        var models = new ModelLabels();
        var sonnet = models.LearnAndLabel(new string("claude-sonnet-4-5".AsSpan()));
        var french = models.LearnAndLabel("mod\u00e8le-fran\u00e7ais");
        models.Learn(new string('m', AuthFailoverProxy.KeyPool.ModelClasses.MaxModelLength));

        var label = Known(json);

        // Found: the learned instance itself. Not found (unknown, or escaped, which the caller decodes): null, never "other".
        Assert.Equal(found, label is not null);
        if (found)
        {
            Assert.True(ReferenceEquals(label, sonnet) || ReferenceEquals(label, french));
        }

        Assert.NotNull(Known($"\"{new string('m', AuthFailoverProxy.KeyPool.ModelClasses.MaxModelLength)}\""));
        Assert.Null(Known($"\"{new string('m', AuthFailoverProxy.KeyPool.ModelClasses.MaxModelLength + 1)}\""));

        string? Known(string value)
        {
            var reader = new System.Text.Json.Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(value));
            Assert.True(reader.Read());
            return models.Known(in reader);
        }
    }
}
