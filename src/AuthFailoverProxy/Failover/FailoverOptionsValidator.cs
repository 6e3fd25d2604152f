using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Failover;

/// <summary>Checks the failover and request-body settings, naming the key to fix.</summary>
internal sealed class FailoverOptionsValidator : IValidateOptions<FailoverOptions>, IValidateOptions<RequestBodyOptions>
{
    public ValidateOptionsResult Validate(string? name, FailoverOptions options)
    {
        var errors = new List<string>();
        Positive(errors, "Failover:Deadline", options.Deadline);
        Positive(errors, "Failover:ConnectTimeout", options.ConnectTimeout);
        Positive(errors, "Failover:ActivityTimeout", options.ActivityTimeout);
        Positive(errors, "Failover:DefaultCooldown", options.DefaultCooldown);
        Positive(errors, "Failover:MaxCooldown", options.MaxCooldown);
        Positive(errors, "Failover:MaxRetryDelay", options.MaxRetryDelay);
        if (options.RetryDelay < TimeSpan.Zero)
        {
            errors.Add("Failover:RetryDelay must not be negative.");
        }

        if (options.UpstreamRetries is < 0 or > 10)
        {
            errors.Add($"Failover:UpstreamRetries is {options.UpstreamRetries}: use 0 to 10.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    public ValidateOptionsResult Validate(string? name, RequestBodyOptions options)
    {
        var errors = new List<string>();
        if (options.MaxBytes <= 0)
        {
            errors.Add("RequestBody:MaxBytes must be more than 0.");
        }

        if (options.MemoryThresholdBytes < 0)
        {
            errors.Add("RequestBody:MemoryThresholdBytes must not be negative.");
        }

        if (!string.IsNullOrEmpty(options.TempDirectory) && !Directory.Exists(options.TempDirectory))
        {
            errors.Add($"RequestBody:TempDirectory '{options.TempDirectory}' does not exist.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Positive(List<string> errors, string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            errors.Add($"{key} must be more than zero (a TimeSpan such as 00:00:30).");
        }
    }
}
