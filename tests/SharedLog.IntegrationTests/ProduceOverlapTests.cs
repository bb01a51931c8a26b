using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using SharedLog.Broker.Handlers;
using SharedLog.Broker.Network;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>
/// Pipelined produces whose frames the connection copies (the gate reads them record by record) are checked side by
/// side, yet take effect in request order: each waits for the one before it to reach its ordering point.
/// </summary>
[Collection(BrokerMetricsCollection.Name)]
public sealed class ProduceOverlapTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ACopiedProduceIsCheckedWhileTheOneAheadIsStillCheckingAndAppendsAfterIt()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var probe = new OverlapProbeHandler();
        (Task serving, Pipe toBroker, Pipe toClient) = InMemoryConnection.Connect(broker, probe, new StoppingLifetime());

        // Both frames are large enough to be copied; the same size, so a copy given back too early is the one the
        // second request is read into, and the first request would then read the second's bytes.
        await SendTwoCopiedProducesAsync(toBroker);

        List<int> answered = await ReadCorrelationIdsAsync(toClient, count: 2);
        Assert.Equal([1, 2], answered);
        Assert.True(probe.SecondStartedBeforeFirstWasOrdered, "the second produce's Preceding had completed before the first reached its ordering point");
        Assert.Equal([1, 2], probe.Appended);
        Assert.Equal([(1, true), (2, true)], probe.RecordsIntact);

        await toBroker.Writer.CompleteAsync();
        await serving.WaitAsync(Timeout);
    }

    [Fact]
    public async Task AProduceThatFailsBeforeItsTurnDoesNotLetTheNextOneAppendBeforeTheOneAheadOfIt()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var probe = new FailingMiddleProbeHandler();
        (Task serving, Pipe toBroker, Pipe toClient) = InMemoryConnection.Connect(broker, probe, new StoppingLifetime());
        // The first two are copied and overlap (two at most on a 2-core machine); the third is small, so it is read in the
        // pipe and started in turn, as any produce behind an overlapped one.
        await SendTwoCopiedProducesAsync(toBroker);
        await SendProduceAsync(toBroker, correlationId: 3, recordBytes: 1000, fill: 3);

        // The first is still checking when the second fails and the third waits for its turn.
        await probe.ThirdStarted.Task.WaitAsync(Timeout);
        probe.FailSecond.SetResult();
        await probe.SecondFailed.Task.WaitAsync(Timeout);

        // Had the second's failure been the third's turn, the third would append now: it is given a second to do so
        // wrongly (this wait only makes the failure more certain; the test passes on correct code without it).
        await Task.WhenAny(probe.ThirdAppended.Task, Task.Delay(TimeSpan.FromSeconds(1)));
        probe.ReleaseFirst.SetResult();
        await probe.ThirdAppended.Task.WaitAsync(Timeout);
        Assert.Equal([1, 3], probe.Appended);

        // The failed handler closes the connection once the first is answered, as any handler failure does.
        await serving.WaitAsync(Timeout);
        Assert.Equal([1], await ReadCorrelationIdsAsync(toClient, count: 1));
    }

    /// <summary>Produces 1 and 2, each large enough for the connection to copy its frame, with records all 1s and all 2s.</summary>
    private static async Task SendTwoCopiedProducesAsync(Pipe toBroker)
    {
        int copiedBytes = KafkaConnectionHandler.CopiedFrameMinBytes + 1000;
        await SendProduceAsync(toBroker, correlationId: 1, copiedBytes, fill: 1);
        await SendProduceAsync(toBroker, correlationId: 2, copiedBytes, fill: 2);
    }

    private static async Task SendProduceAsync(Pipe toBroker, int correlationId, int recordBytes, byte fill)
    {
        byte[] records = new byte[recordBytes];
        records.AsSpan().Fill(fill);
        var request = new ProduceRequest { Acks = -1, TimeoutMs = 5000, TopicData = [new() { Name = "overlap", PartitionData = [new() { Index = 0, Records = new ReadOnlySequence<byte>(records) }] }] };
        var frame = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(frame, request, 9, correlationId, "overlap-test");
        await toBroker.Writer.WriteAsync(frame.WrittenMemory);
    }

    /// <summary>The correlation ids of the next <paramref name="count"/> response frames, in the order they came.</summary>
    private static async Task<List<int>> ReadCorrelationIdsAsync(Pipe toClient, int count)
    {
        var ids = new List<int>();
        using var deadline = new CancellationTokenSource(Timeout);
        while (ids.Count < count)
        {
            ReadResult read = await toClient.Reader.ReadAsync(deadline.Token);
            ReadOnlySequence<byte> buffer = read.Buffer;
            while (buffer.Length >= 8)
            {
                byte[] head = buffer.Slice(0, 8).ToArray();
                int size = BinaryPrimitives.ReadInt32BigEndian(head);
                if (buffer.Length < 4 + size)
                {
                    break;
                }

                ids.Add(BinaryPrimitives.ReadInt32BigEndian(head.AsSpan(4)));
                buffer = buffer.Slice(4 + size);
            }

            toClient.Reader.AdvanceTo(buffer.Start, buffer.End);
            Assert.False(read.IsCompleted && ids.Count < count, $"the connection closed after {ids.Count} of {count} responses");
        }

        return ids;
    }

    /// <summary>
    /// A produce handler that reads its request's bytes for long, as the gate does, and notes the order requests append in:
    /// each appends only after its <see cref="RequestContext.Preceding"/>, then reaches its ordering point.
    /// </summary>
    private abstract class ProbeProduceHandler : IApiHandler
    {
        private readonly Lock _lock = new();

        public List<int> Appended { get; } = [];

        public ApiKey Api => ApiKey.Produce;

        public short MinVersion => 0;

        public short MaxVersion => 9;

        public bool ReadsRequestBytesLong(IApiMessage request) => true;

        public abstract ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken);

        /// <summary>Waits for the request's turn, appends (notes it, and whatever <paramref name="alsoNote"/> adds), and reaches the ordering point.</summary>
        protected async Task AppendInTurnAsync(RequestContext context, Action? alsoNote = null)
        {
            await context.Preceding;
            lock (_lock)
            {
                alsoNote?.Invoke();
                Appended.Add(context.Header.CorrelationId);
            }

            context.Ordering!.Reached();
        }
    }

    /// <summary>The first request holds its check open until the second has started checking, then reads its records.</summary>
    private sealed class OverlapProbeHandler : ProbeProduceHandler
    {
        private readonly TaskCompletionSource _secondChecking = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile bool _firstOrdered;

        public bool SecondStartedBeforeFirstWasOrdered { get; private set; }

        public List<(int Request, bool Intact)> RecordsIntact { get; } = [];

        public override async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
        {
            int id = context.Header.CorrelationId;
            if (id == 1)
            {
                // Without overlapping, the second request is not read before this one is ordered: this wait times out.
                await _secondChecking.Task.WaitAsync(Timeout, cancellationToken);
            }
            else
            {
                SecondStartedBeforeFirstWasOrdered = !context.Preceding.IsCompleted && !_firstOrdered;
                _secondChecking.TrySetResult();
            }

            ReadOnlySequence<byte> records = ((ProduceRequest)request).TopicData[0].PartitionData[0].Records!.Value;
            bool intact = true;
            foreach (ReadOnlyMemory<byte> segment in records)
            {
                intact &= !segment.Span.ContainsAnyExcept((byte)id);
            }

            await AppendInTurnAsync(context, () => RecordsIntact.Add((id, intact)));
            _firstOrdered |= id == 1;
            return new ProduceResponse();
        }
    }

    /// <summary>Three produces: the first held until released, the second failing before its turn once told to, the third appending in its turn.</summary>
    private sealed class FailingMiddleProbeHandler : ProbeProduceHandler
    {
        public TaskCompletionSource ThirdStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource FailSecond { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource SecondFailed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource ReleaseFirst { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource ThirdAppended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
        {
            int id = context.Header.CorrelationId;
            switch (id)
            {
                case 1:
                    await ReleaseFirst.Task.WaitAsync(Timeout, cancellationToken);
                    break;
                case 2:
                    await FailSecond.Task.WaitAsync(Timeout, cancellationToken);
                    SecondFailed.SetResult();
                    throw new InvalidOperationException("a simulated failure while checking");
                default:
                    ThirdStarted.SetResult();
                    break;
            }

            await AppendInTurnAsync(context);
            if (id == 3)
            {
                ThirdAppended.SetResult();
            }

            return new ProduceResponse();
        }
    }
}
