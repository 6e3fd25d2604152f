using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Audit;

/// <summary>
/// Checks the audit settings, naming the key to fix. Without Redis it also makes sure the directory can be created and
/// the trail written, so a read-only volume stops the start instead of losing every event quietly.
/// </summary>
internal sealed class AuditOptionsValidator(IHostEnvironment environment, bool embedded) : IValidateOptions<AuditOptions>
{
    public ValidateOptionsResult Validate(string? name, AuditOptions options)
    {
        if (!options.Enabled)
        {
            return ValidateOptionsResult.Success;
        }

        var errors = new List<string>();
        if (options.MaxEvents < 1)
        {
            errors.Add($"Audit:MaxEvents is {options.MaxEvents}: use 1 or more (about how many events the Redis stream keeps).");
        }

        if (options.MaxBuffered < 1)
        {
            errors.Add($"Audit:MaxBuffered is {options.MaxBuffered}: use 1 or more (events kept in memory while the trail cannot be written).");
        }

        if (options.RetryInterval <= TimeSpan.Zero)
        {
            errors.Add("Audit:RetryInterval must be more than zero.");
        }

        if (embedded)
        {
            if (options.MaxBytes < AuditOptions.MinBytes)
            {
                errors.Add($"Audit:MaxBytes is {options.MaxBytes}: use at least {AuditOptions.MinBytes} (16 KiB); the default is 67108864 (64 MiB).");
            }

            CheckWritable(errors, options);
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private void CheckWritable(List<string> errors, AuditOptions options)
    {
        string? directory = null;
        try
        {
            directory = options.ResolveDirectory(environment.ContentRootPath);
            System.IO.Directory.CreateDirectory(directory);
            // Opening the trail itself for appending proves what matters, and leaves nothing behind but the trail.
            using var probe = new FileStream(Path.Combine(directory, FileAuditTrail.CurrentName), FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            errors.Add($"Audit:Directory '{directory ?? options.Directory}' cannot be created or written ({ex.Message}): point it at a writable directory (a volume in a container), or set Audit:Enabled to false.");
        }
    }
}
