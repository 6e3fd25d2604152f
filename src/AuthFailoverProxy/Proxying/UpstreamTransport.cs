using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AuthFailoverProxy.Telemetry;

namespace AuthFailoverProxy.Proxying;

/// <summary>
/// A pool's connection to its upstream, built from <see cref="UpstreamTransportOptions"/>: one connection pool (as YARP
/// recommends for a proxy: no cookies, no redirects, no decompression), the extra CA certificates it trusts, the client
/// certificate it presents, the HTTP version it asks for and where it connects. Every call to the upstream goes through
/// it (forwarded and replayed requests, key checks, circuit checks), so all of them are made the same way.
/// </summary>
internal sealed class UpstreamTransport
{
    private UpstreamTransport(X509Certificate2Collection? extraRoots, X509Certificate2? clientCertificate, Version version, HttpVersionPolicy versionPolicy, DnsEndPoint? connectTo)
    {
        ExtraRoots = extraRoots;
        ClientCertificate = clientCertificate;
        Version = version;
        VersionPolicy = versionPolicy;
        ConnectTo = connectTo;
    }

    /// <summary>Gets the HTTP version every upstream request asks for.</summary>
    public Version Version { get; }

    /// <summary>Gets whether the version may be negotiated down (<c>auto</c>) or must be exactly <see cref="Version"/>.</summary>
    public HttpVersionPolicy VersionPolicy { get; }

    private X509Certificate2Collection? ExtraRoots { get; }

    private X509Certificate2? ClientCertificate { get; }

    private DnsEndPoint? ConnectTo { get; }

    /// <summary>
    /// Reads and checks the transport settings of <paramref name="pool"/>; every problem goes to <paramref name="errors"/>
    /// naming the key to fix (never a file's content or a password). Returns null when there are problems.
    /// </summary>
    public static UpstreamTransport? Load(string pool, UpstreamTransportOptions? options, Uri? upstream, List<string> errors)
    {
        options ??= new UpstreamTransportOptions();
        var setting = $"Pools:{pool}:Transport";
        var before = errors.Count;
        if (upstream is not null && upstream.Scheme != Uri.UriSchemeHttps && (options.CaBundle is not null || options.ClientCertificate is not null))
        {
            errors.Add($"{setting}:CaBundle and :ClientCertificate apply to an https:// upstream only; Pools:{pool}:Upstream is {upstream.Scheme}://.");
        }

        var extraRoots = options.CaBundle is { } bundle ? LoadCaBundle($"{setting}:CaBundle", bundle, errors) : null;
        var clientCertificate = options.ClientCertificate is { } certificate ? LoadClientCertificate(setting, certificate, options, errors) : null;
        if (options.ClientCertificate is null && (options.ClientCertificateKey is not null || options.ClientCertificatePassword is not null))
        {
            errors.Add($"{setting}:ClientCertificateKey or :ClientCertificatePassword is set without {setting}:ClientCertificate.");
        }

        var (version, policy) = (options.HttpVersion?.Trim().ToLowerInvariant()) switch
        {
            null or "" or "auto" => (HttpVersion.Version20, HttpVersionPolicy.RequestVersionOrLower),
            "1.1" or "http/1.1" => (HttpVersion.Version11, HttpVersionPolicy.RequestVersionExact),
            "2" or "2.0" or "http/2" => (HttpVersion.Version20, HttpVersionPolicy.RequestVersionExact),
            _ => (HttpVersion.Unknown, HttpVersionPolicy.RequestVersionOrLower),
        };
        if (version == HttpVersion.Unknown)
        {
            errors.Add($"{setting}:HttpVersion '{options.HttpVersion}' must be 'auto', '1.1' or '2'.");
        }

        DnsEndPoint? connectTo = null;
        if (options.ConnectTo is { } address)
        {
            connectTo = ParseHostPort(address);
            if (connectTo is null)
            {
                errors.Add($"{setting}:ConnectTo '{address}' must be host:port, such as 10.0.0.5:443 or gateway.internal:8443.");
            }
        }

        return errors.Count == before ? new UpstreamTransport(extraRoots, clientCertificate, version, policy, connectTo) : null;
    }

    /// <summary>
    /// Creates the pool's connection pool. Its <c>http.client.*</c> metrics go to a meter of the host's
    /// <paramref name="meterFactory"/>, so that each host exports its own calls (see TelemetryServiceCollectionExtensions).
    /// Only a proxy that <paramref name="traces"/> sends its <c>traceparent</c> upstream; one that does not has no
    /// propagator, and so no client span either.
    /// </summary>
    public HttpMessageInvoker CreateClient(TimeSpan connectTimeout, System.Diagnostics.Metrics.IMeterFactory? meterFactory, bool traces)
    {
        var handler = new SocketsHttpHandler
        {
            // Egress proxies (HTTPS_PROXY) are honoured unless the pool names its own address; without one there is no cost.
            UseProxy = ConnectTo is null,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = connectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ActivityHeadersPropagator = traces ? UpstreamTracePropagator.Instance : null,
            MeterFactory = meterFactory,
        };

        if (ExtraRoots is not null)
        {
            var roots = ExtraRoots;
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) => IsTrusted(certificate, chain, errors, roots);
        }

        if (ClientCertificate is not null)
        {
            handler.SslOptions.ClientCertificates = [ClientCertificate];
        }

        if (ConnectTo is { } endpoint)
        {
            handler.ConnectCallback = (_, cancellationToken) => ConnectAsync(endpoint, cancellationToken);
        }

        return new HttpMessageInvoker(handler, disposeHandler: true);
    }

    /// <summary>
    /// Trusts what the system trusts, and also a chain that ends at one of <paramref name="roots"/>. A name mismatch is
    /// never forgiven: the certificate must be the upstream's own.
    /// </summary>
    private static bool IsTrusted(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (errors != SslPolicyErrors.RemoteCertificateChainErrors || certificate is not X509Certificate2 leaf)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        if (presented is not null)
        {
            // The intermediates the server sent.
            chain.ChainPolicy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return chain.Build(leaf);
    }

    private static async ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static X509Certificate2Collection? LoadCaBundle(string setting, string path, List<string> errors)
    {
        if (!Readable(setting, path, errors))
        {
            return null;
        }

        var roots = new X509Certificate2Collection();
        try
        {
            roots.ImportFromPemFile(path);
        }
        catch (CryptographicException ex)
        {
            errors.Add($"{setting}: '{path}' is not a PEM certificate bundle ({ex.Message.TrimEnd('.')}).");
            return null;
        }

        if (roots.Count == 0)
        {
            errors.Add($"{setting}: '{path}' holds no certificate (expected PEM blocks '-----BEGIN CERTIFICATE-----').");
            return null;
        }

        return roots;
    }

    private static X509Certificate2? LoadClientCertificate(string setting, string path, UpstreamTransportOptions options, List<string> errors)
    {
        if (!Readable($"{setting}:ClientCertificate", path, errors)
            || (options.ClientCertificateKey is { } keyPath && !Readable($"{setting}:ClientCertificateKey", keyPath, errors)))
        {
            return null;
        }

        X509Certificate2 certificate;
        var isPem = false;
        try
        {
            isPem = File.ReadAllText(path).Contains("-----BEGIN ", StringComparison.Ordinal);
            certificate = !isPem
                ? X509CertificateLoader.LoadPkcs12FromFile(path, options.ClientCertificatePassword)
                : options.ClientCertificatePassword is { } password
                    ? X509Certificate2.CreateFromEncryptedPemFile(path, password, options.ClientCertificateKey)
                    : X509Certificate2.CreateFromPemFile(path, options.ClientCertificateKey);
        }
        catch (CryptographicException ex)
        {
            errors.Add($"{setting}:ClientCertificate: '{path}' could not be opened as a certificate with its private key ({ex.Message.TrimEnd('.')}); " +
                $"a PEM certificate needs its key in the same file or in {setting}:ClientCertificateKey, an encrypted key or a PKCS#12 file needs {setting}:ClientCertificatePassword.");
            return null;
        }

        if (!certificate.HasPrivateKey)
        {
            errors.Add($"{setting}:ClientCertificate: '{path}' has no private key: add it to the file or set {setting}:ClientCertificateKey.");
            certificate.Dispose();
            return null;
        }

        if (!isPem)
        {
            return certificate;
        }

        // A key read from PEM is ephemeral; a round trip through PKCS#12 gives TLS a key it can use on every platform.
        using (certificate)
        {
            return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), password: null);
        }
    }

    private static bool Readable(string setting, string path, List<string> errors)
    {
        if (!File.Exists(path))
        {
            errors.Add($"{setting}: the file '{path}' does not exist.");
            return false;
        }

        try
        {
            using var stream = File.OpenRead(path);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            errors.Add($"{setting}: the file '{path}' cannot be read ({ex.Message.TrimEnd('.')}).");
            return false;
        }
    }

    private static DnsEndPoint? ParseHostPort(string value)
    {
        var text = value.Trim();
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return null;
        }

        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        Debug.Assert(host.Length > 0);
        return Uri.CheckHostName(host) == UriHostNameType.Unknown ? null : new DnsEndPoint(host, port);
    }
}
