using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Playwright;

namespace AuthFailoverProxy.Tests.OperatorConsole;

/// <summary>
/// A real headless Chromium (Debian's <c>chromium</c>, driven by Playwright through the system browser: Playwright's
/// own download cannot work offline), shared by a test class. Each test opens its own context, so nothing a page keeps
/// (its session storage, the token) leaks from one test to another.
/// </summary>
public sealed class ConsoleBrowser : IAsyncLifetime
{
    /// <summary>Where the screenshots go: a folder git ignores, kept after the run as the tests' artifacts.</summary>
    public static string Artifacts { get; } = Path.Combine(Repository.Root, "artifacts", "console");

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        var executable = Environment.GetEnvironmentVariable("AFP_CHROMIUM") ?? "/usr/bin/chromium";
        Assert.True(File.Exists(executable), $"The console tests need Chromium at {executable} (apt-get install chromium; ./scripts/test.sh installs it).");
        _playwright = await Playwright.CreateAsync();
        // As the machine's notes say: no sandbox as root, and no background traffic to a network this machine cannot reach.
        Browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = executable,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        Directory.CreateDirectory(Artifacts);
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }
}
