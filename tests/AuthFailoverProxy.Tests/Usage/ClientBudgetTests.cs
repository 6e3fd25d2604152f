using AuthFailoverProxy.Usage;

namespace AuthFailoverProxy.Tests.Usage;

/// <summary>
/// One client's counters: an answer's tokens are added without the lock the client's admissions take, and still count in
/// the window they were spent in, exactly, however many cores spend and admit at once.
/// </summary>
public sealed class ClientBudgetTests
{
    // Ten seconds into a minute.
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-03-03T09:00:10Z", System.Globalization.CultureInfo.InvariantCulture);

    private static ClientBudget Budget(long? rpm = null, long? tpm = null, long? tpd = null)
        => new("agent", 0, new ClientBudgetOptions { RequestsPerMinute = rpm, TokensPerMinute = tpm, TokensPerDay = tpd });

    [Fact]
    public void TokensSpent_CountForTheNextAdmission()
    {
        var budget = Budget(tpm: 100);
        Assert.Null(budget.Admit(Start, out _));

        budget.Spend(Start.AddSeconds(1), 60);
        Assert.Null(budget.Admit(Start.AddSeconds(2), out _));
        budget.Spend(Start.AddSeconds(3), 40);

        var refusal = budget.Admit(Start.AddSeconds(4), out var first);
        Assert.Equal(BudgetLimit.TokensPerMinute, refusal?.Limit);
        Assert.True(first);
        Assert.Equal(100, budget.Status(Start.AddSeconds(5)).TokensPerMinute?.Used);
    }

    [Fact]
    public void TokensSpentAtAMinutesEnd_CountInThatMinute_NotTheNext_AndInTheDay()
    {
        var budget = Budget(tpm: 100, tpd: 1_000);
        Assert.Null(budget.Admit(Start, out _));

        // The last second of the minute; nothing takes the lock until the next minute has begun.
        budget.Spend(Start.AddSeconds(49), 100);
        var status = budget.Status(Start.AddSeconds(51));

        Assert.Equal(0, status.TokensPerMinute?.Used);
        Assert.Equal(100, status.TokensPerDay?.Used);
        Assert.Null(budget.Admit(Start.AddSeconds(52), out _));
    }

    [Fact]
    public void TokensSpentInANewMinute_BeforeAnyAdmission_CountInIt()
    {
        var budget = Budget(tpm: 100);
        Assert.Null(budget.Admit(Start, out _));

        // The first thing the new minute sees is an answer's end.
        budget.Spend(Start.AddSeconds(55), 100);

        Assert.Equal(100, budget.Status(Start.AddSeconds(56)).TokensPerMinute?.Used);
        Assert.Equal(BudgetLimit.TokensPerMinute, budget.Admit(Start.AddSeconds(57), out _)?.Limit);
    }

    [Fact]
    public void TokensSpentFromEveryCore_WhileOthersAdmitAndSync_AddUpExactly()
    {
        var budget = Budget(rpm: long.MaxValue, tpm: long.MaxValue, tpd: long.MaxValue);
        Assert.Null(budget.Admit(Start, out _));
        const int Threads = 4, Spends = 20_000;

        Parallel.For(0, Threads + 1, new ParallelOptions { MaxDegreeOfParallelism = Threads + 1 }, worker =>
        {
            if (worker == Threads)
            {
                // Admissions and syncs take the lock and fold what was spent, while it is being spent.
                for (var i = 0; i < Spends / 10; i++)
                {
                    budget.Admit(Start.AddSeconds(1), out _);
                    // A sync whose Redis is away: what it took goes back to be sent again.
                    budget.FailSync(budget.BeginSync(Start.AddSeconds(1)));
                }

                return;
            }

            for (var i = 0; i < Spends; i++)
            {
                budget.Spend(Start.AddSeconds(1), 3);
            }
        });

        var status = budget.Status(Start.AddSeconds(2));
        Assert.Equal(3L * Threads * Spends, status.TokensPerMinute?.Used);
        Assert.Equal(3L * Threads * Spends, status.TokensPerDay?.Used);
    }
}
