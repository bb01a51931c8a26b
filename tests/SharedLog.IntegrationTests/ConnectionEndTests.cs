using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using SharedLog.Broker.Handlers;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>How a connection ends: at the broker's shutdown, and on a handler's failure.</summary>
[Collection(BrokerMetricsCollection.Name)]
public sealed class ConnectionEndTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ARequestBeingHandledWhenTheBrokerStartsStoppingIsStillAnswered()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var slow = new HeldMetadataHandler();
        var lifetime = new StoppingLifetime();
        (Task serving, Pipe toBroker, Pipe toClient) = InMemoryConnection.Connect(broker, slow, lifetime);
        await SendMetadataAsync(toBroker, correlationId: 7);

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

    [Fact]
    public async Task AHandlerFailureAndAFrameShorterThanAHeaderCloseTheConnectionAndAreCounted()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();

        // The instruments are the process's (every broker of the test run counts into them), so the test counts increases.
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{broker.Host.HttpPort}") };
        string before = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        (Task failing, Pipe toFailing, _) = InMemoryConnection.Connect(broker, new FailingMetadataHandler(), new StoppingLifetime());
        await SendMetadataAsync(toFailing, correlationId: 1);
        await failing.WaitAsync(Timeout);

        (Task shortFrame, Pipe toShort, _) = InMemoryConnection.Connect(broker, new FailingMetadataHandler(), new StoppingLifetime());
        await toShort.Writer.WriteAsync(new byte[] { 0, 0, 0, 2, 0, 3 });
        await shortFrame.WaitAsync(Timeout);

        string? counted = await MetricsScrape.UntilAsync(http, text =>
            Rose(before, text, "sharedlog_connections_closed_total{", "reason=\"handler_failed\"") && Rose(before, text, "sharedlog_connections_closed_total{", "reason=\"malformed_request\"")
            && Rose(before, text, "sharedlog_requests_total{", "api=\"Metadata\"") ? text : null);
        Assert.NotNull(counted);

        static bool Rose(string before, string after, string metric, string label) => Count(after, metric, label) > Count(before, metric, label);

        static double Count(string text, string metric, string label) =>
            text.Split('\n').FirstOrDefault(l => l.StartsWith(metric, StringComparison.Ordinal) && l.Contains(label, StringComparison.Ordinal)) is { } line
                ? double.Parse(line.Split(' ')[^1].Trim(), System.Globalization.CultureInfo.InvariantCulture)
                : 0;
    }

    private static async Task SendMetadataAsync(Pipe toBroker, int correlationId)
    {
        var request = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(request, new MetadataRequest { Topics = [] }, 12, correlationId, "connection-end-test");
        await toBroker.Writer.WriteAsync(request.WrittenMemory);
    }

    private sealed class FailingMetadataHandler : IApiHandler
    {
        public ApiKey Api => ApiKey.Metadata;

        public short MinVersion => 0;

        public short MaxVersion => 12;

        public ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken) =>
            ValueTask.FromException<IApiMessage?>(new InvalidOperationException("a simulated handler fault"));
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
}
