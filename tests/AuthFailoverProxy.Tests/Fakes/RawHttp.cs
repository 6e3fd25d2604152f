using System.Net.Sockets;
using System.Text;

namespace AuthFailoverProxy.Tests.Fakes;

/// <summary>
/// Sends one request exactly as written, bytes on a socket: what a hostile or broken client sends and HttpClient would
/// not (CONNECT, dot segments it would normalise away, an absolute-form target, a made-up method).
/// </summary>
internal static class RawHttp
{
    /// <summary>Sends <paramref name="requestHead"/> (the request line and headers, no final blank line) with <c>connection: close</c>.</summary>
    public static async Task<RawResponse> SendAsync(Uri address, string requestHead, CancellationToken cancellationToken)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port, cancellationToken);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(requestHead.TrimEnd('\r', '\n') + "\r\nconnection: close\r\n\r\n"), cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(cancellationToken);
        var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = headEnd < 0 ? text : text[..headEnd];
        var lines = head.Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
            .GroupBy(p => p[0].Trim(), StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => string.Join(", ", g.Select(p => p[1].Trim())), StringComparer.OrdinalIgnoreCase);
        return new RawResponse(status, headers, headEnd < 0 ? string.Empty : text[(headEnd + 4)..]);
    }
}

/// <summary>What came back: status, headers by name, body as text.</summary>
internal sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body);
