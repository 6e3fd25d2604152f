using AuthFailoverProxy.Tests.Fakes;

namespace AuthFailoverProxy.Tests.Cli;

/// <summary>afp as an operator runs it: the built command line as a real process, with only the environment given and its standard input piped.</summary>
internal static class Afp
{
    /// <summary>Gets the command line's build output (the test project builds it once, as a reference).</summary>
    public static string Dll => Repository.PathOf("src", "AuthFailoverProxy.Cli", "bin", Repository.Configuration, "net10.0", "afp.dll");

    /// <summary>Runs <c>dotnet afp.dll</c> with <paramref name="args"/> to its end (60 s at most).</summary>
    public static Task<ToolResult> RunAsync(IEnumerable<string> args, IEnumerable<KeyValuePair<string, string>>? environment = null, string? input = null)
        => Repository.RunAsync("dotnet", [Dll, .. args], Path.GetTempPath(), TimeSpan.FromSeconds(60), environment ?? [], input);

    /// <summary>The environment of an operator who reaches <paramref name="proxy"/>'s management listener, with these tokens.</summary>
    public static Dictionary<string, string> For(ProxyHost proxy, string? adminToken = null, string? managementToken = null)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["AFP_URL"] = proxy.ManagementAddress.ToString() };
        if (adminToken is not null)
        {
            environment["AFP_ADMIN_TOKEN"] = adminToken;
        }

        if (managementToken is not null)
        {
            environment["AFP_MANAGEMENT_TOKEN"] = managementToken;
        }

        return environment;
    }
}
