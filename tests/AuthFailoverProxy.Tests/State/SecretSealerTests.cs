using System.Buffers.Text;
using System.Security.Cryptography;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.State;
using AuthFailoverProxy.Tests.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Tests.State;

public sealed class SecretSealerTests
{
    private const string Where = "afp:anthropic:backup-2";

    [Fact]
    public void Seal_ThenOpen_ReturnsThePlaintext_AndTheCurrentKeyId()
    {
        var sealer = Sealer(NewKey());
        var secret = Secrets.AnthropicApiKey();

        var sealedText = sealer.Seal(secret, Where);

        Assert.True(sealer.TryOpen(sealedText, Where, out var plaintext, out var keyId));
        Assert.Equal(secret, plaintext);
        Assert.Equal(sealer.CurrentKeyId, keyId);
        Assert.StartsWith($"v1.{sealer.CurrentKeyId}.", sealedText, StringComparison.Ordinal);
        Assert.Matches("^[0-9a-f]{16}$", sealer.CurrentKeyId);
    }

    [Fact]
    public void Seal_TwiceTheSamePlaintext_GivesDifferentText()
    {
        var sealer = Sealer(NewKey());
        var secret = Secrets.AnthropicApiKey();

        Assert.NotEqual(sealer.Seal(secret, Where), sealer.Seal(secret, Where));
    }

    [Fact]
    public void Seal_ContainsNoPartOfThePlaintext()
    {
        var sealer = Sealer(NewKey());
        var secret = Secrets.AnthropicApiKey();

        var sealedText = sealer.Seal(secret, Where);

        for (var i = 0; i + 8 <= secret.Length; i++)
        {
            Assert.DoesNotContain(secret.Substring(i, 8), sealedText, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void EmptyPlaintext_RoundTrips()
    {
        var sealer = Sealer(NewKey());

        Assert.True(sealer.TryOpen(sealer.Seal("", Where), Where, out var plaintext, out _));
        Assert.Equal("", plaintext);
    }

    [Fact]
    public void TryOpen_WithOtherAssociatedData_Fails()
    {
        var sealer = Sealer(NewKey());
        var sealedText = sealer.Seal(Secrets.AnthropicApiKey(), Where);

        Assert.False(sealer.TryOpen(sealedText, "afp:anthropic:primary", out var plaintext, out var keyId));
        Assert.Null(plaintext);
        Assert.Equal(sealer.CurrentKeyId, keyId);
    }

    [Fact]
    public void TryOpen_AfterAnyByteIsFlipped_Fails()
    {
        var sealer = Sealer(NewKey());
        var sealedText = sealer.Seal(Secrets.AnthropicApiKey(), Where);
        var prefix = sealedText[..(sealedText.LastIndexOf('.') + 1)];
        var payload = Base64Url.DecodeFromChars(sealedText.AsSpan(prefix.Length));

        // Every byte: the nonce, the ciphertext and the tag are all covered by the tag.
        for (var i = 0; i < payload.Length; i++)
        {
            var tampered = (byte[])payload.Clone();
            tampered[i] ^= 0x01;
            Assert.False(sealer.TryOpen(prefix + Base64Url.EncodeToString(tampered), Where, out _, out _), $"byte {i} was flipped");
        }
    }

    [Fact]
    public void TryOpen_Truncated_Fails()
    {
        var sealer = Sealer(NewKey());
        var sealedText = sealer.Seal(Secrets.AnthropicApiKey(), Where);

        Assert.False(sealer.TryOpen(sealedText[..^4], Where, out _, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("v1")]
    [InlineData("v1.")]
    [InlineData("v1.{id}")]
    [InlineData("v1.{id}.")]
    [InlineData("v1.{id}.A")]
    [InlineData("v1.{id}.AAAAA")]
    [InlineData("v1.{id}.AAAA====")]
    [InlineData("v1.{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.{id}.not base64 at all!")]
    [InlineData("v1.{id}.AAAA.AAAA")]
    [InlineData("v1.0123456789ABCDEF.AAAA")]
    [InlineData("v1.0123456789abcde.AAAA")]
    [InlineData("v2.{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("sk-ant-api03-plaintext-that-was-never-sealed")]
    public void TryOpen_Malformed_ReturnsFalse_WithoutThrowing(string template)
    {
        var sealer = Sealer(NewKey());
        var sealedText = template.Replace("{id}", sealer.CurrentKeyId, StringComparison.Ordinal);

        Assert.False(sealer.TryOpen(sealedText, Where, out var plaintext, out _));
        Assert.Null(plaintext);
    }

    [Fact]
    public void TryOpen_RandomPayloads_NeverThrow()
    {
        var sealer = Sealer(NewKey());
        var prefix = $"v1.{sealer.CurrentKeyId}.";

        for (var length = 0; length < 120; length++)
        {
            for (var i = 0; i < 20; i++)
            {
                var payload = RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .%", length);
                Assert.False(sealer.TryOpen(prefix + payload, Where, out _, out var keyId));
                Assert.Equal(sealer.CurrentKeyId, keyId);
            }
        }
    }

    [Fact]
    public void TryOpen_UnknownKey_Fails_AndNamesTheKeyItWasSealedWith()
    {
        var other = Sealer(NewKey());
        var sealedText = other.Seal(Secrets.AnthropicApiKey(), Where);
        var sealer = Sealer(NewKey());

        Assert.False(sealer.TryOpen(sealedText, Where, out var plaintext, out var keyId));
        Assert.Null(plaintext);
        Assert.Equal(other.CurrentKeyId, keyId);
        Assert.NotEqual(sealer.CurrentKeyId, keyId);
    }

    [Fact]
    public void Rotation_PreviousKeyOpensOldText_NewTextUsesTheCurrentKey()
    {
        var oldKey = NewKey();
        var newKey = NewKey();
        var secret = Secrets.AnthropicApiKey();
        var before = Sealer(oldKey);
        var oldText = before.Seal(secret, Where);

        var after = new SecretSealer(Options.Create(new EncryptionOptions { DataKey = newKey, PreviousDataKeys = [oldKey] }));
        var newText = after.Seal(secret, Where);

        Assert.True(after.TryOpen(oldText, Where, out var opened, out var oldId));
        Assert.Equal(secret, opened);
        Assert.Equal(before.CurrentKeyId, oldId);
        Assert.False(after.IsCurrent(oldText));
        Assert.True(after.IsCurrent(newText));
        Assert.True(after.TryOpen(newText, Where, out _, out var newId));
        Assert.Equal(after.CurrentKeyId, newId);
        Assert.NotEqual(oldId, newId);
        // The old replica cannot read what the new one sealed: every replica needs the new key before re-sealing starts.
        Assert.False(before.TryOpen(newText, Where, out _, out _));
    }

    [Fact]
    public void KeyId_IsStableForAKey_AndDependsOnlyOnIt()
    {
        // Stored next to every sealed value: changing how it is derived would orphan them all.
        var zeros = Convert.ToBase64String(new byte[32]);

        Assert.Equal("ed1bbfbe9b6ad104", Sealer(zeros).CurrentKeyId);
        Assert.Equal(Sealer(zeros).CurrentKeyId, new SecretSealer(Options.Create(new EncryptionOptions { DataKey = zeros + "\n" })).CurrentKeyId);
    }

    [Fact]
    public void NoDataKey_CannotSeal_ButCanStillTellWhatItCannotOpen()
    {
        var sealer = new SecretSealer(Options.Create(new EncryptionOptions()));
        var sealedText = Sealer(NewKey()).Seal(Secrets.AnthropicApiKey(), Where);

        Assert.False(sealer.CanSeal);
        Assert.Null(sealer.CurrentKeyId);
        var exception = Assert.Throws<InvalidOperationException>(() => sealer.Seal("x", Where));
        Assert.Contains("Encryption:DataKey (AFP_DATA_KEY)", exception.Message, StringComparison.Ordinal);
        Assert.False(sealer.TryOpen(sealedText, Where, out _, out var keyId));
        Assert.NotNull(keyId);
        Assert.False(sealer.IsCurrent(sealedText));
    }

    [Fact]
    public void DataKeyFile_WithATrailingNewline_LikeAMountedSecret()
    {
        var key = NewKey();
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, key + "\n");
            var fromFile = new SecretSealer(Options.Create(new EncryptionOptions { DataKeyFile = path }));
            var fromValue = Sealer(key);

            Assert.True(fromFile.CanSeal);
            Assert.Equal(fromValue.CurrentKeyId, fromFile.CurrentKeyId);
            Assert.True(fromFile.TryOpen(fromValue.Seal("sk-ant-api03-x", Where), Where, out var plaintext, out _));
            Assert.Equal("sk-ant-api03-x", plaintext);
            Assert.Empty(Problems(new() { ["Encryption:DataKeyFile"] = path }));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void QuickStartDataKey_ReachesTheSealer()
    {
        var key = NewKey();
        var configuration = new ConfigurationBuilder().AddQuickStart(name => name == "AFP_DATA_KEY" ? key : null).Build();
        using var services = Services(configuration);

        var sealer = services.GetRequiredService<SecretSealer>();

        Assert.Equal(Sealer(key).CurrentKeyId, sealer.CurrentKeyId);
    }

    [Fact]
    public void Validator_NothingSet_IsFine() => Assert.Empty(Problems(new()));

    [Fact]
    public void Validator_NotBase64_NamesTheSetting_WithoutTheValue()
    {
        var value = "not-base64!" + RandomNumberGenerator.GetHexString(20);

        var problems = Problems(new() { ["Encryption:DataKey"] = value });

        var problem = Assert.Single(problems);
        Assert.StartsWith("Encryption:DataKey (AFP_DATA_KEY) must be 32 random bytes in base64 (generate one with: openssl rand -base64 32)", problem, StringComparison.Ordinal);
        Assert.EndsWith("it is not valid base64.", problem, StringComparison.Ordinal);
        Assert.DoesNotContain(value, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validator_WrongLength_SaysHowLongItIs_WithoutTheValue()
    {
        var value = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));

        var problems = Problems(new() { ["Encryption:DataKey"] = value });

        Assert.Equal(
            ["Encryption:DataKey (AFP_DATA_KEY) must be 32 random bytes in base64 (generate one with: openssl rand -base64 32); it decodes to 16 bytes."],
            problems);
        Assert.DoesNotContain(problems, p => p.Contains(value, StringComparison.Ordinal));
    }

    [Fact]
    public void Validator_KeyAndFileBothSet_AsksForOne()
    {
        var value = NewKey();

        var problems = Problems(new() { ["Encryption:DataKey"] = value, ["Encryption:DataKeyFile"] = "/run/secrets/afp-data-key" });

        Assert.Equal(["Encryption:DataKey and Encryption:DataKeyFile are both set: use one."], problems);
    }

    [Fact]
    public void Validator_MissingFile_NamesThePath()
    {
        var path = Path.Combine(Path.GetTempPath(), "afp-no-such-key-" + Guid.NewGuid().ToString("N"));

        var problems = Problems(new() { ["Encryption:DataKeyFile"] = path });

        Assert.Equal([$"Encryption:DataKeyFile '{path}' does not exist or cannot be read."], problems);
    }

    [Fact]
    public void Validator_FileWithAShortKey_NamesThePath_WithoutTheContent()
    {
        var value = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, value + "\n");

            var problem = Assert.Single(Problems(new() { ["Encryption:DataKeyFile"] = path }));

            Assert.StartsWith($"Encryption:DataKeyFile '{path}' must hold 32 random bytes in base64", problem, StringComparison.Ordinal);
            Assert.EndsWith("it decodes to 24 bytes.", problem, StringComparison.Ordinal);
            Assert.DoesNotContain(value, problem, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Validator_BadPreviousKeys_AreAllReported_ByIndex_WithoutValues()
    {
        var shortKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(31));
        var garbage = "%%" + RandomNumberGenerator.GetHexString(30);

        var problems = Problems(new()
        {
            ["Encryption:DataKey"] = NewKey(),
            ["Encryption:PreviousDataKeys:0"] = NewKey(),
            ["Encryption:PreviousDataKeys:1"] = shortKey,
            ["Encryption:PreviousDataKeys:2"] = garbage,
        });

        Assert.Equal(2, problems.Count);
        Assert.StartsWith("Encryption:PreviousDataKeys:1 must be 32 random bytes in base64", problems[0], StringComparison.Ordinal);
        Assert.EndsWith("it decodes to 31 bytes.", problems[0], StringComparison.Ordinal);
        Assert.StartsWith("Encryption:PreviousDataKeys:2 must be 32 random bytes in base64", problems[1], StringComparison.Ordinal);
        Assert.DoesNotContain(problems, p => p.Contains(shortKey, StringComparison.Ordinal) || p.Contains(garbage, StringComparison.Ordinal));
    }

    [Fact]
    public void Validator_CollectsEveryProblem()
    {
        var problems = Problems(new() { ["Encryption:DataKey"] = "c2hvcnQ=", ["Encryption:PreviousDataKeys:0"] = "c2hvcnQ=" });

        Assert.Equal(2, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("Encryption:DataKey (AFP_DATA_KEY)", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Encryption:PreviousDataKeys:0", StringComparison.Ordinal));
    }

    private static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private static SecretSealer Sealer(string dataKey) => new(Options.Create(new EncryptionOptions { DataKey = dataKey }));

    private static ServiceProvider Services(IConfiguration configuration)
        => new ServiceCollection().AddSingleton(configuration).AddSecretSealing().BuildServiceProvider();

    /// <summary>What the start-up validation (ValidateOnStart) reports for these settings, as the host would print it.</summary>
    private static List<string> Problems(Dictionary<string, string?> settings)
    {
        using var services = Services(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        var validator = services.GetRequiredService<IStartupValidator>();
        try
        {
            validator.Validate();
            return [];
        }
        catch (Exception ex)
        {
            var problems = ProxyApplication.ConfigurationProblems(ex);
            Assert.NotEmpty(problems);
            return problems;
        }
    }
}
