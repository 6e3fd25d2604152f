using System.Text;
using AuthFailoverProxy.Alerts;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>The Standard Webhooks signature, checked against the specification's own test vector.</summary>
public sealed class WebhookSignatureTests
{
    [Fact]
    public void Sign_StandardWebhooksTestVector_MatchesTheSpecification()
    {
        Assert.True(WebhookSignature.TryParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", out var key));

        var signature = WebhookSignature.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, Encoding.UTF8.GetBytes("""{"test": 2432232314}"""));

        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", signature);
    }

    [Theory]
    [InlineData("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    [InlineData("whsec_")]
    [InlineData("whsec_not base64!")]
    [InlineData("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    public void TryParseSecret_NotAWhsecSecret_IsRefused(string secret) => Assert.False(WebhookSignature.TryParseSecret(secret, out _));
}
