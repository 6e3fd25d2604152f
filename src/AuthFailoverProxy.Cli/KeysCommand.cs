using System.CommandLine;
using System.Net.Http.Json;
using AuthFailoverProxy.Admin;

namespace AuthFailoverProxy.Cli;

/// <summary>
/// <c>afp keys list|add|confirm|disable|enable|remove</c>: the admin API from a terminal. Every change is made and recorded
/// by the proxy under the admin token's name; afp only asks. A secret is read from standard input (hidden when typed),
/// a file or an environment variable, never from the command line.
/// </summary>
internal static class KeysCommand
{
    public static Command Create(GlobalOptions options, CliEnvironment environment)
    {
        var keys = new Command("keys", "List and change the pools' keys through the admin API (the admin token: AFP_ADMIN_TOKEN or --token-file). Every change is recorded by the proxy with the token's name.");
        keys.Subcommands.Add(List(options, environment));
        keys.Subcommands.Add(Add(options, environment));
        keys.Subcommands.Add(Change("confirm", "Check a pending key again and put it in service; a key the upstream rejects needs --force.", "confirm", HttpMethod.Post, options, environment));
        keys.Subcommands.Add(Change("disable", "Take a key out of service until it is enabled; the last usable key of a pool needs --force (the answer says what happens then).", "disable", HttpMethod.Post, options, environment));
        keys.Subcommands.Add(Change("enable", "Put a disabled key back in service; a key that had failed is checked first, and one still rejected needs --force.", "enable", HttpMethod.Post, options, environment));
        keys.Subcommands.Add(Change("remove", "Remove a key added at runtime; the last usable key of a pool needs --force. Keys from the configuration are removed there.", null, HttpMethod.Delete, options, environment));
        return keys;
    }

    private static Command List(GlobalOptions options, CliEnvironment environment)
    {
        var command = new Command("list", "Every key of every pool: state, since when, fingerprint, scheme, priority and source; why for those out of service.");
        command.SetAction(options, environment, async (session, cancellationToken) =>
        {
            var answer = await session.Proxy.AdminAsync(HttpMethod.Get, "admin/keys", content: null, cancellationToken);
            if (session.Json)
            {
                await session.WriteJsonAsync(answer.Body);
                return ExitCodes.Ok;
            }

            var list = session.Proxy.Parse(answer, AdminJsonContext.Default.AdminKeyList);
            await KeyTable.WriteAsync(session.Out, list.Keys.Select(k => (k.Pool, k.Status)), session.Environment.Time.GetUtcNow(), showPool: true);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Add(GlobalOptions options, CliEnvironment environment)
    {
        var pool = new Argument<string>("pool") { Description = "The pool to add the key to." };
        var name = new Argument<string>("name") { Description = "The key's name: letters, digits, '.', '_' and '-'." };
        var secretFile = new Option<string?>("--secret-file") { Description = "Read the secret from this file (one trailing newline is ignored).", HelpName = "FILE" };
        var secretEnv = new Option<string?>("--secret-env") { Description = "Read the secret from this environment variable.", HelpName = "VARIABLE" };
        var priority = new Option<int?>("--priority") { Description = "Lower is tried first. Default: after the pool's other keys." };
        var scheme = new Option<string?>("--scheme") { Description = "How the key goes on the wire: x-api-key, oauth, bearer or api-key. Default: what the key's format calls for." };
        var organization = new Option<string?>("--openai-organization") { Description = "OpenAI pools: the organization the key spends (OpenAI-Organization)." };
        var project = new Option<string?>("--openai-project") { Description = "OpenAI pools: the project the key spends (OpenAI-Project)." };
        // Accepted only to say no: a secret on the command line stays in the shell's history and the process list.
        var secret = new Option<string?>("--secret") { Hidden = true };
        var command = new Command("add", "Add a key: the proxy checks it at once and it waits, pending and carrying no traffic, until you confirm it. The secret comes from standard input (typed without echo on a terminal), --secret-file or --secret-env.")
        {
            pool, name, secretFile, secretEnv, priority, scheme, organization, project, secret,
        };
        command.SetAction(options, environment, async (session, cancellationToken) =>
        {
            var parse = session.Parse;
            if (parse.GetValue(secret) is not null)
            {
                throw new CliException(ExitCodes.Usage, "the secret is never taken from the command line (it would stay in your shell's history and show in the process list): pipe it on standard input, or use --secret-file FILE or --secret-env VARIABLE.");
            }

            var (poolName, keyName) = (parse.GetValue(pool)!, parse.GetValue(name)!);
            // The token first: with --token-file - it is the first line of standard input, the secret the next.
            session.Proxy.RequireAdminToken();
            var request = new AddKeyRequest(keyName, ReadSecret(session, parse.GetValue(secretFile), parse.GetValue(secretEnv), poolName, keyName), parse.GetValue(priority), parse.GetValue(scheme), parse.GetValue(organization), parse.GetValue(project));
            using var content = JsonContent.Create(request, AdminJsonContext.Default.AddKeyRequest);
            var answer = await session.Proxy.AdminAsync(HttpMethod.Post, $"admin/pools/{Uri.EscapeDataString(poolName)}/keys", content, cancellationToken);
            if (session.Json)
            {
                await session.WriteJsonAsync(answer.Body);
                return ExitCodes.Ok;
            }

            var added = session.Proxy.Parse(answer, AdminJsonContext.Default.AdminAdded);
            var output = session.Out;
            await output.WriteLineAsync($"Added key '{added.Key.Name}' ({added.Key.Fingerprint}, {added.Key.Scheme}, priority {added.Key.Priority}) to pool '{added.Pool}' as {added.By}: it is PENDING and carries no traffic until you confirm it.");
            await output.WriteLineAsync($"Check: {added.Check.Outcome.ToUpperInvariant()}: {added.Check.Detail}");
            foreach (var warning in added.Warnings)
            {
                await output.WriteLineAsync("Warning: " + warning);
            }

            await output.WriteLineAsync($"Stored: {added.Stored}.");
            await output.WriteLineAsync(added.Check.Outcome == "rejected"
                ? $"Next: fix the key and add it again, or remove it: afp keys remove {added.Pool} {added.Key.Name}"
                : $"Next: afp keys confirm {added.Pool} {added.Key.Name}");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Change(string verb, string description, string? action, HttpMethod method, GlobalOptions options, CliEnvironment environment)
    {
        var pool = new Argument<string>("pool") { Description = "The key's pool." };
        var key = new Argument<string>("key") { Description = "The key's name." };
        var force = new Option<bool>("--force") { Description = "Do it even when the proxy refuses because of what would follow (the last usable key, a rejected check)." };
        var command = new Command(verb, description) { pool, key, force };
        command.SetAction(options, environment, async (session, cancellationToken) =>
        {
            var path = $"admin/pools/{Uri.EscapeDataString(session.Parse.GetValue(pool)!)}/keys/{Uri.EscapeDataString(session.Parse.GetValue(key)!)}"
                + (action is null ? string.Empty : "/" + action)
                + (session.Parse.GetValue(force) ? "?force=true" : string.Empty);
            var answer = await session.Proxy.AdminAsync(method, path, content: null, cancellationToken);
            if (session.Json)
            {
                await session.WriteJsonAsync(answer.Body);
                return ExitCodes.Ok;
            }

            var change = session.Proxy.Parse(answer, AdminJsonContext.Default.AdminChange);
            if (change.Check is { } check)
            {
                await session.Out.WriteLineAsync($"Check: {check.Outcome.ToUpperInvariant()}: {check.Detail}");
            }

            await session.Out.WriteLineAsync($"{ProxyConnection.ForCommandLine(change.Message)} ({(change.Changed ? "recorded" : "nothing changed")}: {verb} by {change.By} at {Show.Time(change.At)}; now {change.State}.)");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string ReadSecret(CliSession session, string? file, string? variable, string pool, string name)
    {
        if (file is not null && variable is not null)
        {
            throw new CliException(ExitCodes.Usage, "give the secret one way: --secret-file or --secret-env, or standard input.");
        }

        string? secret;
        if (file is not null)
        {
            try
            {
                secret = File.ReadAllText(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw new CliException(ExitCodes.Usage, $"--secret-file: cannot read '{file}' ({ex.GetType().Name.Replace("Exception", string.Empty, StringComparison.Ordinal)}).");
            }

            // As a pool's KeysDirectory reads its files: one trailing newline is the editor's, not the key's.
            secret = secret.EndsWith("\r\n", StringComparison.Ordinal) ? secret[..^2] : secret.EndsWith('\n') ? secret[..^1] : secret;
        }
        else if (variable is not null)
        {
            secret = session.Environment.Variable(variable) ?? throw new CliException(ExitCodes.Usage, $"--secret-env: the environment variable {variable} is not set or empty.");
        }
        else
        {
            secret = session.Environment.ReadSecretLine($"Secret of key '{name}' for pool '{pool}' (not shown): ")?.TrimEnd('\r');
        }

        return string.IsNullOrEmpty(secret)
            ? throw new CliException(ExitCodes.Usage, file is not null ? $"--secret-file: '{file}' is empty." : "no secret on standard input: pipe it in (afp keys add POOL NAME < file), or use --secret-file or --secret-env.")
            : secret;
    }
}
