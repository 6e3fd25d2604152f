using AuthFailoverProxy.Hosting;

// AuthFailoverProxy: agents call it instead of the provider; it spends the healthiest key of a pool and replays a
// rejected request on the next key, so one revoked credential never silences an agent.
if (ProxyApplication.MovedCommand(args) is { } moved)
{
    await Console.Error.WriteLineAsync(moved);
    return 2;
}

return await ProxyApplication.RunAsync(args);
