using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Failover;

/// <summary>Checks the failover and request-body settings, naming the key to fix.</summary>
internal sealed class FailoverOptionsValidator : IValidateOptions<FailoverOptions>, IValidateOptions<RequestBodyOptions>, IValidateOptions<CircuitBreakerOptions>
{
    public ValidateOptionsResult Validate(string? name, CircuitBreakerOptions options)
    {
        var errors = new List<string>();
        if (options.FailureRatio is <= 0 or > 1)
        {
            errors.Add($"CircuitBreaker:FailureRatio is {options.FailureRatio}: use a share above 0 and at most 1, such as 0.5.");
        }

        if (options.MinimumThroughput < 2)
        {
            errors.Add("CircuitBreaker:MinimumThroughput must be 2 or more.");
        }

        // Polly's own bounds: a sampling window of at least 0.5 s and a break of at least 0.5 s.
        if (options.SamplingDuration < TimeSpan.FromMilliseconds(500))
        {
            errors.Add("CircuitBreaker:SamplingDuration must be at least 00:00:00.5.");
        }

        if (options.BreakDuration < TimeSpan.FromMilliseconds(500))
        {
            errors.Add("CircuitBreaker:BreakDuration must be at least 00:00:00.5.");
        }

        Positive(errors, "CircuitBreaker:ProbeInterval", options.ProbeInterval);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    public ValidateOptionsResult Validate(string? name, FailoverOptions options)
    {
        var errors = new List<string>();
        Positive(errors, "Failover:Deadline", options.Deadline);
        Positive(errors, "Failover:ConnectTimeout", options.ConnectTimeout);
        Positive(errors, "Failover:ActivityTimeout", options.ActivityTimeout);
        Positive(errors, "Failover:StreamHeadersTimeout", options.StreamHeadersTimeout);
        if (options.StreamHoldTime < TimeSpan.Zero || options.StreamHoldTime > TimeSpan.FromMinutes(1))
        {
            errors.Add($"Failover:StreamHoldTime is {options.StreamHoldTime}: use 00:00:00 (off) to 00:01:00; a few seconds is the point.");
        }

        Positive(errors, "Failover:ScopedRefusalTime", options.ScopedRefusalTime);
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

        if (options.MaxSpillBytes < 0)
        {
            errors.Add("RequestBody:MaxSpillBytes must not be negative (0 spills nothing: bodies above RequestBody:MemoryThresholdBytes get 503).");
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
