using AuthFailoverProxy.Demo;
using AuthFailoverProxy.Demo.Drill;

// Not the product: the demo (the failover story against a simulated provider) and the chaos drill.
//   dotnet run --project src/AuthFailoverProxy.Demo                  the demo
//   dotnet run --project src/AuthFailoverProxy.Demo -- drill [--short]   the chaos drill
return DrillMode.IsRequested(args) ? await DrillMode.RunAsync(args) : await DemoMode.RunAsync(args);
