using System.Text.RegularExpressions;
using AuthFailoverProxy.KeyPool;

namespace AuthFailoverProxy.Failover;

/// <summary>
/// Makes upstream text safe to log, store and show. Providers sometimes echo part of a key back
/// ("Incorrect API key provided: sk-proj-…"); whatever looks like a key becomes its fingerprint.
/// </summary>
internal static partial class SecretMasker
{
    private const int MaxLength = 600;

    public static string? Mask(string? text, string? secret = null)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text;
        }

        if (!string.IsNullOrEmpty(secret) && text.Contains(secret, StringComparison.Ordinal))
        {
            text = text.Replace(secret, KeyFormats.Fingerprint(secret), StringComparison.Ordinal);
        }

        text = KeyLike().Replace(text, static m => KeyFormats.Fingerprint(m.Value));
        return text.Length > MaxLength ? string.Concat(text.AsSpan(0, MaxLength), "…") : text;
    }

    // sk-… keys and bearer-looking tokens long enough to be credentials; the fingerprint keeps prefix and last four.
    [GeneratedRegex(@"\bsk-[A-Za-z0-9_\-\*]{8,}", RegexOptions.CultureInvariant)]
    private static partial Regex KeyLike();
}
