using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SharedLog.Broker;
using SharedLog.Broker.Handlers;
using SharedLog.Broker.Network;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>A connection when the broker starts stopping: what it accepted is answered before it closes.</summary>
public sealed class ConnectionShutdownTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ARequestBeingHandledWhenTheBrokerStartsStoppingIsStillAnswered()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var slow = new HeldMetadataHandler();
        var registry = new HandlerRegistry([slow]);
        var lifetime = new StoppingLifetime();
        var connections = new KafkaConnectionHandler(
            registry,
            new ApiVersionsHandler(() => registry),
            broker.Host.Services.GetRequiredService<SharedLog.Broker.Http.BrokerMetrics>(),
            broker.Host.Services.GetRequiredService<IOptions<BrokerOptions>>(),
            lifetime,
            NullLogger<KafkaConnectionHandler>.Instance);
        var toBroker = new Pipe();
        var toClient = new Pipe();
        var connection = new DefaultConnectionContext("shutdown-test", new Duplex(toBroker.Reader, toClient.Writer), new Duplex(toClient.Reader, toBroker.Writer));
        Task serving = connections.OnConnectedAsync(connection);

        var request = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(request, new MetadataRequest { Topics = [] }, 12, 7, "shutdown-test");
        await toBroker.Writer.WriteAsync(request.WrittenMemory);

        // The broker starts stopping while the request is being handled; the handler then finishes its work.
        await slow.Started.Task.WaitAsync(Timeout);
        lifetime.Stop();
        slow.Release.SetResult();
        await serving.WaitAsync(Timeout);
        await toClient.Writer.CompleteAsync();

        ReadResult answered = await toClient.Reader.ReadAsync().AsTask().WaitAsync(Timeout);
        byte[] bytes = answered.Buffer.ToArray();
        Assert.True(bytes.Length >= 8, "the connection closed without the response to the request it had taken");
        Assert.Equal(bytes.Length - 4, BinaryPrimitives.ReadInt32BigEndian(bytes));
        Assert.Equal(7, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4)));
    }

    /// <summary>Metadata that answers only once released, whatever its cancellation token says (as work past its point of no return).</summary>
    private sealed class HeldMetadataHandler : IApiHandler
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ApiKey Api => ApiKey.Metadata;

        public short MinVersion => 0;

        public short MaxVersion => 12;

        public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
        {
            Started.SetResult();
            await Release.Task;
            return new MetadataResponse();
        }
    }

    private sealed class StoppingLifetime : IHostApplicationLifetime
    {
        private readonly CancellationTokenSource _stopping = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => _stopping.Token;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void Stop() => _stopping.Cancel();

        public void StopApplication() => Stop();
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }
}
