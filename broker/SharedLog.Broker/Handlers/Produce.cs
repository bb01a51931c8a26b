// Produce, versions 3-11. Each partition's records must be v2 record batches (magic 0/1 are refused
// with UNSUPPORTED_FOR_MESSAGE_FORMAT), each batch must pass its CRC32C (CORRUPT_MESSAGE) and fit
// max.message.bytes (MESSAGE_TOO_LARGE). Accepted batches get offsets assigned and are acknowledged
// once durable in the WAL (acks=1 and acks=-1 mean the same here: there are no follower replicas;
// acks=0 sends no response). Other acks values get INVALID_REQUIRED_ACKS. Idempotent batches (producer
// id set, KIP-98) are checked against the producer's epoch and sequence: a retried batch is answered
// with its original offset and not written twice; a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch
// INVALID_PRODUCER_EPOCH. Transactional batches are refused: transactions are not served yet.
// Topics with a data contract pass each batch through the contract gate after the CRC check and
// before the WAL append: a rejected batch gets INVALID_RECORD with RecordErrors (v8+, KIP-467) naming
// each bad record; a quarantining contract stores the good records in place (bad ones leave offset
// gaps) and appends the bad ones to the quarantine topic with headers saying why.
using System.Globalization;
using SharedLog.Broker.Cluster;
using SharedLog.Broker.Coordinators;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Protocol.Records;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Broker.Handlers;

public sealed partial class ProduceHandler(TopicService topics, StreamStore streams, ProducerStateManager producers, ContractGate gate, QuarantineWriter quarantine, Http.BrokerMetrics metrics, ILogger<ProduceHandler> logger) : IApiHandler
{
    public ApiKey Api => ApiKey.Produce;

    public short MinVersion => 3;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.Produce);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (ProduceRequest)request;
        var response = new ProduceResponse();
        bool validAcks = body.Acks is -1 or 0 or 1;
        foreach (ProduceRequest.TopicProduceData topic in body.TopicData)
        {
            var topicResponse = new ProduceResponse.TopicProduceResponse { Name = topic.Name };
            response.Responses.Add(topicResponse);
            TopicMetadata? found = topics.Find(topic.Name);
            foreach (ProduceRequest.PartitionProduceData partition in topic.PartitionData)
            {
                var result = new ProduceResponse.PartitionProduceResponse { Index = partition.Index, BaseOffset = -1, LogAppendTimeMs = -1, LogStartOffset = -1 };
                topicResponse.PartitionResponses.Add(result);
                if (!validAcks)
                {
                    result.ErrorCode = (short)ErrorCode.InvalidRequiredAcks;
                    continue;
                }

                if (found is null || partition.Index < 0 || partition.Index >= found.Partitions.Count)
                {
                    result.ErrorCode = (short)ErrorCode.UnknownTopicOrPartition;
                    continue;
                }

                await AppendAsync(found, found.Partitions[partition.Index].StreamId, partition, result, cancellationToken);
                if (result.ErrorCode == 0)
                {
                    metrics.BytesIn(topic.Name, partition.Records?.Length ?? 0);
                }
            }
        }

        foreach (ProduceResponse.TopicProduceResponse topicResponse in response.Responses)
        {
            foreach (ProduceResponse.PartitionProduceResponse partitionResponse in topicResponse.PartitionResponses)
            {
                metrics.PartitionError(ApiKey.Produce, (ErrorCode)partitionResponse.ErrorCode);
            }
        }

        return body.Acks == 0 ? null : response;
    }

    private async Task AppendAsync(TopicMetadata topic, long streamId, ProduceRequest.PartitionProduceData partition, ProduceResponse.PartitionProduceResponse result, CancellationToken cancellationToken)
    {
        int maxMessageBytes = int.Parse(TopicConfigs.Effective(topic.Configs, TopicConfigs.MaxMessageBytes), CultureInfo.InvariantCulture);
        var accepted = new List<(byte[] Bytes, long ProducerId, short Epoch, int BaseSequence, int LastSequence, IReadOnlyList<QuarantinedRecord> Quarantined)>();
        ActiveContract? contract = gate.ContractFor(topic.Name);
        try
        {
            if (partition.Records is not { Length: > 0 } records)
            {
                throw new KafkaProtocolException("Produce request carries no records.", ErrorCode.InvalidRecord);
            }

            var reader = new RecordBatchReader(records);
            while (reader.TryReadNext(out RecordBatch batch))
            {
                if (batch.TotalSize > maxMessageBytes)
                {
                    throw new KafkaProtocolException($"Batch of {batch.TotalSize} bytes exceeds max.message.bytes {maxMessageBytes}.", ErrorCode.MessageTooLarge);
                }

                batch.VerifyCrc();
                if (batch.IsControl)
                {
                    throw new KafkaProtocolException("Clients may not write control batches.", ErrorCode.InvalidRecord);
                }

                if (batch.IsTransactional)
                {
                    throw new KafkaProtocolException("Transactional producers are not served yet.", ErrorCode.UnsupportedForMessageFormat);
                }

                int lastSequence = batch.BaseSequence < 0 ? -1 : (int)((batch.BaseSequence + (long)batch.LastOffsetDelta) % ((long)int.MaxValue + 1));
                byte[]? bytes = null;
                IReadOnlyList<QuarantinedRecord> quarantined = [];
                if (contract is not null)
                {
                    GateResult verdict;
                    try
                    {
                        verdict = gate.Inspect(contract, topic.Name, result.Index, batch);
                    }
                    catch (Exception e) when (e is not KafkaProtocolException and not OperationCanceledException)
                    {
                        // A gate fault is ours, not the producer's: refuse the batch retriably and say why in the log.
                        LogGateFailed(logger, e, topic.Name, result.Index);
                        result.ErrorCode = (short)ErrorCode.UnknownServerError;
                        result.ErrorMessage = "The contract gate failed on this batch; see the broker log.";
                        return;
                    }

                    if (verdict.Outcome == GateOutcome.Reject)
                    {
                        result.ErrorCode = (short)ErrorCode.InvalidRecord;
                        result.ErrorMessage = verdict.Summary;
                        result.RecordErrors = [.. verdict.Violations.Select(v => new ProduceResponse.BatchIndexAndErrorMessage { BatchIndex = v.BatchIndex, BatchIndexErrorMessage = $"{v.Rule}: {v.Reason}" })];
                        return;
                    }

                    bytes = verdict.Batch;
                    quarantined = verdict.Quarantined;
                }

                accepted.Add((bytes ?? batch.Data.ToArray(), batch.ProducerId, batch.ProducerEpoch, batch.BaseSequence, lastSequence, quarantined));
            }
        }
        catch (KafkaProtocolException e)
        {
            result.ErrorCode = (short)e.ErrorCode;
            result.ErrorMessage = e.Message;
            LogRejected(logger, topic.Name, result.Index, e.ErrorCode, e.Message);
            return;
        }

        if (contract is not null && accepted.Exists(a => a.Quarantined.Count > 0))
        {
            try
            {
                await quarantine.EnsureTopicAsync(contract, topic.Name, cancellationToken);
            }
            catch (InvalidOperationException e)
            {
                LogRejected(logger, topic.Name, result.Index, ErrorCode.KafkaStorageError, e.Message);
                result.ErrorCode = (short)ErrorCode.KafkaStorageError;
                result.ErrorMessage = e.Message;
                return;
            }
        }

        try
        {
            for (int i = 0; i < accepted.Count; i++)
            {
                (byte[] bytes, long producerId, short epoch, int baseSequence, int lastSequence, IReadOnlyList<QuarantinedRecord> quarantined) = accepted[i];
                (long baseOffset, bool retried) = producerId < 0
                    ? (await streams.AppendAsync(streamId, bytes, cancellationToken), false)
                    : await AppendIdempotentAsync(streamId, bytes, producerId, epoch, baseSequence, lastSequence, result, cancellationToken);
                if (result.ErrorCode != 0)
                {
                    return;
                }

                if (i == 0)
                {
                    result.BaseOffset = baseOffset;
                }

                // A retried idempotent batch was quarantined the first time; its records are there already.
                if (quarantined.Count > 0 && !retried)
                {
                    await quarantine.WriteAsync(contract!, topic.Name, result.Index, baseOffset, quarantined, cancellationToken);
                }
            }

            result.LogStartOffset = streams.Get(streamId).LogStartOffset;
        }
        catch (StorageBackpressureException e)
        {
            // Retriable: the client backs off and retries while uploads catch up.
            result.ErrorCode = (short)ErrorCode.KafkaStorageError;
            result.ErrorMessage = e.Message;
        }
        catch (WalUnavailableException e)
        {
            result.ErrorCode = (short)ErrorCode.KafkaStorageError;
            result.ErrorMessage = e.Message;
        }
        catch (StreamNotOpenException)
        {
            result.ErrorCode = (short)ErrorCode.NotLeaderOrFollower;
        }
        catch (ArgumentException e)
        {
            result.ErrorCode = (short)ErrorCode.MessageTooLarge;
            result.ErrorMessage = e.Message;
        }
    }

    /// <summary>Checks the batch's sequence, appends it unless it is a retry, and records it, all in partition order.</summary>
    private async Task<(long BaseOffset, bool Retried)> AppendIdempotentAsync(long streamId, byte[] bytes, long producerId, short epoch, int baseSequence, int lastSequence, ProduceResponse.PartitionProduceResponse result, CancellationToken cancellationToken)
    {
        ProducerStateManager.PartitionProducers state = producers.For(streamId);
        await state.Gate.WaitAsync(cancellationToken);
        try
        {
            switch (state.Check(producerId, epoch, baseSequence, lastSequence, out ErrorCode error, out long originalOffset))
            {
                case SequenceVerdict.Duplicate:
                    return (originalOffset, true);
                case SequenceVerdict.Reject:
                    result.ErrorCode = (short)error;
                    result.ErrorMessage = $"Producer {producerId} epoch {epoch}: batch with sequence {baseSequence} refused ({error}).";
                    return (-1, false);
            }

            long baseOffset = await streams.AppendAsync(streamId, bytes, cancellationToken);
            state.Record(producerId, epoch, baseSequence, lastSequence, baseOffset);
            return (baseOffset, false);
        }
        finally
        {
            state.Gate.Release();
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Contract gate failed on a batch for {Topic}-{Partition}")]
    private static partial void LogGateFailed(ILogger logger, Exception error, string topic, int partition);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Produce to {Topic}-{Partition} rejected with {Error}: {Reason}")]
    private static partial void LogRejected(ILogger logger, string topic, int partition, ErrorCode error, string reason);
}
