using System.Text;

namespace AuthFailoverProxy.Cli;

/// <summary>What afp reads and writes outside itself: environment variables, standard input and output, the clock.</summary>
internal sealed class CliEnvironment(Func<string, string?> variables, TextReader input, bool interactive, TextWriter output, TextWriter error, TimeProvider time)
{
    /// <summary>Gets the process's own environment and console.</summary>
    public static CliEnvironment System => new(Environment.GetEnvironmentVariable, Console.In, !Console.IsInputRedirected, Console.Out, Console.Error, TimeProvider.System);

    public TextWriter Output => output;

    public TextWriter Error => error;

    public TimeProvider Time => time;

    /// <summary>Returns an environment variable's value, or null when it is unset or empty.</summary>
    public string? Variable(string name) => variables(name) is { Length: > 0 } value ? value : null;

    /// <summary>
    /// Reads the next line of standard input (the admin token first with <c>--token-file -</c>, then a key's secret), or,
    /// when standard input is a terminal, asks for it without showing what is typed. Returns null at the end of input.
    /// </summary>
    public string? ReadSecretLine(string prompt)
    {
        if (!interactive)
        {
            return input.ReadLine();
        }

        error.Write(prompt);
        var typed = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                error.WriteLine();
                return typed.ToString();
            }

            if (key.Key == ConsoleKey.Backspace)
            {
                typed.Length = Math.Max(0, typed.Length - 1);
            }
            else if (!char.IsControl(key.KeyChar))
            {
                typed.Append(key.KeyChar);
            }
        }
    }
}

/// <summary>Ends a command with an exit code and a message that never holds a token or a secret.</summary>
internal sealed class CliException(int exitCode, string message, int? status = null) : Exception(message)
{
    public int ExitCode => exitCode;

    /// <summary>Gets the HTTP status the proxy answered with, when the proxy refused.</summary>
    public int? Status => status;
}

/// <summary>The exit codes, as scripts rely on them.</summary>
internal static class ExitCodes
{
    /// <summary>Done: the state was shown, the change made, the configuration valid.</summary>
    public const int Ok = 0;

    /// <summary>An operation failed: the proxy refused it or could not be reached, or a key failed its check.</summary>
    public const int Failed = 1;

    /// <summary>A usage problem (a wrong option, a missing token) or a configuration that would not start.</summary>
    public const int Usage = 2;
}
