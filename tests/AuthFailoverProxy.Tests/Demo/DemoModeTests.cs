using AuthFailoverProxy.Demo;

namespace AuthFailoverProxy.Tests.Demo;

/// <summary>The newcomer's first five seconds: the demo tells the whole story and says whether it held.</summary>
public sealed class DemoModeTests
{
    [Fact]
    public async Task Demo_TellsTheFailoverStory_AndExitsZeroWhenItHolds()
    {
        using var output = new StringWriter();

        var exitCode = await DemoMode.RunAsync(
            ["--demo", "--exit", "--urls", "http://127.0.0.1:0", "--Management:Urls=http://127.0.0.1:0", "--AFP_LOG_FORMAT=none"],
            output);

        var story = output.ToString();
        Assert.True(exitCode == 0, story);
        Assert.Contains("served by 'backup'  (x-afp-key: backup, x-afp-attempts: 2)", story, StringComparison.Ordinal);
        Assert.Contains("client-visible failures before every key was revoked:  0", story, StringComparison.Ordinal);
        Assert.Contains("503 Service Unavailable", story, StringComparison.Ordinal);
        Assert.Contains("create a standard API key (sk-ant-api03-…)", story, StringComparison.Ordinal);
        Assert.DoesNotContain("DEMO-f3Kq9Lx2Vb7Nw4Rt8Yp1Zc6Hm5Jd0Gs3Ua9Ee2Wo7Qi4Tn", story, StringComparison.Ordinal);
    }
}
