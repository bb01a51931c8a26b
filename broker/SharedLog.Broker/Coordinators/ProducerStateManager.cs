using System.Collections.Concurrent;
using SharedLog.Protocol;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Coordinators;

/// <summary>Where an idempotent batch stands against what its producer already wrote to a partition.</summary>
public enum SequenceVerdict
{
    Append,
    Duplicate,
    Reject,
}

/// <summary>
/// Idempotent producers (KIP-98): producer ids come from blocks allocated in the metadata store, so they
/// are unique across restarts; per partition, each producer's epoch and the sequence ranges of its last
/// five batches tell a new batch from a retry (answered with its original offset) and from a gap or a
/// fenced epoch. The state is in memory: after a broker restart a producer continuing mid-sequence gets
/// UNKNOWN_PRODUCER_ID and re-initializes.
/// </summary>
public sealed class ProducerStateManager(IMetadataStore metadata) : IDisposable
{
    private const int BlockSize = 1000;
    private const int RememberedBatches = 5;
    private readonly ConcurrentDictionary<long, PartitionProducers> _partitions = new();
    private readonly ConcurrentDictionary<long, short> _epochs = new();
    private readonly SemaphoreSlim _allocation = new(1, 1);
    private long _next;
    private long _end;

    /// <summary>A new producer id with epoch 0, or the next epoch of a known id (KIP-360 epoch bump).</summary>
    public async Task<(ErrorCode Error, long ProducerId, short Epoch)> InitAsync(long producerId, short epoch, CancellationToken cancellationToken)
    {
        if (producerId >= 0)
        {
            if (!_epochs.TryGetValue(producerId, out short current) || current != epoch)
            {
                return (ErrorCode.InvalidProducerEpoch, -1, -1);
            }

            if (current == short.MaxValue - 1)
            {
                // Epoch exhausted: the producer gets a fresh id instead.
                _epochs.TryRemove(producerId, out _);
            }
            else
            {
                _epochs[producerId] = (short)(current + 1);
                return (ErrorCode.None, producerId, (short)(current + 1));
            }
        }

        await _allocation.WaitAsync(cancellationToken);
        try
        {
            if (_next >= _end)
            {
                ProducerIdBlock block = await metadata.AllocateProducerIdsAsync(BlockSize, CancellationToken.None);
                _next = block.FirstProducerId;
                _end = block.FirstProducerId + block.Count;
            }

            long id = _next++;
            _epochs[id] = 0;
            return (ErrorCode.None, id, 0);
        }
        finally
        {
            _allocation.Release();
        }
    }

    /// <summary>The idempotence state of one partition's producers.</summary>
    public PartitionProducers For(long streamId) => _partitions.GetOrAdd(streamId, _ => new PartitionProducers());

    public void Dispose() => _allocation.Dispose();

    public sealed class PartitionProducers
    {
        private readonly Lock _sync = new();
        private readonly Dictionary<long, ProducerEntry> _producers = [];

        /// <summary>
        /// Judges a batch and, when it is new, starts its append and remembers it, all under one lock: per
        /// producer, sequence order is then offset order, and the next batch (or a retry) may be judged while
        /// this one is still being made durable. <paramref name="written"/> is the append's task, or for a
        /// duplicate the original's (a retry that overtakes its original's commit waits for it); null when refused.
        /// </summary>
        public SequenceVerdict CheckAndAppend<TState>(long producerId, short epoch, int baseSequence, int lastSequence, TState state, Func<TState, Task<long>> append, out ErrorCode error, out Task<long>? written)
        {
            lock (_sync)
            {
                SequenceVerdict verdict = Check(producerId, epoch, baseSequence, lastSequence, out error, out written);
                if (verdict == SequenceVerdict.Append)
                {
                    written = append(state);
                    if (!written.IsFaulted)
                    {
                        // A task already failed was refused before it got offsets (backpressure, closed partition): nothing to remember.
                        Record(producerId, epoch, baseSequence, lastSequence, written);
                    }
                }

                return verdict;
            }
        }

        private SequenceVerdict Check(long producerId, short epoch, int baseSequence, int lastSequence, out ErrorCode error, out Task<long>? original)
        {
            error = ErrorCode.None;
            original = null;
            if (!_producers.TryGetValue(producerId, out ProducerEntry? entry))
            {
                if (baseSequence == 0)
                {
                    return SequenceVerdict.Append;
                }

                error = ErrorCode.UnknownProducerId;
                return SequenceVerdict.Reject;
            }

            if (epoch < entry.Epoch)
            {
                error = ErrorCode.InvalidProducerEpoch;
                return SequenceVerdict.Reject;
            }

            if (epoch > entry.Epoch)
            {
                if (baseSequence == 0)
                {
                    return SequenceVerdict.Append;
                }

                error = ErrorCode.OutOfOrderSequenceNumber;
                return SequenceVerdict.Reject;
            }

            foreach ((int first, int last, Task<long> written) in entry.Recent)
            {
                if (first == baseSequence && last == lastSequence)
                {
                    original = written;
                    return SequenceVerdict.Duplicate;
                }
            }

            int expected = entry.LastSequence == int.MaxValue ? 0 : entry.LastSequence + 1;
            if (baseSequence == expected)
            {
                return SequenceVerdict.Append;
            }

            error = ErrorCode.OutOfOrderSequenceNumber;
            return SequenceVerdict.Reject;
        }

        /// <summary>Producers that wrote to the partition: id, epoch, last sequence and when (DescribeProducers).</summary>
        public IReadOnlyList<(long ProducerId, short Epoch, int LastSequence, long LastTimestamp)> Snapshot()
        {
            lock (_sync)
            {
                return [.. _producers.Select(p => (p.Key, p.Value.Epoch, p.Value.LastSequence, p.Value.LastTimestamp))];
            }
        }

        private void Record(long producerId, short epoch, int baseSequence, int lastSequence, Task<long> written)
        {
            if (!_producers.TryGetValue(producerId, out ProducerEntry? entry) || epoch > entry.Epoch)
            {
                entry = new ProducerEntry { Epoch = epoch };
                _producers[producerId] = entry;
            }

            entry.LastSequence = lastSequence;
            entry.LastTimestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            entry.Recent.Enqueue((baseSequence, lastSequence, written));
            while (entry.Recent.Count > RememberedBatches)
            {
                entry.Recent.Dequeue();
            }
        }

        private sealed class ProducerEntry
        {
            public short Epoch { get; init; }

            public int LastSequence { get; set; } = -1;

            public long LastTimestamp { get; set; } = -1;

            /// <summary>The last batches' sequence ranges and their appends (durable or still being committed).</summary>
            public Queue<(int First, int Last, Task<long> Written)> Recent { get; } = new();
        }
    }
}
