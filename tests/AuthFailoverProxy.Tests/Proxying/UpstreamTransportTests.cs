using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Tests.Failover;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>
/// Per-pool transport for upstreams that are not a public provider reached directly: an extra CA (a private gateway,
/// TLS-inspecting egress), a client certificate (mTLS), the HTTP version, the address to connect to. A mistake in a
/// setting stops the start naming it; a TLS failure at run time says what failed and blames no key.
/// </summary>
public sealed class UpstreamTransportTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task UpstreamCaNotTrusted_Gets502SayingTheTlsHandshakeFailed_AndNoKeyIsBlamed()
    {
        await using var upstream = await SimulatedProvider.StartAsync(cancellationToken: Ct);
        var primary = Secrets.AnthropicApiKey();
        var config = new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", primary)])
            .Remove("Pools:anthropic:Transport:CaBundle")
            .Set("Failover:UpstreamRetries", 0);
        await using var proxy = await ProxyHost.StartAsync(config);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var message = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetProperty("message").GetString();
        Assert.Contains("the TLS handshake failed", message, StringComparison.Ordinal);
        Assert.True(message!.Contains("set Pools:anthropic:Transport:CaBundle", StringComparison.Ordinal), message);
        Assert.Equal(0, upstream.RequestCount);
        Assert.Equal("usable", await KeyStateAsync(proxy, "primary"));
    }

    [Fact]
    public async Task MutualTls_WithoutTheClientCertificate_Fails_WithIt_Serves()
    {
        await using var gateway = await SimulatedProvider.StartAsync(options: new SimulatedProviderOptions { Name = "llm-gateway.internal.test", RequireClientCertificate = true }, cancellationToken: Ct);
        var directory = Directory.CreateTempSubdirectory("afp-mtls-");
        try
        {
            using var certificate = gateway.Ca!.IssueClient("afp-proxy");
            var (pem, key) = ThrowawayCa.ToPem(certificate);
            var certificateFile = Path.Combine(directory.FullName, "tls.crt");
            var keyFile = Path.Combine(directory.FullName, "tls.key");
            var pfxFile = Path.Combine(directory.FullName, "client.pfx");
            await File.WriteAllTextAsync(certificateFile, pem, Ct);
            await File.WriteAllTextAsync(keyFile, key, Ct);
            await File.WriteAllBytesAsync(pfxFile, certificate.Export(X509ContentType.Pkcs12, "pfx-password"), Ct);

            await using (var without = await ProxyHost.StartAsync(GatewayPool(gateway).Set("Failover:UpstreamRetries", 0)))
            {
                using var refused = await without.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
                Assert.Equal(HttpStatusCode.BadGateway, refused.StatusCode);
            }

            await using (var pemPair = await ProxyHost.StartAsync(GatewayPool(gateway)
                .Set("Pools:anthropic:Transport:ClientCertificate", certificateFile)
                .Set("Pools:anthropic:Transport:ClientCertificateKey", keyFile)))
            {
                using var served = await pemPair.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }

            await using (var pkcs12 = await ProxyHost.StartAsync(GatewayPool(gateway)
                .Set("Pools:anthropic:Transport:ClientCertificate", pfxFile)
                .Set("Pools:anthropic:Transport:ClientCertificatePassword", "pfx-password")))
            {
                using var served = await pkcs12.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
                Assert.DoesNotContain("pfx-password", pkcs12.Logs.AllText, StringComparison.Ordinal);
            }

            Assert.Equal(2, gateway.RequestCount);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(null, HttpProtocols.Http1AndHttp2, "HTTP/2")]
    [InlineData("auto", HttpProtocols.Http1, "HTTP/1.1")]
    [InlineData("1.1", HttpProtocols.Http1AndHttp2, "HTTP/1.1")]
    [InlineData("2", HttpProtocols.Http1AndHttp2, "HTTP/2")]
    public async Task HttpVersion_IsWhatThePoolSays_ForRequestsAndChecks(string? version, HttpProtocols offered, string expected)
    {
        await using var upstream = await SimulatedProvider.StartAsync(options: new SimulatedProviderOptions { Protocols = offered }, cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Transport:HttpVersion", version)
            .Set("Probes:AtStartup", "true");
        await using var proxy = await ProxyHost.StartAsync(config);
        await FailoverTests.WaitUntilAsync(() => upstream.RequestCount == 1);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.All(upstream.Requests, r => Assert.Equal(expected, r.Protocol));
    }

    [Fact]
    public async Task Http2Only_AgainstAnHttp1Gateway_SaysWhichSettingToChange()
    {
        await using var upstream = await SimulatedProvider.StartAsync(options: new SimulatedProviderOptions { Protocols = HttpProtocols.Http1 }, cancellationToken: Ct);
        var config = new ProxyConfig()
            .Pool("anthropic", upstream, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
            .Set("Pools:anthropic:Transport:HttpVersion", "2")
            .Set("Failover:UpstreamRetries", 0);
        await using var proxy = await ProxyHost.StartAsync(config);

        using var response = await proxy.Agent.PostAsync("/v1/messages", Scenario.MessageBody(), Ct);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(body.Contains("Transport:HttpVersion", StringComparison.Ordinal), body);
    }

    [Fact]
    public async Task TransportMistakes_StopTheStart_EachNamingItsSetting()
    {
        var directory = Directory.CreateTempSubdirectory("afp-transport-");
        try
        {
            var notPem = Path.Combine(directory.FullName, "bundle.pem");
            await File.WriteAllTextAsync(notPem, "this is not a certificate\n", Ct);
            var certificateOnly = Path.Combine(directory.FullName, "client.crt");
            using (var ca = ThrowawayCa.Create())
            using (var client = ca.IssueClient("afp"))
            {
                await File.WriteAllTextAsync(certificateOnly, ThrowawayCa.ToPem(client).Certificate, Ct);
            }

            var config = new ProxyConfig()
                .Pool("anthropic", new Uri("https://api.anthropic.test"), isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())])
                .Set("Pools:anthropic:Transport:CaBundle", notPem)
                .Set("Pools:anthropic:Transport:ClientCertificate", certificateOnly)
                .Set("Pools:anthropic:Transport:HttpVersion", "3")
                .Set("Pools:anthropic:Transport:ConnectTo", "no-port-here")
                .Pool("plain", new Uri("http://gateway.internal.test"), keys: [("k", Secrets.AnthropicApiKey())])
                .Set("Pools:plain:Transport:CaBundle", Path.Combine(directory.FullName, "missing.pem"));

            var exception = await Assert.ThrowsAnyAsync<Exception>(async () =>
            {
                await using var proxy = await ProxyHost.StartAsync(config);
            });
            var problems = ProxyApplication.ConfigurationProblems(exception);

            Assert.Contains(problems, p => p.StartsWith($"Pools:anthropic:Transport:CaBundle: '{notPem}' holds no certificate", StringComparison.Ordinal));
            Assert.Contains(problems, p => p.StartsWith($"Pools:anthropic:Transport:ClientCertificate: '{certificateOnly}'", StringComparison.Ordinal) && p.Contains("ClientCertificateKey", StringComparison.Ordinal));
            Assert.Contains("Pools:anthropic:Transport:HttpVersion '3' must be 'auto', '1.1' or '2'.", problems);
            Assert.Contains(problems, p => p.StartsWith("Pools:anthropic:Transport:ConnectTo 'no-port-here' must be host:port", StringComparison.Ordinal));
            Assert.Contains(problems, p => p.StartsWith("Pools:plain:Transport:CaBundle and :ClientCertificate apply to an https:// upstream only", StringComparison.Ordinal));
            Assert.Contains(problems, p => p.StartsWith("Pools:plain:Transport:CaBundle: the file", StringComparison.Ordinal) && p.EndsWith("does not exist.", StringComparison.Ordinal));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static ProxyConfig GatewayPool(SimulatedProvider gateway)
        => new ProxyConfig().Pool("anthropic", gateway, isDefault: true, keys: [("primary", Secrets.AnthropicApiKey())]);

    private static async Task<string> KeyStateAsync(ProxyHost proxy, string key)
    {
        var status = await proxy.Management.GetFromJsonAsync<JsonElement>("/status", Ct);
        return status.GetProperty("pools")[0].GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("name").GetString() == key).GetProperty("state").GetString()!;
    }
}
