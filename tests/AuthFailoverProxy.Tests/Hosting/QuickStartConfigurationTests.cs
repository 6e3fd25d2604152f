using AuthFailoverProxy.Hosting;
using Microsoft.Extensions.Configuration;

namespace AuthFailoverProxy.Tests.Hosting;

public sealed class QuickStartConfigurationTests
{
    [Fact]
    public void EnvironmentVariables_BecomeADefaultPool_InPriorityOrder()
    {
        var configuration = Build(new()
        {
            ["AFP_KEYS"] = "primary=sk-ant-api03-one, backup=sk-ant-api03-two",
            ["AFP_UPSTREAM"] = "https://gateway.example",
            ["AFP_CLIENT_TOKENS"] = "tok-1,tok-2",
            ["AFP_MANAGEMENT_URLS"] = "http://0.0.0.0:9999",
            ["AFP_DATA_KEY"] = "q0fHoNUVa1I4f3T0PQ2bp7vNzxwm7cW8xWzPAJ0E6aI=",
        });

        Assert.Equal("anthropic", configuration["Pools:anthropic:Kind"]);
        Assert.Equal("true", configuration["Pools:anthropic:Default"]);
        Assert.Equal("https://gateway.example", configuration["Pools:anthropic:Upstream"]);
        Assert.Equal("primary", configuration["Pools:anthropic:Keys:0:Name"]);
        Assert.Equal("sk-ant-api03-one", configuration["Pools:anthropic:Keys:0:Secret"]);
        Assert.Equal("backup", configuration["Pools:anthropic:Keys:1:Name"]);
        Assert.Equal("tok-2", configuration["Clients:Tokens:1:Token"]);
        Assert.Equal("http://0.0.0.0:9999", configuration["Management:Urls"]);
        Assert.Equal("q0fHoNUVa1I4f3T0PQ2bp7vNzxwm7cW8xWzPAJ0E6aI=", configuration["Encryption:DataKey"]);
    }

    [Fact]
    public void OpenAIProvider_AndKeysWithoutNames_AreRefused_WithoutQuotingThem()
    {
        var configuration = Build(new() { ["AFP_PROVIDER"] = "openai", ["AFP_KEYS"] = "main=sk-proj-aaa,sk-proj-bbb,named=" });

        Assert.Equal("openai", configuration["Pools:openai:Kind"]);
        Assert.Equal("main", configuration["Pools:openai:Keys:0:Name"]);
        Assert.Null(configuration["Pools:openai:Keys:1:Name"]);
        var problems = QuickStartConfigurationProvider.ProblemsIn(configuration).ToList();
        Assert.Equal(
            [
                "AFP_KEYS entry 2 of 3 is not name=secret: write each key as a name, '=' and the secret, separated by commas (AFP_KEYS=primary=sk-ant-…,backup=sk-ant-…).",
                "AFP_KEYS entry 3 of 3 is not name=secret: write each key as a name, '=' and the secret, separated by commas (AFP_KEYS=primary=sk-ant-…,backup=sk-ant-…).",
            ],
            problems);
    }

    [Fact]
    public void HeartbeatUrl_BecomesHeartbeatUrl()
    {
        var configuration = Build(new() { ["AFP_HEARTBEAT_URL"] = "https://hc-ping.com/0b7e4c1a" });

        Assert.Equal("https://hc-ping.com/0b7e4c1a", configuration["Heartbeat:Url"]);
    }

    [Fact]
    public void AlertWebhook_BecomesASignedWebhookChannelNamedWebhook()
    {
        var configuration = Build(new()
        {
            ["AFP_ALERT_WEBHOOK"] = "https://alerts.example/hook",
            ["AFP_ALERT_WEBHOOK_SECRET"] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        });

        Assert.Equal("webhook", configuration["Alerts:Channels:webhook:Type"]);
        Assert.Equal("https://alerts.example/hook", configuration["Alerts:Channels:webhook:Url"]);
        Assert.Equal("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", configuration["Alerts:Channels:webhook:Secret"]);
    }

    [Fact]
    public void NothingSet_AddsNothing() => Assert.Empty(Build(new()).AsEnumerable());

    private static IConfigurationRoot Build(Dictionary<string, string> environment)
        => new ConfigurationBuilder().AddQuickStart(name => environment.GetValueOrDefault(name)).Build();
}
