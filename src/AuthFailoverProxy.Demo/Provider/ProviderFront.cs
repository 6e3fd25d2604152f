using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace AuthFailoverProxy.Demo.Provider;

/// <summary>
/// The TLS side of the simulated provider, shaped like the front of a real API: a certificate per name it serves,
/// picked by the TLS server name (SNI), a default certificate when the client names none it knows (so a client that
/// checks names fails the handshake), and optionally a client certificate required from its own CA.
/// </summary>
internal sealed class ProviderFront : IDisposable
{
    private readonly Dictionary<string, X509Certificate2> _certificates;
    private readonly X509Certificate2 _default;
    private readonly bool _requireClientCertificate;

    private ProviderFront(ThrowawayCa ca, string caBundlePath, Dictionary<string, X509Certificate2> certificates, X509Certificate2 defaultCertificate, bool requireClientCertificate)
    {
        Ca = ca;
        CaBundlePath = caBundlePath;
        _certificates = certificates;
        _default = defaultCertificate;
        _requireClientCertificate = requireClientCertificate;
    }

    public ThrowawayCa Ca { get; }

    public string CaBundlePath { get; }

    public static ProviderFront Create(SimulatedProviderOptions options)
    {
        var ca = ThrowawayCa.Create();
        var certificates = new Dictionary<string, X509Certificate2>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in options.OtherSites.Prepend(options.Name))
        {
            certificates[name] = ca.IssueServer(name);
        }

        var bundle = Path.Combine(Path.GetTempPath(), $"afp-provider-ca-{Guid.NewGuid():N}.pem");
        ca.WriteCertificatePem(bundle);
        return new ProviderFront(ca, bundle, certificates, certificates[options.Name], options.RequireClientCertificate);
    }

    /// <summary>Returns whether the front serves <paramref name="name"/> at all.</summary>
    public bool Serves(string name) => _certificates.ContainsKey(name);

    public void Configure(HttpsConnectionAdapterOptions https)
    {
        https.ServerCertificateSelector = (_, name) => name is not null && _certificates.TryGetValue(name, out var certificate) ? certificate : _default;
        if (_requireClientCertificate)
        {
            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            https.ClientCertificateValidation = (certificate, _, _) => Ca.Issued(certificate);
        }
    }

    public void Dispose()
    {
        foreach (var certificate in _certificates.Values)
        {
            certificate.Dispose();
        }

        Ca.Dispose();
        try
        {
            File.Delete(CaBundlePath);
        }
        catch (IOException)
        {
        }
    }
}
