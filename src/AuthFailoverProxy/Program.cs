using AuthFailoverProxy.Demo;
using AuthFailoverProxy.Drill;
using AuthFailoverProxy.Hosting;

// AuthFailoverProxy: agents call it instead of the provider; it spends the healthiest key of a pool and replays a
// rejected request on the next key, so one revoked credential never silences an agent.
if (DemoMode.IsRequested(args))
{
    return await DemoMode.RunAsync(args);
}

if (DrillMode.IsRequested(args))
{
    return await DrillMode.RunAsync(args);
}

var app = ProxyApplication.Build(args);
return await ProxyApplication.RunAsync(app);
