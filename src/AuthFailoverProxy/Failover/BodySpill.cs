using System.Globalization;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Where request bodies above <see cref="RequestBodyOptions.MemoryThresholdBytes"/> are spilled, and how much of them.
/// A body is an agent's prompt: each process spills into a directory of its own that only its user can enter
/// (<c>afp-bodies-&lt;pid&gt;-…</c>, mode 0700, under <see cref="RequestBodyOptions.TempDirectory"/>), each file is
/// created owner-only (0600) and, on Linux and macOS, unlinked as soon as it is open: no other user can read it, no
/// name is there to find, and a crash leaves nothing behind. Directories of processes that are gone, and the
/// <c>afp-body-*.tmp</c> files of older versions, are removed at start. The bytes spilled at once are capped by
/// <see cref="RequestBodyOptions.MaxSpillBytes"/>: past it a request gets a 503 with <c>retry-after</c> instead of
/// filling the disk (in Kubernetes, the pod's ephemeral-storage limit evicts it).
/// </summary>
internal sealed partial class BodySpill : IHostedService
{
    private const string DirectoryPrefix = "afp-bodies-";
    private readonly Lazy<string> _directory;
    private long _spilled;

    public BodySpill(IOptions<RequestBodyOptions> options, ILogger<BodySpill> logger)
        : this(options.Value, logger)
    {
    }

    public BodySpill(RequestBodyOptions options, ILogger? logger = null)
    {
        Options = options;
        _directory = new Lazy<string>(() => Prepare(logger), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public RequestBodyOptions Options { get; }

    /// <summary>Gets this process's private spill directory, made (and the leftovers of others removed) on first use.</summary>
    public string Directory => _directory.Value;

    /// <summary>Gets the bytes spilled by bodies held right now.</summary>
    public long Spilled => Interlocked.Read(ref _spilled);

    /// <summary>Makes the directory, and removes what crashed processes left, at start rather than at the first large body.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Directory;
        return Task.CompletedTask;
    }

    /// <summary>Removes this process's folder at a clean stop (its files are unlinked already): nothing is left behind.</summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        if (_directory.IsValueCreated)
        {
            TryDelete(() => System.IO.Directory.Delete(_directory.Value, recursive: true));
        }

        return Task.CompletedTask;
    }

    /// <summary>Takes <paramref name="bytes"/> of the spill capacity; false when that would pass <see cref="RequestBodyOptions.MaxSpillBytes"/>.</summary>
    public bool TryReserve(long bytes)
    {
        var spilled = Interlocked.Read(ref _spilled);
        while (true)
        {
            if (spilled + bytes > Options.MaxSpillBytes)
            {
                return false;
            }

            var seen = Interlocked.CompareExchange(ref _spilled, spilled + bytes, spilled);
            if (seen == spilled)
            {
                return true;
            }

            spilled = seen;
        }
    }

    /// <summary>Gives back what a body reserved, once its file is closed.</summary>
    public void Return(long bytes) => Interlocked.Add(ref _spilled, -bytes);

    /// <summary>Creates a spill file only this user can read, already unlinked where the system allows it.</summary>
    public FileStream Create()
    {
        var path = Path.Combine(Directory, $"afp-body-{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            Share = FileShare.None,
            BufferSize = 0,
            Options = FileOptions.DeleteOnClose | FileOptions.Asynchronous | FileOptions.SequentialScan,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new FileStream(path, options);
        if (!OperatingSystem.IsWindows())
        {
            // The open handle keeps the bytes; the name goes now (DeleteOnClose then finds nothing to delete).
            File.Delete(path);
        }

        return file;
    }

    private string Prepare(ILogger? logger)
    {
        var root = string.IsNullOrEmpty(Options.TempDirectory) ? Path.GetTempPath() : Options.TempDirectory;
        RemoveLeftovers(root, logger);

        // A name nobody can guess, made 0700 by this process: nobody can have prepared it, or a link in its place.
        var path = Path.Combine(root, string.Create(CultureInfo.InvariantCulture, $"{DirectoryPrefix}{Environment.ProcessId}-{Guid.NewGuid():N}"));
        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(path);
        }
        else
        {
            System.IO.Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return path;
    }

    private static void RemoveLeftovers(string root, ILogger? logger)
    {
        if (!System.IO.Directory.Exists(root))
        {
            return;
        }

        var removed = 0;
        foreach (var file in System.IO.Directory.EnumerateFiles(root, "afp-body-*.tmp"))
        {
            // Older versions spilled here by name; an unlinked file a live process holds open stays readable to it.
            removed += TryDelete(() => File.Delete(file));
        }

        foreach (var directory in System.IO.Directory.EnumerateDirectories(root, DirectoryPrefix + "*"))
        {
            var name = Path.GetFileName(directory).AsSpan(DirectoryPrefix.Length);
            var dash = name.IndexOf('-');
            if (dash > 0 && int.TryParse(name[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && !IsRunning(pid))
            {
                removed += TryDelete(() => System.IO.Directory.Delete(directory, recursive: true));
            }
        }

        if (removed > 0 && logger is not null)
        {
            LogLeftoversRemoved(logger, removed, root);
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }

        if (OperatingSystem.IsLinux())
        {
            return System.IO.Directory.Exists(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}"));
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static int TryDelete(Action delete)
    {
        try
        {
            delete();
            return 1;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0; // another user's, or already gone
        }
    }

    [LoggerMessage(EventId = 1230, Level = LogLevel.Information, Message = "Removed {Count} spilled request body file(s) or folder(s) left in {Directory:l} by a process that is gone.")]
    private static partial void LogLeftoversRemoved(ILogger logger, int count, string directory);
}
