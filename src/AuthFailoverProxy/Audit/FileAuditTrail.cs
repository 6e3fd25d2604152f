using System.Runtime.CompilerServices;
using System.Text.Json;
using AuthFailoverProxy.Events;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// The trail without Redis: one JSON object per line, appended to <c>audit.jsonl</c> and flushed to disk after each
/// batch, so a crash loses at most the batch being written. When the file reaches half of
/// <see cref="AuditOptions.MaxBytes"/> it becomes <c>audit.1.jsonl</c> (replacing the one before) and a new file
/// starts: the two together stay within the bound and always hold the newest events. Reading takes both, oldest first.
/// </summary>
internal sealed class FileAuditTrail : IAuditTrail, IDisposable
{
    public const string CurrentName = "audit.jsonl";
    public const string PreviousName = "audit.1.jsonl";
    private const byte NewLine = (byte)'\n';
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly string _current;
    private readonly string _previous;
    private readonly long _rotateAt;
    private FileStream? _file;

    public FileAuditTrail(string directory, long maxBytes)
    {
        _current = Path.Combine(directory, CurrentName);
        _previous = Path.Combine(directory, PreviousName);
        _rotateAt = maxBytes / 2;
        Where = $"in {_current}";
    }

    public string Where { get; }

    public async Task<int> AppendAsync(IReadOnlyList<ProxyEvent> batch, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var file = _file ??= Open();
            foreach (var proxyEvent in batch)
            {
                var line = JsonSerializer.SerializeToUtf8Bytes(proxyEvent, AuditJsonContext.Compact.ProxyEvent);
                if (file.Length > 0 && file.Length + line.Length + 1 > _rotateAt)
                {
                    file = Rotate(file);
                }

                file.Write(line);
                file.WriteByte(NewLine);
            }

            file.Flush(flushToDisk: true);
            return batch.Count;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The next attempt starts from a fresh handle; a half-written line is ended there and skipped when read.
            _file?.Dispose();
            _file = null;
            throw new AuditTrailUnavailableException($"{_current} cannot be written: {ex.Message}", ex);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async IAsyncEnumerable<ProxyEvent> ReadAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Opened together under the lock, read outside it: a rotation meanwhile renames files, not what these handles see.
        List<FileStream> files = [];
        await _lock.WaitAsync(cancellationToken);
        try
        {
            foreach (var path in new[] { _previous, _current })
            {
                try
                {
                    files.Add(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024, useAsync: true));
                }
                catch (FileNotFoundException)
                {
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            files.ForEach(f => f.Dispose());
            throw new AuditTrailUnavailableException($"{_current} cannot be read: {ex.Message}", ex);
        }
        finally
        {
            _lock.Release();
        }

        try
        {
            foreach (var file in files)
            {
                using var reader = new StreamReader(file, leaveOpen: true);
                while (await reader.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (Parse(line) is { } proxyEvent)
                    {
                        yield return proxyEvent;
                    }
                }
            }
        }
        finally
        {
            files.ForEach(f => f.Dispose());
        }
    }

    public void Dispose()
    {
        _file?.Dispose();
        _lock.Dispose();
    }

    private static ProxyEvent? Parse(string line)
    {
        if (string.IsNullOrWhiteSpace(line))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(line, AuditJsonContext.Compact.ProxyEvent);
        }
        catch (JsonException)
        {
            // The last line of a crash: incomplete, and the only one that can be.
            return null;
        }
    }

    private FileStream Open()
    {
        // Checked at start; made again should someone remove it while the proxy runs.
        Directory.CreateDirectory(Path.GetDirectoryName(_current)!);
        var file = new FileStream(_current, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
        if (file.Length > 0)
        {
            // A crash can leave a half-written last line: end it, so the next event starts a line of its own.
            file.Seek(-1, SeekOrigin.End);
            if (file.ReadByte() != NewLine)
            {
                file.WriteByte(NewLine);
            }
        }

        file.Seek(0, SeekOrigin.End);
        return file;
    }

    private FileStream Rotate(FileStream file)
    {
        file.Flush(flushToDisk: true);
        file.Dispose();
        File.Move(_current, _previous, overwrite: true);
        _file = Open();
        return _file;
    }
}
