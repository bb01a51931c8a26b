// InitProducerId, versions 0-5, for idempotent producers (KIP-98): a unique producer id and epoch 0,
// or, with the current id and epoch (v3+, KIP-360), the next epoch (a fresh id if this broker did not issue it). Transactional ids are refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, since transactions are not served yet: librdkafka and the Java client take that as
// final, where UNSUPPORTED_VERSION left librdkafka retrying until InitTransactions timed out.
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed partial class InitProducerIdHandler(ProducerStateManager producers, ILogger<InitProducerIdHandler> logger) : IApiHandler
{
    public ApiKey Api => ApiKey.InitProducerId;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.InitProducerId);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (InitProducerIdRequest)request;
        if (body.TransactionalId is "")
        {
            // As Kafka's transaction coordinator answers an empty transactional id.
            return new InitProducerIdResponse { ErrorCode = (short)ErrorCode.InvalidRequest, ProducerId = -1, ProducerEpoch = -1 };
        }

        if (body.TransactionalId is not null)
        {
            LogTransactionsNotServed(logger, body.TransactionalId, context.Header.ClientId);
            return new InitProducerIdResponse { ErrorCode = (short)ErrorCode.TransactionalIdAuthorizationFailed, ProducerId = -1, ProducerEpoch = -1 };
        }

        // As Kafka (KIP-360): an existing producer names both its id and its epoch, a new one neither.
        if ((body.ProducerId == -1) != (body.ProducerEpoch == -1))
        {
            return new InitProducerIdResponse { ErrorCode = (short)ErrorCode.InvalidRequest, ProducerId = -1, ProducerEpoch = -1 };
        }

        (ErrorCode error, long id, short epoch) = await producers.InitAsync(body.ProducerId, body.ProducerEpoch, cancellationToken);
        return new InitProducerIdResponse { ErrorCode = (short)error, ProducerId = id, ProducerEpoch = epoch };
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "InitProducerId for transactional id {TransactionalId} (client {ClientId}) refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactions are not supported by this broker")]
    private static partial void LogTransactionsNotServed(ILogger logger, string transactionalId, string? clientId);
}
