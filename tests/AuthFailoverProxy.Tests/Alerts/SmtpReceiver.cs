using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using MimeKit;
using SmtpServer;
using SmtpServer.Authentication;
using SmtpServer.Net;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace AuthFailoverProxy.Tests.Alerts;

/// <summary>
/// A real SMTP server (the SmtpServer library) on 127.0.0.1 and a port the OS picks, without TLS, accepting one
/// user name and password: the mail it receives, parsed, and the logins it saw.
/// </summary>
internal sealed class SmtpReceiver : IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly Store _store = new();
    private readonly Authenticator _authenticator;
    private Task _running = Task.CompletedTask;

    private SmtpReceiver(string username, string password) => _authenticator = new Authenticator(username, password);

    public int Port { get; private set; }

    public IReadOnlyList<MimeMessage> Messages => [.. _store.Messages];

    /// <summary>Gets the user names of the logins the server accepted.</summary>
    public IReadOnlyList<string> Logins => [.. _authenticator.Accepted];

    /// <summary>Gets how many SMTP sessions had a login refused (a client may try several mechanisms in one session).</summary>
    public int RefusedSessions => _authenticator.Refused.Distinct().Count();

    public static async Task<SmtpReceiver> StartAsync(string username, string password)
    {
        var receiver = new SmtpReceiver(username, password);
        var options = new SmtpServerOptionsBuilder()
            .ServerName("localhost")
            .Endpoint(endpoint => endpoint.Endpoint(new IPEndPoint(IPAddress.Loopback, 0)).AllowUnsecureAuthentication(true).AuthenticationRequired(true))
            .Build();
        var listeners = new EndpointListenerFactory();
        var started = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        listeners.EndpointStarted += (_, e) => started.TrySetResult(((IPEndPoint)e.LocalEndPoint).Port);
        var services = new SmtpServer.ComponentModel.ServiceProvider();
        services.Add(receiver._store);
        services.Add(receiver._authenticator);
        services.Add(listeners);
        receiver._running = new SmtpServer.SmtpServer(options, services).StartAsync(receiver._stopping.Token);
        receiver.Port = await started.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        try
        {
            await _running.WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (OperationCanceledException)
        {
        }

        _stopping.Dispose();
    }

    private sealed class Store : MessageStore
    {
        public ConcurrentQueue<MimeMessage> Messages { get; } = new();

        public override async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, CancellationToken cancellationToken)
        {
            using var stream = new MemoryStream(buffer.ToArray());
            Messages.Enqueue(await MimeMessage.LoadAsync(stream, cancellationToken));
            return SmtpResponse.Ok;
        }
    }

    private sealed class Authenticator(string expectedUser, string expectedPassword) : UserAuthenticator
    {
        public ConcurrentQueue<string> Accepted { get; } = new();

        public ConcurrentQueue<Guid> Refused { get; } = new();

        public override Task<bool> AuthenticateAsync(ISessionContext context, string user, string password, CancellationToken cancellationToken)
        {
            var ok = user == expectedUser && password == expectedPassword;
            if (ok)
            {
                Accepted.Enqueue(user);
            }
            else
            {
                Refused.Enqueue(context.SessionId);
            }

            return Task.FromResult(ok);
        }
    }
}
