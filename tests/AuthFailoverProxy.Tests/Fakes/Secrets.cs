using System.Security.Cryptography;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>Fake credentials shaped like the real ones, unique per test so a leak can be searched for.</summary>
internal static class Secrets
{
    public static string AnthropicApiKey() => "sk-ant-api03-" + Random(60) + "AA";

    public static string AnthropicOAuthToken() => "sk-ant-oat01-" + Random(60) + "AA";

    public static string OpenAIKey() => "sk-proj-" + Random(48);

    public static string ClientToken() => "afp-client-" + Random(32);

    private static string Random(int length) => RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", length);
}
