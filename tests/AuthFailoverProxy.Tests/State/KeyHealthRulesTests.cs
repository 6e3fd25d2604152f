using System.Globalization;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Tests.State;

public sealed class KeyHealthRulesTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-03-03T00:00:00Z", CultureInfo.InvariantCulture);
    private static readonly KeyFailure Forbidden = new(403, "permission_error", null, "no", "req_1", T0);
    private static readonly KeyFailure Limited = new(429, "rate_limit_error", null, "slow down", "req_2", T0);

    [Fact]
    public void DeadStaysDead_ACoolingReportCannotResurrectIt()
    {
        var dead = KeyHealthRules.ReportDead(KeyHealth.Initial(T0), Forbidden)!;
        Assert.Equal(KeyState.Dead, dead.State);
        Assert.Null(KeyHealthRules.ReportCooling(dead, Limited, T0.AddMinutes(1)));
        Assert.Null(KeyHealthRules.ReportDead(dead, Forbidden));
    }

    [Fact]
    public void LaterDeadlineWins()
    {
        var cooling = KeyHealthRules.ReportCooling(KeyHealth.Initial(T0), Limited, T0.AddSeconds(60))!;
        Assert.Null(KeyHealthRules.ReportCooling(cooling, Limited, T0.AddSeconds(30)));
        var longer = KeyHealthRules.ReportCooling(cooling, Limited, T0.AddSeconds(90))!;
        Assert.Equal(T0.AddSeconds(90), longer.Until);
        Assert.Equal(cooling.Since, longer.Since);
        Assert.Equal(1, longer.Failures);
    }

    [Fact]
    public void CoolingKey_CanDie()
    {
        var cooling = KeyHealthRules.ReportCooling(KeyHealth.Initial(T0), Limited, T0.AddSeconds(60))!;
        Assert.Equal(KeyState.Dead, KeyHealthRules.ReportDead(cooling, Forbidden)!.State);
    }

    [Theory]
    [InlineData(nameof(KeyState.Disabled))]
    [InlineData(nameof(KeyState.Pending))]
    public void OperatorStates_AreNeverOverriddenByTraffic(string state)
    {
        var health = KeyHealth.Initial(T0) with { State = Enum.Parse<KeyState>(state) };
        Assert.Null(KeyHealthRules.ReportDead(health, Forbidden));
        Assert.Null(KeyHealthRules.ReportCooling(health, Limited, T0.AddMinutes(1)));
        Assert.Null(KeyHealthRules.Heal(health, T0));
    }

    [Fact]
    public void ExpiredCooldown_ReadsAsUsable_AndServes()
    {
        var cooling = KeyHealthRules.ReportCooling(KeyHealth.Initial(T0), Limited, T0.AddSeconds(10))!;
        Assert.False(cooling.CanServeAt(T0.AddSeconds(9).ToUnixTimeMilliseconds()));
        Assert.True(cooling.CanServeAt(T0.AddSeconds(10).ToUnixTimeMilliseconds()));
        Assert.Equal(KeyState.Usable, cooling.EffectiveState(T0.AddSeconds(11)));
    }

    [Fact]
    public void Heal_ReturnsDeadKeyToService_KeepingItsHistory()
    {
        var dead = KeyHealthRules.ReportDead(KeyHealth.Initial(T0), Forbidden)!;
        var healed = KeyHealthRules.Heal(dead, T0.AddHours(1))!;
        Assert.Equal(KeyState.Usable, healed.State);
        Assert.Equal(Forbidden, healed.LastFailure);
        Assert.Equal(1, healed.Failures);
    }
}
