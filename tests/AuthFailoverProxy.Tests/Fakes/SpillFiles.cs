namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// The spilled request bodies this process holds open under a directory. A spill file is unlinked as soon as it is
/// made, so it has no name to list: it is found among the process's open file descriptors, as "… (deleted)".
/// </summary>
internal static class SpillFiles
{
    public static List<string> OpenUnder(string directory)
        => [.. Directory.GetFiles("/proc/self/fd")
            .Select(fd =>
            {
                try
                {
                    return new FileInfo(fd).LinkTarget;
                }
                catch (IOException)
                {
                    return null; // closed meanwhile
                }
            })
            .OfType<string>()
            .Where(target => target.StartsWith(directory, StringComparison.Ordinal) && target.Contains("/afp-body-", StringComparison.Ordinal))];

    /// <summary>Every file with a name under <paramref name="directory"/>, at any depth.</summary>
    public static string[] NamedUnder(string directory) => Directory.GetFiles(directory, "*", SearchOption.AllDirectories);
}
