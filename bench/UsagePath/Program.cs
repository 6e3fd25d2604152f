using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using AuthFailoverProxy.Hosting;
using AuthFailoverProxy.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

// One answer's usage, read and counted as the proxy does it: the answer's content wrapped by the tap, copied the way
// YARP copies it (a zero-byte read, then reads into a pooled buffer until the end), read on the side, and counted
// (model labels, the GenAI token histogram with the metrics SDK listening, the ledger, the client's token budget).
// Against the same copy of the same answer unread. On one thread it shows the work itself; on several at once, what
// cores writing the same counters add. What a cache shared with the rest of a request adds on top is what the
// whole-proxy runs of bench/run.sh measure.
//
//   dotnet run -c Release --project bench/UsagePath [-- answers-per-round [rounds [threads]]]
var answers = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200_000;
var rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 7;
var threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
if (answers is < 1000 or > 10_000_000 || rounds is < 1 or > 100 || threads is < 1 or > 64)
{
    Console.Error.WriteLine("usage: UsagePath [answers-per-round (1000-10000000) [rounds (1-100) [threads (1-64)]]]");
    return 64;
}

// The bench's configuration (bench/run.sh): one pool, two keys, one client with a budget of every kind. The host is
// built, not started: nothing listens and nothing is called. Its audit file goes to a directory removed at the end.
var audit = Directory.CreateTempSubdirectory("afp-usage-path-");
Environment.SetEnvironmentVariable("Audit__Directory", audit.FullName);
Environment.SetEnvironmentVariable("AFP_UPSTREAM", "http://127.0.0.1:9");
Environment.SetEnvironmentVariable("AFP_KEYS", "primary=sk-ant-api03-usagePathPrimary0000000000000000000001,backup=sk-ant-api03-usagePathBackup00000000000000000000002");
Environment.SetEnvironmentVariable("AFP_CLIENT_TOKENS", "afp-usage-path-client-token-0000000000000007");
Environment.SetEnvironmentVariable("Clients__Tokens__0__Budget__RequestsPerMinute", "1000000000");
Environment.SetEnvironmentVariable("Clients__Tokens__0__Budget__TokensPerMinute", "1000000000000");
Environment.SetEnvironmentVariable("Clients__Tokens__0__Budget__TokensPerDay", "1000000000000000");
Environment.SetEnvironmentVariable("Serilog__MinimumLevel__Default", "Warning");
try
{
    await using var app = ProxyApplication.Build([]);
    await new UsagePath.Bench(app, answers, threads).RunAsync(rounds);
    return 0;
}
finally
{
    audit.Delete(recursive: true);
}

namespace UsagePath
{
    internal sealed class Bench(WebApplication app, int answers, int threads)
    {
        // The bench upstream's answer (bench/nginx.conf.template).
        private static readonly byte[] Answer = """{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello from the bench upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":8}}"""u8.ToArray();
        private static readonly MediaTypeHeaderValue Json = new("application/json");
        private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(3);

        private readonly RequestTelemetry _telemetry = app.Services.GetRequiredService<RequestTelemetry>();
        private readonly ModelLabels _models = app.Services.GetRequiredService<ModelLabels>();
        private readonly UsageWhere _where = new("anthropic", "primary", "token-1", "claude-sonnet-4-5", "anthropic", "chat");

        public async Task RunAsync(int rounds)
        {
            // The metrics SDK listens, as in the running proxy.
            _ = app.Services.GetRequiredService<MeterProvider>();

            // Until tiered compilation has settled: a count of answers alone leaves a short run on unoptimised code.
            var warming = Stopwatch.StartNew();
            while (warming.Elapsed < WarmUp)
            {
                await TimeAsync(read: false);
                await TimeAsync(read: true);
            }

            Console.WriteLine($"{answers} answers of {Answer.Length} bytes per round{(threads > 1 ? $" on each of {threads} threads at once" : string.Empty)}, {rounds} rounds after {WarmUp.TotalSeconds:F0} s of warm-up; CPU ns (the whole process's) and bytes allocated per answer");
            Console.WriteLine("round\tunread ns\tread ns\tusage ns\tunread B\tread B\tusage B");
            var usageNs = new List<double>();
            var usageBytes = new List<double>();
            for (var round = 1; round <= rounds; round++)
            {
                var (unreadNs, unreadB) = await TimeAsync(read: false);
                var (readNs, readB) = await TimeAsync(read: true);
                usageNs.Add(readNs - unreadNs);
                usageBytes.Add(readB - unreadB);
                Console.WriteLine($"{round}\t{unreadNs:F0}\t{readNs:F0}\t{readNs - unreadNs:F0}\t{unreadB:F0}\t{readB:F0}\t{readB - unreadB:F0}");
            }

            usageNs.Sort();
            usageBytes.Sort();
            Console.WriteLine($"median\t\t\t{usageNs[usageNs.Count / 2]:F0}\t\t\t{usageBytes[usageBytes.Count / 2]:F0}");
        }

        /// <summary>Times <paramref name="read"/> on every thread at once: CPU ns and bytes allocated per answer.</summary>
        private async Task<(double Ns, double Bytes)> TimeAsync(bool read)
        {
            // The process's CPU time, not the loop's wall time: work done on other threads (the garbage collector's, the
            // metrics SDK's) counts too. The host is built, not started, so little else runs.
            using var process = Process.GetCurrentProcess();
            var cpu = process.TotalProcessorTime;
            var allocated = GC.GetTotalAllocatedBytes(precise: true);
            await Task.WhenAll(Enumerable.Range(0, threads).Select(_ => Task.Run(() => TimeOneAsync(read))));
            process.Refresh();
            var total = (double)answers * threads;
            return ((process.TotalProcessorTime - cpu).TotalNanoseconds / total, (GC.GetTotalAllocatedBytes(precise: true) - allocated) / total);
        }

        private async Task TimeOneAsync(bool read)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
            for (var i = 0; i < answers; i++)
            {
                HttpContent content = new ByteArrayContent(Answer);
                content.Headers.ContentType = Json;
                if (read && UsageContent.Readable(content, out var encoding) && UsageReader.For(content.Headers.ContentType?.MediaType) is { } reader)
                {
                    // As RequestTelemetry.OpenUsage opens it for an attempt.
                    reader.Labels = _models;
                    reader.Where = _where;
                    content = new UsageContent(content, encoding, reader, _telemetry.UsagePassed);
                }

                using (content)
                {
                    await using var stream = await content.ReadAsStreamAsync();
                    while (true)
                    {
                        _ = await stream.ReadAsync(Memory<byte>.Empty);
                        if (await stream.ReadAsync(buffer) == 0)
                        {
                            break;
                        }
                    }
                }
            }

            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
