using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;
using SharedLog.Broker.Handlers;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Network;

/// <summary>
/// One Kafka client connection: reads size-prefixed frames from the pipe, answers each in order
/// (pipelined requests are served one after another, so responses keep request order), and closes the
/// connection on protocol violations, oversized frames and idleness. A frame's size is checked before
/// any of it is buffered; the pipe's pause threshold applies backpressure to a client that sends faster
/// than it is served.
/// </summary>
public sealed partial class KafkaConnectionHandler(
    HandlerRegistry registry,
    ApiVersionsHandler apiVersions,
    Http.BrokerMetrics metrics,
    IOptions<BrokerOptions> options,
    ILogger<KafkaConnectionHandler> logger) : ConnectionHandler
{
    private const int SizePrefix = 4;

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        BrokerOptions settings = options.Value;
        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        LogConnected(logger, connection.ConnectionId, connection.RemoteEndPoint);
        try
        {
            while (true)
            {
                idle.CancelAfter(settings.ConnectionsMaxIdleMs);
                ReadResult read = await input.ReadAsync(idle.Token);
                ReadOnlySequence<byte> buffer = read.Buffer;
                try
                {
                    while (TryTakeFrame(ref buffer, settings.SocketRequestMaxBytes, out ReadOnlySequence<byte> frame))
                    {
                        if (!await ServeAsync(connection, frame, output, idle.Token))
                        {
                            return;
                        }
                    }
                }
                finally
                {
                    input.AdvanceTo(buffer.Start, buffer.End);
                }

                if (read.IsCompleted || read.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (!connection.ConnectionClosed.IsCancellationRequested)
        {
            LogIdleClosed(logger, connection.ConnectionId, settings.ConnectionsMaxIdleMs);
        }
        catch (OperationCanceledException)
        {
        }
        catch (FrameTooLargeException e)
        {
            LogProtocolViolation(logger, connection.ConnectionId, e.Message);
            metrics.ConnectionClosed("frame_too_large");
        }
        catch (ConnectionResetException)
        {
        }
        finally
        {
            LogDisconnected(logger, connection.ConnectionId);
        }
    }

    /// <summary>Takes one whole frame off the front of the buffer, or returns false if more bytes are needed.</summary>
    private static bool TryTakeFrame(ref ReadOnlySequence<byte> buffer, int maxBytes, out ReadOnlySequence<byte> frame)
    {
        frame = default;
        if (buffer.Length < SizePrefix)
        {
            return false;
        }

        Span<byte> prefix = stackalloc byte[SizePrefix];
        buffer.Slice(0, SizePrefix).CopyTo(prefix);
        int size = BinaryPrimitives.ReadInt32BigEndian(prefix);
        if (size < 0 || size > maxBytes)
        {
            throw new FrameTooLargeException($"Frame declares {size} bytes; socket.request.max.bytes is {maxBytes}.");
        }

        if (buffer.Length < SizePrefix + (long)size)
        {
            return false;
        }

        frame = buffer.Slice(SizePrefix, size);
        buffer = buffer.Slice(frame.End);
        return true;
    }

    /// <summary>Answers one frame. Returns false when the connection must be closed.</summary>
    private async ValueTask<bool> ServeAsync(ConnectionContext connection, ReadOnlySequence<byte> frame, PipeWriter output, CancellationToken cancellationToken)
    {
        if (!RequestFrame.TryPeekApi(frame, out short rawKey, out short version) || frame.Length < 8)
        {
            LogProtocolViolation(logger, connection.ConnectionId, $"frame of {frame.Length} bytes is shorter than a request header");
            return false;
        }

        int correlationId = ReadCorrelationId(frame);
        var apiKey = (ApiKey)rawKey;
        if (apiKey == ApiKey.ApiVersions && (version < apiVersions.MinVersion || version > apiVersions.MaxVersion))
        {
            // KIP-511: answer an unknown ApiVersions version at v0 so the client can pick one we know.
            LogUnsupportedVersion(logger, connection.ConnectionId, rawKey, version);
            RequestFrame.WriteResponse(output, correlationId, apiVersions.BuildResponse(ErrorCode.UnsupportedVersion), 0);
            await output.FlushAsync(cancellationToken);
            return true;
        }

        if (!ApiMessages.IsDefined(rawKey) || !registry.TryGet(apiKey, out IApiHandler? handler) || version < handler.MinVersion || version > handler.MaxVersion)
        {
            // Kafka closes the connection for APIs or versions it does not serve.
            LogUnsupportedVersion(logger, connection.ConnectionId, rawKey, version);
            metrics.ConnectionClosed("unsupported_api");
            return false;
        }

        DecodedRequest request;
        try
        {
            request = RequestFrame.Decode(frame);
        }
        catch (KafkaProtocolException e)
        {
            LogProtocolViolation(logger, connection.ConnectionId, $"{apiKey} v{version}: {e.Message}");
            metrics.ConnectionClosed("malformed_request");
            return false;
        }

        IApiMessage? response;
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var context = new RequestContext(request.Header, version, connection.ConnectionId, connection.RemoteEndPoint);
            response = await handler.HandleAsync(context, request.Body, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception e)
        {
            // A handler bug must not take the broker down; the client sees a closed connection and retries.
            LogHandlerFailed(logger, e, connection.ConnectionId, apiKey, version);
            return false;
        }

        if (response is not null)
        {
            RequestFrame.WriteResponse(output, correlationId, response, version);
            FlushResult flushed = await output.FlushAsync(cancellationToken);
            if (flushed.IsCompleted)
            {
                return false;
            }
        }

        metrics.Request(apiKey, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return true;
    }

    private static int ReadCorrelationId(ReadOnlySequence<byte> frame)
    {
        Span<byte> header = stackalloc byte[8];
        frame.Slice(0, 8).CopyTo(header);
        return BinaryPrimitives.ReadInt32BigEndian(header[4..]);
    }

    private sealed class FrameTooLargeException(string message) : Exception(message);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote}")]
    private static partial void LogConnected(ILogger logger, string connectionId, System.Net.EndPoint? remote);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Connection {ConnectionId} closed")]
    private static partial void LogDisconnected(ILogger logger, string connectionId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connection {ConnectionId} idle for {IdleMs} ms; closing")]
    private static partial void LogIdleClosed(ILogger logger, string connectionId, int idleMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection {ConnectionId}: protocol violation, closing: {Reason}")]
    private static partial void LogProtocolViolation(ILogger logger, string connectionId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection {ConnectionId}: API key {ApiKey} version {Version} is not served")]
    private static partial void LogUnsupportedVersion(ILogger logger, string connectionId, short apiKey, short version);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection {ConnectionId}: {Api} v{Version} handler failed; closing the connection")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception, string connectionId, ApiKey api, short version);
}
