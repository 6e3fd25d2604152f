using Microsoft.Playwright;

namespace AuthFailoverProxy.Tests.OperatorConsole;

/// <summary>One page of the console in its own browser context, with what it logged as errors and every answer it fetched.</summary>
internal sealed class ConsoleSession : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly List<Task<string>> _answers = [];

    private ConsoleSession(IBrowserContext context, IPage page)
    {
        _context = context;
        Page = page;
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                Errors.Add(message.Text);
            }
        };
        page.PageError += (_, error) => Errors.Add(error);
        // Every answer the page read to its end (the event stream never ends, and its events are on the page anyway).
        page.RequestFinished += (_, request) =>
        {
            lock (_answers)
            {
                _answers.Add(BodyAsync(request));
            }
        };
    }

    public IPage Page { get; }

    public List<string> Errors { get; } = [];

    /// <summary>Opens the console; <paramref name="prepare"/> is given the page before it loads (to hold back a request).</summary>
    public static async Task<ConsoleSession> OpenAsync(IBrowser browser, Uri management, Func<IPage, Task>? prepare = null)
    {
        var context = await browser.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 } });
        var page = await context.NewPageAsync();
        var session = new ConsoleSession(context, page);
        if (prepare is not null)
        {
            await prepare(page);
        }

        await page.GotoAsync(new Uri(management, "/").ToString());
        return session;
    }

    /// <summary>Saves the page at desktop and phone width, as the run's artifacts.</summary>
    public async Task ScreenshotsAsync(string name)
    {
        await Page.ScreenshotAsync(new() { Path = Path.Combine(ConsoleBrowser.Artifacts, $"{name}-desktop.png"), FullPage = true });
        await Page.SetViewportSizeAsync(390, 844);
        await Page.ScreenshotAsync(new() { Path = Path.Combine(ConsoleBrowser.Artifacts, $"{name}-phone.png"), FullPage = true });
        await Page.SetViewportSizeAsync(1280, 900);
    }

    /// <summary>Asserts that no secret is in the page, in a field's value, or in any answer the page fetched.</summary>
    public async Task AssertNoSecretAsync(params string[] secrets)
    {
        var html = await Page.ContentAsync();
        var values = await Page.EvaluateAsync<string[]>("() => Array.from(document.querySelectorAll('input, select, textarea')).map(e => e.value)");
        string[] answers;
        lock (_answers)
        {
            answers = [.. _answers.Select(a => a.IsCompletedSuccessfully ? a.Result : string.Empty)];
        }

        Assert.NotEmpty(answers);
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, html, StringComparison.Ordinal);
            Assert.DoesNotContain(values, v => v.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(answers, a => a.Contains(secret, StringComparison.Ordinal));
        }
    }

    public async ValueTask DisposeAsync() => await _context.DisposeAsync();

    private static async Task<string> BodyAsync(IRequest request)
    {
        try
        {
            return await request.ResponseAsync() is { } response ? await response.TextAsync() : string.Empty;
        }
        catch (PlaywrightException)
        {
            return string.Empty;
        }
    }
}
