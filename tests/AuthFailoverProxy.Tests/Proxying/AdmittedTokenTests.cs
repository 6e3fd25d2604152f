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
        Assert.False(admitted.Is("bfp-client-abcdef"));
        Assert.False(admitted.Is("afp-client_abcdef"));
        Assert.False(admitted.Is("afp-client-abcde"));
        Assert.False(admitted.Is("afp-client-abcdef\0"));
        Assert.False(admitted.Is("afp-client-abcdefx"));
        Assert.False(admitted.Is(string.Empty));
        Assert.False(admitted.Is(new string('a', ClientAuthenticator.AdmittedToken.MaxChars + 1)));
    }

    [Fact]
    public void NonAsciiTokens_CompareAsTheirCharacters_AndTooLongOnesAreNotRemembered()
    {
        var admitted = ClientAuthenticator.AdmittedToken.For("tök€n", "agent")!;
        Assert.True(admitted.Is("tök€n"));
        Assert.False(admitted.Is("tok€n"));

        // Two lone surrogates encode to the same replacement bytes in UTF-8; as characters they stay apart.
        var lone = ClientAuthenticator.AdmittedToken.For("t\uD800k", "agent")!;
        Assert.True(lone.Is("t\uD800k"));
        Assert.False(lone.Is("t\uDC00k"));

        // One character over what a connection remembers.
        var max = ClientAuthenticator.AdmittedToken.MaxChars;
        Assert.Null(ClientAuthenticator.AdmittedToken.For(new string('€', max + 1), "agent"));
        Assert.NotNull(ClientAuthenticator.AdmittedToken.For(new string('€', max), "agent"));
        Assert.False(ClientAuthenticator.AdmittedToken.For(new string('€', max), "agent")!.Is(new string('€', max + 1)));
        Assert.False(ClientAuthenticator.AdmittedToken.For(new string('€', max), "agent")!.Is(new string('€', max - 1)));
    }
}
