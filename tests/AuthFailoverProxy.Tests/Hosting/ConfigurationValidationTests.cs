using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Hosting;

/// <summary>A configuration mistake stops the start with every problem listed, each naming the key to fix, and no secret.</summary>
public sealed class ConfigurationValidationTests
{
    private static readonly Uri Upstream = new("http://127.0.0.1:9");

    [Fact]
    public async Task EmptySecretAndBadUpstream_AreAllReported_ByKey()
    {
        var secret = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", secret), ("backup", "")])
            .Set("Pools:anthropic:Upstream", "not a url")
            .Set("Pools:anthropic:ProbePath", "v1/models")
            .Set("Failover:UpstreamRetries", 99);

        var problems = await StartupProblemsAsync(config);

        Assert.Contains("Pools:anthropic:Keys:1:Secret is empty (key 'backup').", problems);
        Assert.Contains(problems, p => p.StartsWith("Pools:anthropic:Upstream 'not a url'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Failover:UpstreamRetries is 99", StringComparison.Ordinal));
        Assert.Contains("Pools:anthropic:ProbePath 'v1/models' must start with '/', e.g. /v1/models.", problems);
        Assert.DoesNotContain(problems, p => p.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public async Task NoClientTokens_RefusesToStartAnOpenRelay()
    {
        var config = new ProxyConfig().Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .WithoutClientTokens();

        var problems = await StartupProblemsAsync(config);

        Assert.Contains(problems, p => p.StartsWith("Clients:Tokens is empty", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SecretWithALineBreak_IsRefused_WithoutQuotingIt()
    {
        var config = new ProxyConfig().Pool("anthropic", Upstream, isDefault: true, keys: [("primary", "sk-ant-api03-abc\ndef")]);

        var problems = await StartupProblemsAsync(config);

        Assert.Contains("Pools:anthropic:Keys:0:Secret (key 'primary') contains a line break or another control character; it cannot be sent in an HTTP header.", problems);
    }

    [Fact]
    public async Task MistakesOfSeveralSections_AreNamedTogether_NotTheFirstOneTouched()
    {
        // The clients' options are resolved while the app is built, the listeners when its server is made: each used to
        // fail the start alone, so an operator fixed one mistake per restart.
        var config = new ProxyConfig().Pool("anthropic", new Uri("ftp://x"), isDefault: true, keys: [("primary", "")])
            .WithoutClientTokens()
            .Set("Management:Urls", "https://127.0.0.1:0");

        var problems = await StartupProblemsAsync(config);

        Assert.Contains("Pools:anthropic:Upstream 'ftp://x/' is not an absolute http:// or https:// URL.", problems);
        Assert.Contains("Pools:anthropic:Keys:0:Secret is empty (key 'primary').", problems);
        Assert.Contains(problems, p => p.StartsWith("Clients:Tokens is empty", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Management:Urls (AFP_MANAGEMENT_URLS): 'https://127.0.0.1:0' uses https", StringComparison.Ordinal));
        Assert.Equal(problems.Count, problems.Distinct().Count());
    }

    [Fact]
    public async Task ManagementOnTheAgentPort_IsRefused()
    {
        var config = new ProxyConfig().Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("urls", "http://127.0.0.1:18080").Set("Management:Urls", "http://127.0.0.1:18080");

        var problems = await StartupProblemsAsync(config);

        Assert.Contains(problems, p => p.Contains("Management:Urls and urls both use port 18080", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UnparsableTimeSpan_NamesTheKey()
    {
        var config = new ProxyConfig().Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Failover:Deadline", "soon");

        var problems = await StartupProblemsAsync(config);

        Assert.Contains(problems, p => p.Contains("Failover:Deadline", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Fallback_MustNameAnotherPoolOfTheSameKind()
    {
        var config = new ProxyConfig()
            .Pool("anthropic", Upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Pool("openai", Upstream, "openai", keys: [("o", Secrets.OpenAIKey())])
            .Set("Pools:anthropic:Fallback", "openai")
            .Set("Pools:openai:Fallback", "nowhere");

        var problems = await StartupProblemsAsync(config);

        Assert.Contains("Pools:anthropic:Fallback names pool 'openai', which speaks OpenAI while 'anthropic' speaks Anthropic.", problems);
        Assert.Contains("Pools:openai:Fallback names pool 'nowhere', which is not configured.", problems);
    }

    [Fact]
    public async Task KeysDirectory_ReadsOneFilePerKey_LikeAMountedKubernetesSecret()
    {
        var directory = Directory.CreateTempSubdirectory("afp-keys-");
        try
        {
            var primary = Secrets.AnthropicApiKey();
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "primary"), primary + "\n", TestContext.Current.CancellationToken);
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "backup"), Secrets.AnthropicApiKey(), TestContext.Current.CancellationToken);
            Directory.CreateDirectory(Path.Combine(directory.FullName, "..data"));
            var config = new ProxyConfig()
                .Set("Pools:anthropic:Upstream", Upstream.ToString())
                .Set("Pools:anthropic:KeysDirectory", directory.FullName)
                // Priority comes from configuration; the secret from the file of the same name.
                .Set("Pools:anthropic:Keys:0:Name", "primary");

            await using var proxy = await ProxyHost.StartAsync(config);
            var registry = (AuthFailoverProxy.KeyPool.PoolRegistry)proxy.Services.GetService(typeof(AuthFailoverProxy.KeyPool.PoolRegistry))!;
            var keys = registry.Pools.Single().Keys;

            Assert.Equal(["primary", "backup"], keys.Select(k => k.Name));
            Assert.Equal(primary, keys[0].Secret);
            Assert.All(keys, k => Assert.Equal("file", k.Source));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>Starts the proxy with <paramref name="config"/>, expects the start to fail, and returns the problems it names.</summary>
    internal static async Task<List<string>> StartupProblemsAsync(ProxyConfig config)
    {
        var exception = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var proxy = await ProxyHost.StartAsync(config);
        });
        var problems = ProxyApplication.ConfigurationProblems(exception);
        Assert.NotEmpty(problems);
        return problems;
    }

    [Theory]
    [InlineData("--demo", "dotnet run --project src/AuthFailoverProxy.Demo'")]
    [InlineData("drill", "dotnet run --project src/AuthFailoverProxy.Demo -- drill")]
    public void DemoOrDrillAskedOfTheService_SaysWhereTheyWent(string argument, string expected)
    {
        Assert.Contains(expected, ProxyApplication.MovedCommand([argument]), StringComparison.Ordinal);
        Assert.Null(ProxyApplication.MovedCommand(["--urls", "http://127.0.0.1:0"]));
    }
}
