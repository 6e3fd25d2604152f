using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics.CodeAnalysis;
using System.Security;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.State;

/// <summary>
/// Seals secrets with AES-GCM under the data key before they are stored, and opens them with the current or a previous
/// key. Sealed text reads <c>v1.{keyId}.{base64url(nonce | ciphertext | tag)}</c>: the key id names the data key without
/// revealing it, and the associated data (where the value is stored) is authenticated, so a ciphertext copied under
/// another name does not open.
/// </summary>
internal sealed class SecretSealer
{
    /// <summary>The size of a data key: AES-256.</summary>
    public const int KeySize = 32;

    private const string Version = "v1";
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const int KeyIdBytes = 8;
    private const int KeyIdLength = KeyIdBytes * 2;

    // A key is 44 characters of base64; anything much longer is the wrong file (and /dev/zero must not be read whole).
    private const int MaxKeyFileChars = 1024;
    private const string Generate = "32 random bytes in base64 (generate one with: openssl rand -base64 32)";

    private static readonly byte[] KeyIdDomain = "afp-data-key-id"u8.ToArray();

    // Plaintext that is not valid UTF-16 must fail loudly rather than come back altered.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[]? _current;
    private readonly Dictionary<string, byte[]> _keys = new(StringComparer.Ordinal);

    public SecretSealer(IOptions<EncryptionOptions> options)
    {
        // Reading Value runs the validator, so a mistake surfaces as the same named problems as at start.
        var errors = ReadKeys(options.Value, out var current, out var previous);
        if (errors.Count > 0)
        {
            // Only reached when the key file changed after the start-up validation. The messages name settings, never values.
            throw new InvalidOperationException("The Encryption configuration is not valid: " + string.Join(" ", errors));
        }

        if (current is not null)
        {
            _current = current;
            CurrentKeyId = KeyIdOf(current);
            _keys[CurrentKeyId] = current;
        }

        foreach (var key in previous)
        {
            _keys.TryAdd(KeyIdOf(key), key);
        }
    }

    /// <summary>Gets a value indicating whether a current data key is configured, so secrets can be sealed.</summary>
    [MemberNotNullWhen(true, nameof(_current), nameof(CurrentKeyId))]
    public bool CanSeal => _current is not null;

    /// <summary>Gets the id of the current data key (16 hex characters), or <see langword="null"/> without one.</summary>
    public string? CurrentKeyId { get; }

    /// <summary>Seals <paramref name="plaintext"/> under the current data key, bound to <paramref name="associatedData"/>.</summary>
    /// <exception cref="InvalidOperationException">No data key is configured.</exception>
    public string Seal(string plaintext, string associatedData)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(associatedData);
        if (!CanSeal)
        {
            throw new InvalidOperationException(
                "No data key is configured, so secrets cannot be sealed for storage: set Encryption:DataKey (AFP_DATA_KEY) or Encryption:DataKeyFile.");
        }

        var plain = StrictUtf8.GetBytes(plaintext);
        var payload = new byte[NonceSize + plain.Length + TagSize];
        var nonce = payload.AsSpan(0, NonceSize);

        // A random 96-bit nonce is safe far beyond the number of keys an operator will ever add under one data key.
        RandomNumberGenerator.Fill(nonce);
        using (var aes = new AesGcm(_current, TagSize))
        {
            aes.Encrypt(nonce, plain, payload.AsSpan(NonceSize, plain.Length), payload.AsSpan(NonceSize + plain.Length), Encoding.UTF8.GetBytes(associatedData));
        }

        CryptographicOperations.ZeroMemory(plain);
        return $"{Version}.{CurrentKeyId}.{Base64Url.EncodeToString(payload)}";
    }

    /// <summary>
    /// Opens text from <see cref="Seal"/> with the data key it names. Returns <see langword="false"/>, never throws, when
    /// the key is not configured or the text is malformed, altered or bound to other associated data.
    /// </summary>
    /// <param name="sealedText">The sealed text.</param>
    /// <param name="associatedData">The associated data it was sealed with.</param>
    /// <param name="plaintext">The secret, when it opens.</param>
    /// <param name="keyId">The id of the data key named in the text, even when that key is not configured; <see langword="null"/> when unreadable.</param>
    public bool TryOpen(string sealedText, string associatedData, [NotNullWhen(true)] out string? plaintext, out string? keyId)
    {
        ArgumentNullException.ThrowIfNull(associatedData);
        plaintext = null;
        if (!TryParse(sealedText, out keyId, out var encoded) || !_keys.TryGetValue(keyId, out var key))
        {
            return false;
        }

        // The status form: TryDecodeFromChars throws on some malformed lengths.
        var payload = new byte[Base64Url.GetMaxDecodedLength(encoded.Length)];
        if (Base64Url.DecodeFromChars(encoded, payload, out _, out var written) != OperationStatus.Done || written < NonceSize + TagSize)
        {
            return false;
        }

        var plain = new byte[written - NonceSize - TagSize];
        try
        {
            using var aes = new AesGcm(key, TagSize);
            aes.Decrypt(
                payload.AsSpan(0, NonceSize),
                payload.AsSpan(NonceSize, plain.Length),
                payload.AsSpan(NonceSize + plain.Length, TagSize),
                plain,
                Encoding.UTF8.GetBytes(associatedData));
        }
        catch (CryptographicException)
        {
            return false;
        }

        plaintext = Encoding.UTF8.GetString(plain);
        CryptographicOperations.ZeroMemory(plain);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="sealedText"/> names the current data key; text sealed with an older one is re-sealed to finish
    /// a rotation. It reads the key id only: whether the text opens is <see cref="TryOpen"/>'s to say.
    /// </summary>
    public bool IsCurrent(string sealedText)
        => CanSeal && TryParse(sealedText, out var keyId, out _) && string.Equals(keyId, CurrentKeyId, StringComparison.Ordinal);

    /// <summary>
    /// Decodes the configured data keys. Returns every problem, each naming the setting to fix and never quoting a value;
    /// shared by the start-up validator and the constructor so both read the keys the same way.
    /// </summary>
    internal static List<string> ReadKeys(EncryptionOptions options, out byte[]? current, out List<byte[]> previous)
    {
        var errors = new List<string>();
        current = null;
        previous = [];
        var hasKey = !string.IsNullOrWhiteSpace(options.DataKey);
        var hasFile = !string.IsNullOrWhiteSpace(options.DataKeyFile);
        if (hasKey && hasFile)
        {
            errors.Add("Encryption:DataKey and Encryption:DataKeyFile are both set: use one.");
        }
        else if (hasKey)
        {
            current = Decode(options.DataKey!, "Encryption:DataKey (AFP_DATA_KEY) must be", errors);
        }
        else if (hasFile)
        {
            var path = options.DataKeyFile!;
            switch (ReadKeyFile(path))
            {
                case null:
                    errors.Add($"Encryption:DataKeyFile '{path}' does not exist or cannot be read.");
                    break;
                case { Length: > MaxKeyFileChars }:
                    errors.Add($"Encryption:DataKeyFile '{path}' is too large to hold a data key; it must hold {Generate}.");
                    break;
                case var text:
                    // A Secret made from `echo` output ends in a newline.
                    text = text.EndsWith("\r\n", StringComparison.Ordinal) ? text[..^2] : text.EndsWith('\n') ? text[..^1] : text;
                    current = Decode(text, $"Encryption:DataKeyFile '{path}' must hold", errors);
                    break;
            }
        }

        for (var i = 0; i < options.PreviousDataKeys.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(options.PreviousDataKeys[i]))
            {
                errors.Add($"Encryption:PreviousDataKeys:{i} is empty.");
            }
            else if (Decode(options.PreviousDataKeys[i], $"Encryption:PreviousDataKeys:{i} must be", errors) is { } key)
            {
                previous.Add(key);
            }
        }

        return errors;
    }

    private static byte[]? Decode(string text, string requirement, List<string> errors)
    {
        // Base64 never decodes to more bytes than it has characters; whitespace is ignored.
        var buffer = new byte[text.Length];
        try
        {
            if (!Convert.TryFromBase64String(text, buffer, out var written))
            {
                errors.Add($"{requirement} {Generate}; it is not valid base64.");
                return null;
            }

            if (written != KeySize)
            {
                errors.Add($"{requirement} {Generate}; it decodes to {written} bytes.");
                return null;
            }

            return buffer[..KeySize];
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }
    }

    /// <summary>The file's text, longer than <see cref="MaxKeyFileChars"/> when the file is too large; null when it cannot be read.</summary>
    private static string? ReadKeyFile(string path)
    {
        try
        {
            using var reader = new StreamReader(path, Encoding.UTF8);
            var buffer = new char[MaxKeyFileChars + 1];
            return new string(buffer, 0, reader.ReadBlock(buffer));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException or SecurityException)
        {
            return null;
        }
    }

    // Not a fingerprint of a weak secret: the key is 256 random bits, so 64 bits of a domain-separated hash reveal nothing.
    private static string KeyIdOf(ReadOnlySpan<byte> key)
    {
        Span<byte> input = stackalloc byte[KeyIdDomain.Length + KeySize];
        KeyIdDomain.CopyTo(input);
        key.CopyTo(input[KeyIdDomain.Length..]);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, hash);
        CryptographicOperations.ZeroMemory(input);
        return Convert.ToHexStringLower(hash[..KeyIdBytes]);
    }

    private static bool TryParse(string sealedText, [NotNullWhen(true)] out string? keyId, out ReadOnlySpan<char> payload)
    {
        keyId = null;
        payload = default;
        var prefix = Version.Length + 1;
        if (sealedText is null
            || sealedText.Length < prefix + KeyIdLength + 1
            || !sealedText.StartsWith(Version + ".", StringComparison.Ordinal)
            || sealedText[prefix + KeyIdLength] != '.')
        {
            return false;
        }

        var id = sealedText.AsSpan(prefix, KeyIdLength);
        foreach (var c in id)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        keyId = id.ToString();
        payload = sealedText.AsSpan(prefix + KeyIdLength + 1);
        return true;
    }
}
