using System.Diagnostics;
using System.Net;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Audit;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace AuthFailoverProxy.Tests.OperatorConsole;

/// <summary>
/// The operator console in a real headless Chromium: it loads without a console error, shows every key and turns a key
/// the provider revoked dead without a reload, adds a key pending with its check result and confirms it into service,
/// refuses a wrong token, says so before taking away the last usable key, and never holds a secret in its page or in
/// anything it fetched.
/// </summary>
public sealed class ConsolePageTests(ConsoleBrowser chromium) : IClassFixture<ConsoleBrowser>
{
    private const string ManagementToken = "management-token-console-0123456789";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Loads_WithoutConsoleErrors_ShowsEveryKey_AndNoSecretInThePageOrWhatItFetched()
    {
        await using var s = await Scenario.StartAsync(configure: Configure);
        await using var console = await OpenAsync(s, AuditTestBench.AdminToken);

        var page = console.Page;
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary']")).ToHaveAttributeAsync("data-state", "usable");
        await Assertions.Expect(page.Locator("[data-key='anthropic/backup']")).ToHaveAttributeAsync("data-state", "usable");
        await Assertions.Expect(page.Locator("#overall")).ToHaveTextAsync("ok");
        await Assertions.Expect(page.Locator("#replica")).ToContainTextAsync(AuthFailoverProxy.Events.ProxyEvent.ThisReplica);
        await Assertions.Expect(page.Locator("#live")).ToHaveAttributeAsync("data-live", "on");
        // Some traffic, so the spending table has rows.
        using (await s.PostMessageAsync())
        {
        }

        await Assertions.Expect(page.Locator("#usage")).ToContainTextAsync("anthropic/primary", new() { Timeout = 10_000 });
        await console.ScreenshotsAsync("overview");

        Assert.True(console.Errors.Count == 0, string.Join("\n", console.Errors));
        await console.AssertNoSecretAsync(s.Secret("primary"), s.Secret("backup"), s.Proxy.ClientToken, AuditTestBench.AdminToken, ManagementToken);
    }

    [Fact]
    public async Task AKeyRevokedUpstream_TurnsDeadOnThePage_WithinTwoSecondsOfTheProxyConfirmingIt_WithoutAReload()
    {
        await using var s = await Scenario.StartAsync(configure: Configure);
        await using var console = await OpenAsync(s, ManagementToken);
        var page = console.Page;
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary']")).ToHaveAttributeAsync("data-state", "usable");
        await page.EvaluateAsync("() => { window.sameDocument = true; }");

        s.Upstream.SetKeyFault(s.Secret("primary"), KeyFault.Revoked);
        using (var served = await s.PostMessageAsync())
        {
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        }

        var primary = s.Proxy.Services.GetRequiredService<PoolRegistry>().Pools.Single().Keys.Single(k => k.Name == "primary");
        await Failover.FailoverTests.WaitUntilAsync(() => primary.Health.State == KeyState.Dead);
        var confirmed = Stopwatch.StartNew();
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary']")).ToHaveAttributeAsync("data-state", "dead", new() { Timeout = 2_000 });
        var shown = confirmed.Elapsed;

        Assert.True(await page.EvaluateAsync<bool>("() => window.sameDocument === true"), "the page was reloaded");
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary']")).ToContainTextAsync("invalid x-api-key");
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary'] .remedy")).ToContainTextAsync("To fix");
        await Assertions.Expect(page.Locator("#timeline li[data-kind='key.dead']").First).ToContainTextAsync("primary");
        await Assertions.Expect(page.Locator("#overall")).ToHaveTextAsync("degraded");
        await console.ScreenshotsAsync("key-dead");
        TestContext.Current.SendDiagnosticMessage($"The dead key was shown {shown.TotalMilliseconds:0} ms after the proxy confirmed it.");
        Assert.True(console.Errors.Count == 0, string.Join("\n", console.Errors));
    }

    [Fact]
    public async Task AddingAKey_ShowsItPendingWithItsCheck_ConfirmPutsItInService_TheSecretLeavesThePage()
    {
        // The configured keys after any key added first.
        await using var s = await Scenario.StartAsync(configure: c => Configure(c.Set("Pools:anthropic:Keys:0:Priority", 5).Set("Pools:anthropic:Keys:1:Priority", 6)));
        await using var console = await OpenAsync(s, AuditTestBench.AdminToken);
        var page = console.Page;
        var fresh = Secrets.AnthropicApiKey();
        s.Upstream.SetKeyOrganization(fresh, "org-fresh");

        await page.SelectOptionAsync("#add-pool", "anthropic");
        await page.FillAsync("#add-name", "fresh");
        await page.FillAsync("#add-secret", fresh);
        await page.FillAsync("#add-priority", "0");
        await page.ClickAsync("#add-form button[type=submit]");

        await Assertions.Expect(page.Locator("#add-result [data-check]")).ToHaveTextAsync("Check: passed.");
        await Assertions.Expect(page.Locator("#add-secret")).ToHaveValueAsync(string.Empty);
        var row = page.Locator("[data-key='anthropic/fresh']");
        await Assertions.Expect(row).ToHaveAttributeAsync("data-state", "pending");
        await Assertions.Expect(row).ToContainTextAsync("Check when added: passed");
        await console.ScreenshotsAsync("key-pending");

        await row.Locator("button[data-action='confirm']").ClickAsync();
        await Assertions.Expect(page.Locator("#confirm")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#confirm-text")).ToContainTextAsync("Puts the pending key 'fresh'");
        await page.ClickAsync("#confirm-ok");
        await Assertions.Expect(row).ToHaveAttributeAsync("data-state", "usable");

        // Priority 0 puts it before the others: the next request is served by it.
        using var served = await s.PostMessageAsync();
        Assert.Equal("fresh", served.Headers.GetValues("x-afp-key").Single());
        var confirmed = await AuditTestBench.WaitForEventAsync(s.Proxy, "key.confirmed");
        Assert.Contains(confirmed, e => e.GetProperty("kind").GetString() == "key.confirmed" && e.GetProperty("actor").GetString() == "ops");

        Assert.True(console.Errors.Count == 0, string.Join("\n", console.Errors));
        await console.AssertNoSecretAsync(fresh, s.Secret("primary"), AuditTestBench.AdminToken);
    }

    [Fact]
    public async Task TheLastUsableKey_TheDialogSaysWhatDisablingItDoes_CancelChangesNothing()
    {
        await using var s = await Scenario.StartAsync(keyNames: ["only"], configure: Configure);
        await using var console = await OpenAsync(s, AuditTestBench.AdminToken);
        var page = console.Page;
        var row = page.Locator("[data-key='anthropic/only']");
        await Assertions.Expect(row).ToHaveAttributeAsync("data-state", "usable");

        await row.Locator("button[data-action='disable']").ClickAsync();
        await Assertions.Expect(page.Locator("#confirm-warning")).ToContainTextAsync("last usable key");
        await Assertions.Expect(page.Locator("#confirm-ok")).ToHaveTextAsync("Disable anyway");
        await console.ScreenshotsAsync("last-key-dialog");
        await page.Keyboard.PressAsync("Escape");

        await Assertions.Expect(page.Locator("#confirm")).Not.ToBeVisibleAsync();
        using var admin = AuditTestBench.AdminClient(s.Proxy);
        var status = await admin.GetFromJsonAsync<System.Text.Json.JsonElement>("/status", Ct);
        Assert.Equal("usable", status.GetProperty("pools")[0].GetProperty("keys")[0].GetProperty("state").GetString());
        Assert.True(console.Errors.Count == 0, string.Join("\n", console.Errors));
    }

    [Fact]
    public async Task AWrongToken_IsRefused_AndNothingIsShown()
    {
        await using var s = await Scenario.StartAsync(configure: Configure);
        await using var console = await OpenAsync(s, "not-the-token-0123456789abcdef");
        var page = console.Page;

        await Assertions.Expect(page.Locator("#message")).ToContainTextAsync("enter the management token or an admin token");
        await Assertions.Expect(page.Locator("#overall")).ToHaveTextAsync("token needed");
        await Assertions.Expect(page.Locator("#live")).ToContainTextAsync("needs a token");
        Assert.Equal(0, await page.Locator("[data-key]").CountAsync());
        Assert.DoesNotContain("primary", await page.ContentAsync(), StringComparison.Ordinal);
    }

    private static void Configure(ProxyConfig config) => config.WithAdmin().Set("Management:Token", ManagementToken);

    [Fact]
    public async Task ATokenTypedBeforeThePageKnowsWhatItNeeds_IsKeptAndUsed()
    {
        await using var s = await Scenario.StartAsync(configure: Configure);
        // The page's first question (does reading the state need a token?) is held until a token has been typed.
        var asked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var typed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var console = await ConsoleSession.OpenAsync(chromium.Browser, s.Proxy.ManagementAddress, page => page.RouteAsync("**/console/access", async route =>
        {
            asked.TrySetResult();
            await typed.Task;
            await route.ContinueAsync();
        }));
        var page = console.Page;
        await asked.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);

        await page.FillAsync("#token", ManagementToken);
        typed.TrySetResult();
        // The answer came while the token sat in its field: the page says a token is needed, and leaves the typed one alone.
        await Assertions.Expect(page.Locator("#overall")).ToHaveAttributeAsync("data-status", "locked");
        await Assertions.Expect(page.Locator("#token")).ToHaveValueAsync(ManagementToken);
        await page.PressAsync("#token", "Enter");

        await Assertions.Expect(page.Locator("#live")).ToHaveAttributeAsync("data-live", "on");
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary']")).ToHaveAttributeAsync("data-state", "usable");
        await Assertions.Expect(page.Locator("#token")).ToHaveValueAsync(string.Empty);
        Assert.True(console.Errors.Count == 0, string.Join("\n", console.Errors));
    }

    private async Task<ConsoleSession> OpenAsync(Scenario s, string token)
    {
        var session = await ConsoleSession.OpenAsync(chromium.Browser, s.Proxy.ManagementAddress);
        await session.Page.FillAsync("#token", token);
        await session.Page.PressAsync("#token", "Enter");
        return session;
    }
}
