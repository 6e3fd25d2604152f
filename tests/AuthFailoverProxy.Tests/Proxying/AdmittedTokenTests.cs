using AuthFailoverProxy.Proxying;

namespace AuthFailoverProxy.Tests.Proxying;

/// <summary>The token a keep-alive connection remembers: only the very same token is it.</summary>
public sealed class AdmittedTokenTests
{
    [Fact]
    public void OnlyTheSameToken_IsTheRememberedOne()
    {
        var admitted = ClientAuthenticator.AdmittedToken.For("afp-client-abcdef", "agent")!;

        Assert.Equal("agent", admitted.Name);
        Assert.True(admitted.Is("afp-client-abcdef"));
        Assert.False(admitted.Is("afp-client-abcdeg"));
        Assert.False(admitted.Is("afp-client-abcde"));
        Assert.False(admitted.Is("afp-client-abcdef\0"));
        Assert.False(admitted.Is("afp-client-abcdefx"));
        Assert.False(admitted.Is(string.Empty));
        Assert.False(admitted.Is(new string('a', ClientAuthenticator.AdmittedToken.MaxBytes + 1)));
    }

    [Fact]
    public void NonAsciiTokens_CompareAsTheirBytes_AndTooLongOnesAreNotRemembered()
    {
        var admitted = ClientAuthenticator.AdmittedToken.For("tök€n", "agent")!;
        Assert.True(admitted.Is("tök€n"));
        Assert.False(admitted.Is("tok€n"));

        // 171 three-byte characters: 513 bytes, one over what a connection remembers.
        Assert.Null(ClientAuthenticator.AdmittedToken.For(new string('€', 171), "agent"));
        Assert.NotNull(ClientAuthenticator.AdmittedToken.For(new string('€', 170), "agent"));
        Assert.False(ClientAuthenticator.AdmittedToken.For(new string('€', 170), "agent")!.Is(new string('€', 171)));
    }
}
