using System.CommandLine;
using System.CommandLine.Invocation;
using AuthFailoverProxy.Failover;

namespace AuthFailoverProxy.Cli;

/// <summary>
/// The command tree, on System.CommandLine: the .NET team's own parser (the dotnet CLI's), with POSIX conventions,
/// generated help, typo suggestions and completions, and no reflection or dependencies of its own.
/// </summary>
internal static class AfpCommand
{
    public static async Task<int> RunAsync(string[] args, CliEnvironment environment)
    {
        var options = new GlobalOptions();
        var root = new RootCommand("afp: the AuthFailoverProxy operator's command line. Reads the proxy's state and story, changes its keys, and checks a configuration before it is applied.")
        {
            StatusCommand.Create(options, environment),
            KeysCommand.Create(options, environment),
            EventsCommand.Create(options, environment),
            CheckConfigCommand.Create(options, environment),
        };
        root.Options.Add(options.Url);
        root.Options.Add(options.TokenFile);
        root.Options.Add(options.Json);

        // "@file" would replace an argument with a file's content: arguments here are names, taken literally.
        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && parse.Action is ParseErrorAction or null)
        {
            foreach (var error in parse.Errors)
            {
                // A secret typed where it does not belong ("afp keys add pool name sk-ant-…") is not echoed back.
                await environment.Error.WriteLineAsync("afp: " + SecretMasker.Mask(error.Message));
            }

            await environment.Error.WriteLineAsync($"See '{string.Join(' ', ["afp", .. CommandPath(parse.CommandResult.Command, root), "--help"])}'.");
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = environment.Output, Error = environment.Error });
    }

    /// <summary>Sets <paramref name="command"/>'s action: a session per run, and a refusal turned into its message and exit code.</summary>
    internal static void SetAction(this Command command, GlobalOptions options, CliEnvironment environment, Func<CliSession, CancellationToken, Task<int>> action)
        => command.SetAction(async (parse, cancellationToken) =>
        {
            using var session = new CliSession(parse, options, environment);
            try
            {
                return await action(session, cancellationToken);
            }
            catch (CliException ex)
            {
                return await session.FailAsync(ex);
            }
        });

    private static List<string> CommandPath(Command command, RootCommand root)
    {
        var path = new List<string>();
        for (var c = command; c is not null && c != root; c = c.Parents.OfType<Command>().FirstOrDefault())
        {
            path.Insert(0, c.Name);
        }

        return path;
    }
}

/// <summary>The options every command takes.</summary>
internal sealed class GlobalOptions
{
    public Option<string?> Url { get; } = new("--url")
    {
        Description = $"The proxy's management address. Default: AFP_URL, else the proxy's own AFP_MANAGEMENT_URLS, else {ProxyConnection.DefaultUrl}.",
        HelpName = "URL",
        Recursive = true,
    };

    public Option<string?> TokenFile { get; } = new("--token-file")
    {
        Description = "A file holding the admin token ('-': the first line of standard input). Default: AFP_ADMIN_TOKEN, else the file AFP_ADMIN_TOKEN_FILE names. A token is never taken from the command line.",
        HelpName = "FILE",
        Recursive = true,
    };

    public Option<bool> Json { get; } = new("--json")
    {
        Description = "Write JSON for scripts (the proxy's own answers, or a documented shape), errors as {\"error\": …}.",
        Recursive = true,
    };
}
