using AuthFailoverProxy.Tests.Fakes;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace AuthFailoverProxy.Tests.Proxying;

public sealed class AgentPipelineTests
{
    /// <summary>
    /// The hot path has no route matching: any endpoint in the app's route table (a management branch using endpoint
    /// routing registers its endpoints there) makes WebApplication run the matcher on every agent request.
    /// </summary>
    [Fact]
    public async Task AgentRequests_DoNotGoThroughEndpointRouting()
    {
        await using var s = await Scenario.StartAsync();

        var endpoints = s.Proxy.Services.GetServices<EndpointDataSource>().SelectMany(d => d.Endpoints);

        Assert.Empty(endpoints.Select(e => e.DisplayName));
    }
}
