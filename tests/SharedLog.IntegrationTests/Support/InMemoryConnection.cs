using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SharedLog.Broker;
using SharedLog.Broker.Handlers;
using SharedLog.Broker.Network;

namespace SharedLog.IntegrationTests;

/// <summary>A broker connection served over in-memory pipes, with test handlers as its only APIs.</summary>
internal static class InMemoryConnection
{
    /// <summary>Serves one connection with <paramref name="handler"/> as the only API, on the broker's metrics and options.</summary>
    public static (Task Serving, Pipe ToBroker, Pipe ToClient) Connect(BrokerFixture broker, IApiHandler handler, IHostApplicationLifetime lifetime)
    {
        var registry = new HandlerRegistry([handler]);
        var connections = new KafkaConnectionHandler(
            registry,
            new ApiVersionsHandler(() => registry),
            broker.Host.Services.GetRequiredService<SharedLog.Broker.Http.BrokerMetrics>(),
            broker.Host.Services.GetRequiredService<IOptions<BrokerOptions>>(),
            lifetime,
            NullLogger<KafkaConnectionHandler>.Instance);
        var toBroker = new Pipe();
        var toClient = new Pipe();
        var connection = new DefaultConnectionContext("in-memory-connection", new Duplex(toBroker.Reader, toClient.Writer), new Duplex(toClient.Reader, toBroker.Writer));
        return (connections.OnConnectedAsync(connection), toBroker, toClient);
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }
}

/// <summary>An application lifetime a test stops by hand.</summary>
internal sealed class StoppingLifetime : IHostApplicationLifetime
{
    private readonly CancellationTokenSource _stopping = new();

    public CancellationToken ApplicationStarted => CancellationToken.None;

    public CancellationToken ApplicationStopping => _stopping.Token;

    public CancellationToken ApplicationStopped => CancellationToken.None;

    public void Stop() => _stopping.Cancel();

    public void StopApplication() => Stop();
}
