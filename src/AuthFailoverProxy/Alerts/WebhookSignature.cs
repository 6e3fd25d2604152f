using System.Security.Cryptography;
using System.Text;

namespace AuthFailoverProxy.Alerts;

/// <summary>
/// Signs a webhook the Standard Webhooks way, so the receiver can tell it came from this proxy and was not replayed:
/// <c>webhook-signature: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))</c>, where the key is the base64 text
/// after the <c>whsec_</c> prefix of the shared secret.
/// </summary>
internal static class WebhookSignature
{
    public const string SecretPrefix = "whsec_";

    /// <summary>The shortest signing key Standard Webhooks allows, in bytes after base64 decoding (it allows up to 64).</summary>
    public const int MinimumKeyBytes = 24;

    /// <summary>Reads the signing key out of a <c>whsec_…</c> secret; false when it is not one (the caller names the key, never the value).</summary>
    public static bool TryParseSecret(string? secret, out byte[] key)
    {
        key = [];
        if (secret is null || !secret.StartsWith(SecretPrefix, StringComparison.Ordinal) || secret.Length == SecretPrefix.Length)
        {
            return false;
        }

        var buffer = new byte[secret.Length];
        if (!Convert.TryFromBase64String(secret[SecretPrefix.Length..], buffer, out var written) || written == 0)
        {
            return false;
        }

        key = buffer[..written];
        return true;
    }

    /// <summary>Returns the <c>webhook-signature</c> header value for one message.</summary>
    public static string Sign(byte[] key, string id, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.UTF8.GetBytes($"{id}.{timestamp}.");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, signed));
    }
}
