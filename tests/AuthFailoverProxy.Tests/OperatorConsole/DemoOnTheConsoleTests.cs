using System.Text.RegularExpressions;
using AuthFailoverProxy.Demo;
using Microsoft.Playwright;

namespace AuthFailoverProxy.Tests.OperatorConsole;

/// <summary>
/// The demo as a newcomer watches it: the console open in a browser with the demo's admin token, the story started with
/// Enter, and the page telling the outage as it happens, a screenshot at each step.
/// </summary>
public sealed partial class DemoOnTheConsoleTests(ConsoleBrowser chromium) : IClassFixture<ConsoleBrowser>
{
    [Fact]
    public async Task TheDemosOutage_IsToldOnTheConsole_AsItHappens()
    {
        var told = new StringWriter();
        // The story is told from the demo's tasks while the test reads it: the synchronized writer locks on itself.
        var output = TextWriter.Synchronized(told);
        string Story()
        {
            lock (output)
            {
                return told.ToString();
            }
        }

        var enter = new EnterKey();
        var demo = DemoMode.RunAsync(
            ["--demo", "--exit", "--urls", "http://127.0.0.1:0", "--Management:Urls=http://127.0.0.1:0", "--AFP_LOG_FORMAT=none"],
            output,
            enter,
            pace: TimeSpan.FromSeconds(1));

        string? console = null;
        await Failover.FailoverTests.WaitUntilAsync(() => (console = ConsoleAddress().Match(Story()) is { Success: true } m ? m.Value : null) is not null);
        await using var session = await ConsoleSession.OpenAsync(chromium.Browser, new Uri(console!));
        var page = session.Page;
        await page.FillAsync("#token", "demo-admin-token");
        await page.PressAsync("#token", "Enter");
        await Assertions.Expect(page.Locator("#live")).ToHaveAttributeAsync("data-live", "on");
        await Assertions.Expect(page.Locator("[data-key='anthropic/primary']")).ToHaveAttributeAsync("data-state", "usable");
        await session.ScreenshotsAsync("demo-1-before");

        enter.Press();
        var primary = page.Locator("[data-key='anthropic/primary']");
        await Assertions.Expect(primary).ToHaveAttributeAsync("data-state", "dead", new() { Timeout = 15_000 });
        await Assertions.Expect(primary).ToContainTextAsync("OAuth authentication is currently not allowed for this organization.");
        await Assertions.Expect(primary.Locator(".remedy")).ToContainTextAsync("create a standard API key");
        await Assertions.Expect(page.Locator("#overall")).ToHaveTextAsync("degraded");
        await session.ScreenshotsAsync("demo-2-primary-dead");

        await Assertions.Expect(page.Locator("[data-key='anthropic/backup']")).ToHaveAttributeAsync("data-state", "dead", new() { Timeout = 20_000 });
        await Assertions.Expect(page.Locator("#overall")).ToHaveTextAsync("exhausted");
        await Assertions.Expect(page.Locator("#timeline li[data-kind='pool.exhausted']").First).ToBeVisibleAsync();
        await session.ScreenshotsAsync("demo-3-every-key-dead");

        Assert.True(await demo == 0, Story());
        // Only the calls the stopping demo cut off may fail: its event stream and last refreshes (net::ERR_…).
        Assert.True(session.Errors.All(e => e.Contains("net::ERR", StringComparison.Ordinal)), string.Join("\n", session.Errors));
    }

    [GeneratedRegex(@"http://[0-9.:\[\]]+/console/")]
    private static partial Regex ConsoleAddress();

    /// <summary>The terminal's Enter key, pressed by the test when the page is ready.</summary>
    private sealed class EnterKey : TextReader
    {
        private readonly TaskCompletionSource<string?> _pressed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Press() => _pressed.TrySetResult(string.Empty);

        public override Task<string?> ReadLineAsync() => _pressed.Task;
    }
}
