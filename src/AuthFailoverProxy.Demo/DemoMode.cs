using System.Net;
using System.Text;
using System.Text.Json;
using AuthFailoverProxy.Demo.Provider;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.KeyPool;
using AuthFailoverProxy.State;

namespace AuthFailoverProxy.Demo;

/// <summary>
/// The demo (<c>dotnet run --project src/AuthFailoverProxy.Demo</c>): the whole failover story in a few seconds, with fake keys and a simulated provider, so a newcomer sees
/// what the proxy does before giving it a real key. The proxy is the real one (<see cref="ProxyApplication"/>); only
/// the provider is simulated.
/// </summary>
internal static class DemoMode
{
    // Accepted and ignored: older instructions passed it.
    private const string DemoFlag = "--demo";
    private const string ExitFlag = "--exit";
    private const string ClientToken = "demo-token";
    private const string AdminToken = "demo-admin-token";
    private const string DefaultAgentUrls = "http://127.0.0.1:8080";
    private const string DefaultManagementUrls = "http://127.0.0.1:9090";

    // Fake, random-looking secrets in the real formats, so fingerprints and remediation read as they would in production.
    private const string PrimarySecret = "sk-ant-oat01-DEMO-f3Kq9Lx2Vb7Nw4Rt8Yp1Zc6Hm5Jd0Gs3Ua9Ee2Wo7Qi4Tn";
    private const string BackupSecret = "sk-ant-api03-DEMO-Xr5Tb8Nq2Wm6Kc9Vz1Lp4Hy7Jf3Gd0Sa5Ue8Ro2Ci6Mv9Bk";

    public static Task<int> RunAsync(string[] args) => RunAsync(args, Console.Out);

    /// <summary>Tells the story to <paramref name="output"/>; exits when done with <c>--exit</c>, under CI or without a terminal.</summary>
    /// <param name="args">The command line.</param>
    /// <param name="output">Where the story is told.</param>
    /// <param name="reader">
    /// Where the story waits for Enter before it starts, pacing its steps by <paramref name="pace"/> so they can be watched
    /// on the console; by default the terminal's, unless the demo exits when done.
    /// </param>
    /// <param name="pace">The pause between steps when the story is paced; 3 seconds by default.</param>
    internal static async Task<int> RunAsync(string[] args, TextWriter output, TextReader? reader = null, TimeSpan? pace = null)
    {
        try
        {
            return await TellAsync(args, output, reader, pace ?? TimeSpan.FromSeconds(3));
        }
        finally
        {
            // The demo's audit trail lives as long as the demo.
            try
            {
                Directory.Delete(AuditDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string AuditDirectory { get; } = Path.Combine(Path.GetTempPath(), $"afp-demo-{Environment.ProcessId}-{Guid.NewGuid():N}");

    private static async Task<int> TellAsync(string[] args, TextWriter output, TextReader? reader, TimeSpan pace)
    {
        var exitWhenDone = args.Contains(ExitFlag) || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI")) || Console.IsInputRedirected;
        string[] proxyArgs = [.. args.Where(a => a is not (DemoFlag or ExitFlag))];

        await using var upstream = await SimulatedProvider.StartAsync();
        await using var app = ProxyApplication.Build(proxyArgs, builder => Configure(builder, upstream));
        try
        {
            await app.StartAsync();
        }
        catch (Exception ex)
        {
            var code = await ProxyApplication.ReportStartFailureAsync(ex, output);
            if (ex is IOException)
            {
                await output.WriteLineAsync("Choose free ports: --urls http://127.0.0.1:8081 for agents, AFP_MANAGEMENT_URLS=http://127.0.0.1:9091 for management.");
            }

            return code;
        }

        var listeners = app.Services.GetRequiredService<ProxyListeners>();
        var agent = Reachable(listeners.AgentEndpoints);
        var management = Reachable(listeners.ManagementEndpoints);
        bool held;
        // At a terminal the story waits for the reader to open the console, and leaves it time to watch each step there.
        using (var story = new Story(output, upstream, agent, management, reader ?? (exitWhenDone ? null : Console.In), pace))
        {
            held = await story.TellAsync();
        }

        if (exitWhenDone)
        {
            await app.StopAsync();
            return held ? 0 : 1;
        }

        // A hands-on session where every call fails teaches little: 'backup' comes back, as if someone had replaced it.
        upstream.SetKeyFault(BackupSecret, KeyFault.None);
        var board = app.Services.GetRequiredService<KeyStateBoard>();
        foreach (var key in app.Services.GetRequiredService<PoolRegistry>().Pools.SelectMany(p => p.Keys).Where(k => k.Name == "backup"))
        {
            board.Heal(key, "the demo restored it so you can try the proxy by hand");
        }

        await output.WriteLineAsync($"""

            Try it by hand (Ctrl+C stops the demo). 'backup' is in service again; 'primary' stays out, so the answers
            come from 'backup' (see the x-afp-key header) and /status shows why 'primary' is out. The console,
            {management}console/, shows the same, live, and can disable, enable and add keys (admin token '{AdminToken}').

              curl -si {agent}v1/messages -H 'x-api-key: {ClientToken}' -H 'anthropic-version: 2023-06-01' \
                -H 'content-type: application/json' \
                -d '{Story.MessageBody}'
              curl -s {management}status
              curl -si {agent}v1/messages -H 'x-api-key: wrong-token' -d '{"{}"}'      # refused: unknown client token

            """);
        await app.WaitForShutdownAsync();
        return 0;
    }

    private static void Configure(WebApplicationBuilder builder, SimulatedProvider upstream)
    {
        var configuration = builder.Configuration;
        var settings = new Dictionary<string, string?>
        {
            ["Pools:anthropic:Kind"] = "anthropic",
            ["Pools:anthropic:Default"] = "true",
            // The simulated provider is reached as the real one is: HTTPS under its own name. Its CA is trusted for this pool
            // only, and its name resolves to its loopback address for this pool only.
            ["Pools:anthropic:Upstream"] = upstream.BaseAddress.ToString(),
            ["Pools:anthropic:Transport:CaBundle"] = upstream.CaBundlePath,
            ["Pools:anthropic:Transport:ConnectTo"] = upstream.Endpoint,
            ["Pools:anthropic:Keys:0:Name"] = "primary",
            ["Pools:anthropic:Keys:0:Secret"] = PrimarySecret,
            ["Pools:anthropic:Keys:1:Name"] = "backup",
            ["Pools:anthropic:Keys:1:Secret"] = BackupSecret,
            ["Clients:Tokens:0:Name"] = "demo",
            ["Clients:Tokens:0:Token"] = ClientToken,
            ["Admin:Tokens:0:Name"] = "demo-operator",
            ["Admin:Tokens:0:Token"] = AdminToken,
            // The demo's audit trail is its own: a fresh directory, so the timeline tells this run's story only.
            ["Audit:Directory"] = AuditDirectory,
            // The narration introduces the proxy; its own start-up lines would only repeat it. Warnings and errors stay:
            // they are what an operator would see during the story.
            ["Serilog:MinimumLevel:Override:Microsoft.Hosting.Lifetime"] = "Warning",
            ["Serilog:MinimumLevel:Override:" + typeof(StartupReport).FullName] = "Warning",
        };

        // This source is added last and wins over everything: the ports fall back to the demo's only when the user chose
        // none (--urls / ASPNETCORE_URLS, AFP_MANAGEMENT_URLS / Management:Urls).
        if (string.IsNullOrEmpty(configuration[WebHostDefaults.ServerUrlsKey]))
        {
            settings[WebHostDefaults.ServerUrlsKey] = DefaultAgentUrls;
        }

        settings["Management:Urls"] = configuration["Management:Urls"] is { Length: > 0 } management ? management : DefaultManagementUrls;

        // A shell set up for the quick start (AFP_KEYS…) would add real keys to the demo's pool and spoil the story.
        foreach (var quickStart in configuration.Sources.OfType<QuickStartConfigurationSource>().ToList())
        {
            configuration.Sources.Remove(quickStart);
        }

        configuration.AddInMemoryCollection(settings);
    }

    /// <summary>An address a local client can call: a wildcard listener is reached on loopback.</summary>
    private static Uri Reachable(IEnumerable<IPEndPoint> endpoints)
    {
        var endpoint = endpoints.OrderBy(e => e.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 0 : 1).First();
        var address = endpoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : endpoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
            : endpoint.Address;
        return new Uri($"http://{new IPEndPoint(address, endpoint.Port)}/");
    }

    /// <summary>The scripted requests and what is said about them.</summary>
    private sealed class Story(TextWriter output, SimulatedProvider upstream, Uri agent, Uri management, TextReader? reader, TimeSpan pace) : IDisposable
    {
        public const string MessageBody = """{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Say hello."}]}""";
        private const string StreamBody = """{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}""";
        private const int Width = 100;
        private static readonly TimeSpan StreamPace = TimeSpan.FromMilliseconds(80);

        private readonly HttpClient _agent = new() { BaseAddress = agent };
        private readonly HttpClient _management = new() { BaseAddress = management };
        private readonly TimeProvider _time = TimeProvider.System;
        private int _sent;
        private int _failedBeforeRevocation;

        public async Task<bool> TellAsync()
        {
            await IntroduceAsync();
            if (reader is not null)
            {
                await SayAsync($"Open {management}console/ in a browser to watch it happen there, paste the admin token, then press Enter to start.");
                await reader.ReadLineAsync();
            }

            await SayAsync("1. A normal day: the agent sends 3 requests through the proxy.");
            for (var i = 0; i < 3; i++)
            {
                await ReportAsync(await SendAsync());
            }

            await PauseAsync();
            await SayAsync($"""

                2. 00:00 — the provider starts rejecting OAuth tokens for this organization.
                   From now on the simulated provider answers every call made with 'primary' (an OAuth token) with
                   403 permission_error "OAuth authentication is currently not allowed for this organization."

                3. The agent carries on with 3 more requests, same URL, same token: nothing changes on its side.
                """);
            upstream.SetKeyFault(PrimarySecret, KeyFault.OAuthRejected);
            var callsBefore = upstream.RequestCount;
            var replays = 0;
            for (var i = 0; i < 3; i++)
            {
                var reply = await SendAsync();
                var note = reply.Attempts switch
                {
                    "2" => "'primary' was refused with 403; the proxy took it out of service and replayed the same bytes on 'backup'",
                    "1" when reply.Key == "backup" => "the dead key is not tried again",
                    _ => null,
                };
                replays += reply.Attempts == "2" ? 1 : 0;
                await ReportAsync(reply, note);
            }

            var calls = upstream.RequestCount - callsBefore;
            await SayAsync($"""
                   The agent sent 3 requests and got 3 answers; the provider saw {calls} calls ({replays} {(replays == 1 ? "replay" : "replays")}).
                   Not one error reached the agent. (The [ERR] line above is the proxy telling its operator.)

                4. Streaming goes through the same way: a request with "stream": true, its events passed on one by one.
                """);
            await StreamAsync();
            await PauseAsync();

            await SayAsync($"""

                5. What the operator sees: GET {management}status (and the console, {management}console/)
                """);
            await ShowStatusAsync();

            await PauseAsync();
            await SayAsync("""

                6. The worst case: 'backup' is revoked too. Now no key can serve.
                """);
            upstream.SetKeyFault(BackupSecret, KeyFault.Revoked);
            var last = await SendAsync(countFailure: false);
            await ReportAsync(last);
            await SayAsync($"   The agent gets the provider's own error format, with a message a person can act on, and x-should-retry: {last.ShouldRetry ?? "-"}");
            await SayAsync("   (so its SDK shows it at once instead of retrying for minutes):");
            await SayAsync(Wrap(ErrorMessage(last.Body) ?? last.Body, "     "));

            await PauseAsync();
            await SayAsync($"""

                7. The morning after: what happened? One request to the audit trail answers it.
                   GET {management}admin/events/timeline?since=-1h   (with the admin token)
                """);
            await ShowTimelineAsync();

            var held = _failedBeforeRevocation == 0 && last.Status == 503 && last.ShouldRetry == "false";
            var checks = upstream.Requests.Count(r => r.Method == "GET" && r.PathAndQuery == "/v1/models");
            await SayAsync($"""

                Summary
                   client requests sent:                                  {_sent}
                   client-visible failures before every key was revoked:  {_failedBeforeRevocation}
                   upstream calls the simulated provider received:        {upstream.RequestCount} ({checks} of them the proxy's own credential checks at start)
                   {(held
                    ? "The story held: one key died and the agent never noticed; when the last key died, it was told why and what to do."
                    : "The story did NOT hold: see the requests above.")}
                """);
            return held;
        }

        public void Dispose()
        {
            _agent.Dispose();
            _management.Dispose();
        }

        private Task IntroduceAsync() => SayAsync($"""

            AuthFailoverProxy demo: a key dies mid-session and the agent does not notice.
            Everything runs on this machine: a simulated Anthropic API, the real proxy in front of it, fake keys.

               simulated provider   {upstream.BaseAddress}   (HTTPS under its own name, as the real one; a throwaway
                                    CA trusted by this pool only)
               proxy, for agents    {agent}   (clients send the token '{ClientToken}', never a provider key;
                                    the name they use for the proxy never goes upstream)
               proxy, management    {management}
               operator console     {management}console/   (admin token '{AdminToken}': it shows the events live)
               pool 'anthropic', keys in priority order, each sent in its own scheme:
                 primary  {KeyFormats.Fingerprint(PrimarySecret)}  an OAuth access token (Authorization: Bearer + the OAuth beta),
                                              the kind refused in the outage
                 backup   {KeyFormats.Fingerprint(BackupSecret)}  a standard API key (x-api-key)

            """);

        /// <summary>At a terminal, leaves the reader time to see the step on the console before the next one.</summary>
        private Task PauseAsync() => reader is null ? Task.CompletedTask : Task.Delay(pace, _time);

        private async Task<Reply> SendAsync(bool countFailure = true)
        {
            using var request = NewMessageRequest(MessageBody);
            using var response = await _agent.SendAsync(request);
            var reply = new Reply(
                (int)response.StatusCode,
                response.ReasonPhrase,
                Header(response, "x-afp-key"),
                Header(response, "x-afp-attempts"),
                await response.Content.ReadAsStringAsync(),
                Header(response, "x-should-retry"));
            Count(reply.Status == 200, countFailure);
            return reply;
        }

        private async Task StreamAsync()
        {
            // Paced so the events visibly arrive one at a time rather than as one block at the end.
            upstream.BeforeStreamEvent = (_, cancellationToken) => Task.Delay(StreamPace, _time, cancellationToken);
            try
            {
                using var request = NewMessageRequest(StreamBody);
                var start = _time.GetTimestamp();
                using var response = await _agent.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                await SayAsync($"   request {_sent + 1}: {(int)response.StatusCode} {response.ReasonPhrase}  served by '{Header(response, "x-afp-key")}'  (content-type: {response.Content.Headers.ContentType})");
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var text = new StringBuilder();
                var sawStop = false;
                string? eventName = null;
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (line.StartsWith("event: ", StringComparison.Ordinal))
                    {
                        eventName = line[7..];
                        sawStop |= eventName == "message_stop";
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        var delta = eventName == "content_block_delta" ? DeltaText(line[6..]) : null;
                        text.Append(delta);
                        var elapsed = _time.GetElapsedTime(start).TotalMilliseconds;
                        await SayAsync($"     +{elapsed,5:0} ms  {eventName}{(delta is null ? string.Empty : $"  \"{delta}\"")}");
                    }
                }

                Count(response.StatusCode == HttpStatusCode.OK && sawStop, countFailure: true);
                await SayAsync($"   The agent read: \"{text}\"");
            }
            finally
            {
                upstream.BeforeStreamEvent = null;
            }
        }

        private async Task ShowTimelineAsync()
        {
            // The trail is written in the background, a moment after the events.
            await Task.Delay(TimeSpan.FromMilliseconds(300), _time);
            using var request = new HttpRequestMessage(HttpMethod.Get, "admin/events/timeline?since=-1h");
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", AdminToken);
            try
            {
                using var response = await _management.SendAsync(request);
                var timeline = await response.Content.ReadAsStringAsync();
                await SayAsync(string.Join('\n', timeline.TrimEnd().Split('\n').Select(line => "   " + line)));
            }
            catch (HttpRequestException ex)
            {
                await SayAsync($"   the timeline could not be read: {ex.Message}");
            }
        }

        private async Task ShowStatusAsync()
        {
            try
            {
                using var response = await _management.GetAsync(new Uri("status", UriKind.Relative));
                using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                var root = document.RootElement;
                await SayAsync($"   overall: {root.GetProperty("status").GetString()}");
                foreach (var pool in root.GetProperty("pools").EnumerateArray())
                {
                    var keys = pool.GetProperty("keys");
                    await SayAsync($"   pool '{pool.GetProperty("name").GetString()}': {pool.GetProperty("usableKeys").GetInt32()} of {keys.GetArrayLength()} keys usable");
                    foreach (var key in keys.EnumerateArray())
                    {
                        var lastError = key.TryGetProperty("lastError", out var error)
                            ? $"last error: {error.GetProperty("status").GetInt32()} {Text(error, "type")} \"{Text(error, "message")}\""
                            : "no error";
                        await SayAsync($"     {Text(key, "name"),-8} {Text(key, "fingerprint"),-20} {Text(key, "state"),-8} {lastError}");
                    }
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or JsonException or KeyNotFoundException or InvalidOperationException)
            {
                await SayAsync($"   /status could not be read: {ex.Message}");
            }
        }

        private async Task ReportAsync(Reply reply, string? note = null)
        {
            var served = reply.Key is null ? string.Empty : $"  served by '{reply.Key}'";
            await SayAsync($"   request {_sent}: {reply.Status} {reply.Reason}{served}  (x-afp-key: {reply.Key ?? "-"}, x-afp-attempts: {reply.Attempts ?? "-"})");
            if (note is not null)
            {
                await SayAsync($"      ↳ {note}");
            }
        }

        private void Count(bool succeeded, bool countFailure)
        {
            _sent++;
            if (!succeeded && countFailure)
            {
                _failedBeforeRevocation++;
            }
        }

        private Task SayAsync(string text) => output.WriteLineAsync(text);

        private static HttpRequestMessage NewMessageRequest(string body)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri("v1/messages", UriKind.Relative))
            {
                Content = new StringContent(body, Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", ClientToken);
            request.Headers.Add("anthropic-version", "2023-06-01");
            return request;
        }

        private static string? Header(HttpResponseMessage response, string name)
            => response.Headers.TryGetValues(name, out var values) ? string.Join(", ", values) : null;

        private static string? Text(JsonElement element, string property)
            => element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

        private static string? DeltaText(string data)
        {
            using var document = JsonDocument.Parse(data);
            return document.RootElement.TryGetProperty("delta", out var delta) ? Text(delta, "text") : null;
        }

        private static string? ErrorMessage(string body)
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                return document.RootElement.TryGetProperty("error", out var error) ? Text(error, "message") : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }

        private static string Wrap(string text, string indent)
        {
            var result = new StringBuilder();
            var line = new StringBuilder(indent);
            foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (line.Length > indent.Length && line.Length + 1 + word.Length > Width)
                {
                    result.AppendLine(line.ToString());
                    line.Clear().Append(indent);
                }

                if (line.Length > indent.Length)
                {
                    line.Append(' ');
                }

                line.Append(word);
            }

            return result.Append(line).ToString();
        }

        private sealed record Reply(int Status, string? Reason, string? Key, string? Attempts, string Body, string? ShouldRetry);
    }
}
