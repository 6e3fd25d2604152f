using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.State;

/// <summary>
/// Seals keys added at runtime under the data key from <c>Encryption</c> (or <c>AFP_DATA_KEY</c>). The keys are checked at
/// start; the sealer itself is built on first use.
/// </summary>
internal static class EncryptionServiceCollectionExtensions
{
    public static IServiceCollection AddSecretSealing(this IServiceCollection services)
    {
        services.AddOptions<EncryptionOptions>().BindConfiguration("Encryption").ValidateOnStart();
        services.AddSingleton<IValidateOptions<EncryptionOptions>, EncryptionOptionsValidator>();
        services.AddSingleton<SecretSealer>();
        return services;
    }

    private sealed class EncryptionOptionsValidator : IValidateOptions<EncryptionOptions>
    {
        public ValidateOptionsResult Validate(string? name, EncryptionOptions options)
        {
            var errors = SecretSealer.ReadKeys(options, out _, out _);
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}
