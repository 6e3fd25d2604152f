using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AuthFailoverProxy.Demo.Provider;

/// <summary>
/// A certificate authority made at start and thrown away at the end, so the simulated provider can speak HTTPS under
/// its own name the way the real one does, and the proxy can be told to trust it (<c>Transport:CaBundle</c>) as it would
/// trust a private gateway's CA. Its certificates live a day; nothing is written to a system trust store.
/// </summary>
internal sealed class ThrowawayCa : IDisposable
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromDays(1);

    private ThrowawayCa(X509Certificate2 certificate) => Certificate = certificate;

    /// <summary>Gets the CA certificate, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    public static ThrowawayCa Create(string commonName = "AuthFailoverProxy simulated provider CA (throwaway)")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        // Certificates are checked against the wall clock, whatever clock a test drives.
        var now = TimeProvider.System.GetUtcNow();
        return new ThrowawayCa(request.CreateSelfSigned(now.AddMinutes(-5), now + Lifetime));
    }

    /// <summary>Issues a server certificate for <paramref name="dnsNames"/> (the first is its subject).</summary>
    public X509Certificate2 IssueServer(params string[] dnsNames)
    {
        ArgumentOutOfRangeException.ThrowIfZero(dnsNames.Length);
        var names = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            names.AddDnsName(name);
        }

        return Issue($"CN={dnsNames[0]}", names.Build(), "1.3.6.1.5.5.7.3.1");
    }

    /// <summary>Issues a client certificate (for mutual TLS to an internal gateway).</summary>
    public X509Certificate2 IssueClient(string commonName) => Issue($"CN={commonName}", extension: null, "1.3.6.1.5.5.7.3.2");

    /// <summary>Writes the CA certificate (never its key) as PEM, the form a CA bundle takes.</summary>
    public void WriteCertificatePem(string path) => File.WriteAllText(path, Certificate.ExportCertificatePem() + "\n");

    /// <summary>Returns <paramref name="certificate"/> and its private key as PEM, as a mounted Secret would hold them.</summary>
    public static (string Certificate, string Key) ToPem(X509Certificate2 certificate)
    {
        using var key = certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the certificate has no EC private key");
        return (certificate.ExportCertificatePem() + "\n", key.ExportPkcs8PrivateKeyPem() + "\n");
    }

    /// <summary>Returns whether <paramref name="certificate"/> was issued by this CA.</summary>
    public bool Issued(X509Certificate2 certificate)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.Add(Certificate);
        return chain.Build(certificate);
    }

    public void Dispose() => Certificate.Dispose();

    private X509Certificate2 Issue(string subject, X509Extension? extension, string usage)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(usage)], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (extension is not null)
        {
            request.CertificateExtensions.Add(extension);
        }

        // Certificates are checked against the wall clock, whatever clock a test drives; none outlives its CA.
        var now = TimeProvider.System.GetUtcNow();
        var notAfter = new DateTimeOffset(Certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero).AddMinutes(-1);
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var issued = request.Create(Certificate, now.AddMinutes(-5), notAfter, serial);
        using var withKey = issued.CopyWithPrivateKey(key);
        // A round trip through PKCS#12 gives the key a form TLS uses on every platform.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), password: null);
    }
}
