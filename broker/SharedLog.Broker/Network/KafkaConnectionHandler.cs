using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SharedLog.Broker.Handlers;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Network;

/// <summary>
/// One Kafka client connection: reads size-prefixed frames from the pipe, answers each in request order,
/// and closes the connection on protocol violations, oversized frames and idleness. A frame's size is
/// checked before any of it is buffered; the pipe's pause threshold and a bounded queue of unanswered
/// requests apply backpressure to a client that sends faster than it is served.
/// Requests run one after another, as Kafka serves a connection, with one exception: a Produce lets
/// the next Produce start once its appends are queued in offset order (its
/// <see cref="RequestContext.Ordering"/> point), so pipelined produces share WAL group commits instead
/// of each waiting for its own; and a Produce the contract gate reads record by record starts before the
/// one ahead of it is ordered, its appends still queued after that one's (<see cref="RequestSequence"/>).
/// A separate loop writes responses in request order as they complete.
/// </summary>
public sealed partial class KafkaConnectionHandler(
    HandlerRegistry registry,
    ApiVersionsHandler apiVersions,
    Http.BrokerMetrics metrics,
    IOptions<BrokerOptions> options,
    IHostApplicationLifetime lifetime,
    ILogger<KafkaConnectionHandler> logger) : ConnectionHandler
{
    private const int SizePrefix = 4;

    private const int MaxUnansweredRequests = 64;

    private readonly WorkSlots _overlapSlots = RequestSequence.BrokerSlots();

    /// <summary>Frames from this size are copied when their handler reads them for long (see <see cref="HoldsRequestBytesLong"/>).</summary>
    internal const int CopiedFrameMinBytes = 64 * 1024;

    /// <summary>
    /// Copies up to this size come from the shared pool (clients cap a produce request near 1 MB by default); larger
    /// ones, up to <c>socket.request.max.bytes</c>, are plain arrays the GC frees, so the pool never keeps them.
    /// </summary>
    internal const int PooledFrameCopyMaxBytes = 4 * 1024 * 1024;

    internal static byte[] RentFrameCopy(int length) =>
        length <= PooledFrameCopyMaxBytes ? ArrayPool<byte>.Shared.Rent(length) : GC.AllocateUninitializedArray<byte>(length);

    internal static void ReturnFrameCopy(byte[] copy)
    {
        // A pooled copy is at most PooledFrameCopyMaxBytes long (the pool rounds up to a power of two, and the limit is one).
        if (copy.Length <= PooledFrameCopyMaxBytes)
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        BrokerOptions settings = options.Value;
        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        // "stop" ends the connection (client gone, handler failure, closed output); "serving" adds the broker's
        // shutdown, so a stopping broker does not wait for idle clients to leave, and is what handlers get; "idle"
        // adds the idle timeout, armed while the connection waits for a request's bytes. It is idle only when no
        // response is owed either: one being served or sent (a long poll, a large fetch going out) is activity, as
        // in Kafka, and the writer has its own deadline for a client that stops reading.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        using var serving = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, lifetime.ApplicationStopping);
        CancellationTokenSource idle = CancellationTokenSource.CreateLinkedTokenSource(serving.Token);
        var unanswered = Channel.CreateBounded<PendingResponse>(new BoundedChannelOptions(MaxUnansweredRequests) { SingleReader = true, SingleWriter = true });
        var owed = new OwedResponses();
        var requests = new RequestSequence(RequestSequence.DefaultOverlappedProduces, _overlapSlots);
        Task writer = WriteResponsesAsync(connection, unanswered.Reader, output, stop, settings.ConnectionsMaxIdleMs, owed);
        LogConnected(logger, connection.ConnectionId, connection.RemoteEndPoint);
        try
        {
            while (true)
            {
                idle.CancelAfter(settings.ConnectionsMaxIdleMs);
                ReadResult read;
                try
                {
                    read = await input.ReadAsync(idle.Token);
                }
                catch (OperationCanceledException) when (idle.IsCancellationRequested && !serving.IsCancellationRequested && owed.Count > 0)
                {
                    // Not idle: a response is still being made or sent. A cancelled source cannot be armed again.
                    idle.Dispose();
                    idle = CancellationTokenSource.CreateLinkedTokenSource(serving.Token);
                    continue;
                }

                idle.CancelAfter(Timeout.Infinite);
                ReadOnlySequence<byte> buffer = read.Buffer;
                byte[]? copied = null;
                int copiedLength = 0;
                try
                {
                    while (TryTakeFrame(ref buffer, settings.SocketRequestMaxBytes, out ReadOnlySequence<byte> frame))
                    {
                        if (frame.Length >= CopiedFrameMinBytes && HoldsRequestBytesLong(frame))
                        {
                            copiedLength = (int)frame.Length;
                            copied = RentFrameCopy(copiedLength);
                            frame.CopyTo(copied);
                            break;
                        }

                        if (!await ServeAsync(connection, frame, copy: null, unanswered.Writer, owed, requests, serving.Token, stop.Token))
                        {
                            return;
                        }
                    }
                }
                finally
                {
                    // Frames behind a copied one are not examined yet: the next read returns them at once.
                    input.AdvanceTo(buffer.Start, copied is null ? buffer.End : buffer.Start);
                }

                if (copied is not null)
                {
                    // ServeAsync returns the copy to the pool once the handler no longer reads it (its ordering point or its end).
                    if (!await ServeAsync(connection, new ReadOnlySequence<byte>(copied, 0, copiedLength), copied, unanswered.Writer, owed, requests, serving.Token, stop.Token))
                    {
                        return;
                    }

                    continue;
                }

                if (read.IsCompleted || read.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            LogClosedForShutdown(logger, connection.ConnectionId);
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            LogIdleClosed(logger, connection.ConnectionId, settings.ConnectionsMaxIdleMs);
            metrics.ConnectionClosed("idle");

            // A client that stopped reading leaves the response writer waiting for room in the socket: end the
            // connection rather than wait for it, or the socket stays open holding its responses.
            connection.Abort(new ConnectionAbortedException("Idle for connections.max.idle.ms."));
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
            // Answer what was accepted before closing, as far as the connection still allows.
            unanswered.Writer.TryComplete();
            await writer;
            idle.Dispose();
            LogDisconnected(logger, connection.ConnectionId);
        }
    }

    /// <summary>Responses a connection owes its client: queued by the reader, done once the writer has sent (or dropped) them.</summary>
    private sealed class OwedResponses
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public void Add() => Interlocked.Increment(ref _count);

        public void Done() => Interlocked.Decrement(ref _count);
    }

    /// <summary>
    /// True for a request whose handler reads its bytes for long (a Produce to a topic with a contract: the
    /// gate decodes every record). Such a frame is copied out of the pipe, so the client's next request
    /// streams in while this one is checked; otherwise the pipe's pause threshold (about one request of
    /// librdkafka's default size) holds the next request back until this one reaches its ordering point, and
    /// the checking core idles while it arrives. Other frames are read in place, as copying costs them more.
    /// </summary>
    private bool HoldsRequestBytesLong(ReadOnlySequence<byte> frame)
    {
        if (!RequestFrame.TryPeekApi(frame, out short rawKey, out short version) || !TryGetServingHandler(rawKey, version, out IApiHandler? handler))
        {
            return false;
        }

        try
        {
            return handler.ReadsRequestBytesLong(RequestFrame.Decode(frame).Body);
        }
        catch (KafkaProtocolException)
        {
            return false; // served in place, where the violation is logged and the connection closed
        }
    }

    /// <summary>The handler of a defined API that serves this version, if any.</summary>
    private bool TryGetServingHandler(short rawKey, short version, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IApiHandler? handler)
    {
        handler = null;
        return ApiMessages.IsDefined(rawKey) && registry.TryGet((ApiKey)rawKey, out handler) && version >= handler.MinVersion && version <= handler.MaxVersion;
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

    /// <summary>Starts answering one frame and queues its response. Returns false when the connection must be closed.</summary>
    /// <param name="copy">The pooled array <paramref name="frame"/> was copied into, or null when it lies in the pipe: returned to the pool once the handler no longer reads it.</param>
    /// <param name="cancellationToken">Given to the handler: the connection's end or the broker's shutdown.</param>
    /// <param name="answering">The connection's end only: how long a started request's response may wait to be queued.</param>
    private async ValueTask<bool> ServeAsync(ConnectionContext connection, ReadOnlySequence<byte> frame, byte[]? copy, ChannelWriter<PendingResponse> unanswered, OwedResponses owed, RequestSequence requests, CancellationToken cancellationToken, CancellationToken answering)
    {
        // Until when the handler reads the frame: null once it no longer does (or never started).
        Task? readsFrameUntil = null;
        try
        {
            if (!RequestFrame.TryPeekApi(frame, out short rawKey, out short version) || frame.Length < 8)
            {
                LogProtocolViolation(logger, connection.ConnectionId, $"frame of {frame.Length} bytes is shorter than a request header");
                metrics.ConnectionClosed("malformed_request");
                return false;
            }

            int correlationId = ReadCorrelationId(frame);
            var apiKey = (ApiKey)rawKey;
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            if (apiKey == ApiKey.ApiVersions && (version < apiVersions.MinVersion || version > apiVersions.MaxVersion))
            {
                // KIP-511: answer an unknown ApiVersions version at v0 so the client can pick one we know.
                LogUnsupportedVersion(logger, connection.ConnectionId, rawKey, version);
                owed.Add();
                await unanswered.WriteAsync(new PendingResponse(Task.FromResult<IApiMessage?>(apiVersions.BuildResponse(ErrorCode.UnsupportedVersion)), apiKey, correlationId, 0, started), cancellationToken);
                return true;
            }

            if (!TryGetServingHandler(rawKey, version, out IApiHandler? handler))
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

            var context = new RequestContext(request.Header, version, connection.ConnectionId, connection.RemoteEndPoint);
            Task<IApiMessage?> handling;
            if (apiKey == ApiKey.Produce)
            {
                var ordering = new OrderingPoint();
                context = context with { Ordering = ordering, Preceding = requests.ProduceTail };
                // A copied frame is the handler's alone, so its produce may overlap the ones ahead of it (see RequestSequence);
                // one read in the pipe holds the pipe until its ordering point, as does every produce when overlapping is off.
                bool overlapped = copy is not null && await requests.TryReserveOverlapAsync();
                if (overlapped)
                {
                    handling = Task.Run(() => Start(handler, context, request.Body, cancellationToken), CancellationToken.None);
                }
                else
                {
                    handling = Start(handler, context, request.Body, cancellationToken);
                }

                // The handler reads the frame until then; the next produce's turn also waits for this one's predecessors.
                Task reachedOrEnded = Task.WhenAny(ordering.Task, handling);
                requests.ProduceStarted(handling, reachedOrEnded, overlapped);
                readsFrameUntil = reachedOrEnded;
                if (!overlapped)
                {
                    await reachedOrEnded;
                }
            }
            else
            {
                // Other requests see every earlier request's effects, as when a connection is served one request at a time.
                await requests.WaitForAllAsync();
                handling = Start(handler, context, request.Body, cancellationToken);
                await ((Task)handling).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }

            // Once started, a request is answered even if the broker began stopping meanwhile: its effects (an append, a
            // commit, a new topic) happened, and a client that saw only the connection close would retry them. Only the
            // connection's end (client gone, writer failed) stops the queueing; the shutdown stops reading further requests.
            owed.Add();
            await unanswered.WriteAsync(new PendingResponse(handling, apiKey, correlationId, version, started), answering);
            return true;
        }
        finally
        {
            if (copy is not null)
            {
                if (readsFrameUntil is { IsCompleted: false })
                {
                    _ = readsFrameUntil.ContinueWith(static (_, array) => ReturnFrameCopy((byte[])array!), copy, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
                else
                {
                    ReturnFrameCopy(copy);
                }
            }
        }
    }

    /// <summary>Runs a handler; an exception thrown before its first await becomes a failed task like any other.</summary>
    private static Task<IApiMessage?> Start(IApiHandler handler, RequestContext context, IApiMessage body, CancellationToken cancellationToken)
    {
        try
        {
            return handler.HandleAsync(context, body, cancellationToken).AsTask();
        }
        catch (Exception e)
        {
            return Task.FromException<IApiMessage?>(e);
        }
    }

    /// <summary>
    /// Writes responses in request order as their handlers finish; closes the connection when a handler fails, or when
    /// one response cannot be handed to the socket within <paramref name="maxIdleMs"/> (a client that stopped reading).
    /// Kafka closes a connection making no progress for connections.max.idle.ms; this deadline covers a whole response,
    /// so at the default of 10 minutes a reader slower than about 96 KB/s on a fetch of the full fetch.max.bytes
    /// (57.7 MB) is closed too.
    /// </summary>
    private async Task WriteResponsesAsync(ConnectionContext connection, ChannelReader<PendingResponse> unanswered, PipeWriter output, CancellationTokenSource closing, int maxIdleMs, OwedResponses owed)
    {
        var stalled = new CancellationTokenSource();
        // With the socket at hand, responses are sent straight from their own buffers and a fetch's batches from
        // where they lie (ResponseSegments), instead of being copied into the transport's output pipe first.
        System.Net.Sockets.Socket? socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket;
        ResponseSegments? segments = socket is null ? null : new ResponseSegments();

        void CloseStalled()
        {
            LogWriteStalled(logger, connection.ConnectionId, maxIdleMs);
            metrics.ConnectionClosed("write_stalled");
            connection.Abort(new ConnectionAbortedException("A response could not be sent for connections.max.idle.ms."));
        }

        try
        {
            await foreach (PendingResponse pending in unanswered.ReadAllAsync(CancellationToken.None))
            {
                IApiMessage? response;
                try
                {
                    response = await pending.Response;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (CloseConnectionException e)
                {
                    LogClosedByHandler(logger, connection.ConnectionId, pending.Api, e.Message);
                    metrics.ConnectionClosed(e.Reason);
                    metrics.Request(pending.Api, System.Diagnostics.Stopwatch.GetElapsedTime(pending.Started).TotalMilliseconds);
                    return;
                }
                catch (Exception e)
                {
                    // A handler bug must not take the broker down; the client sees a closed connection and retries. It is
                    // counted, so a dashboard shows what the log says (clients reconnecting in a loop).
                    LogHandlerFailed(logger, e, connection.ConnectionId, pending.Api, pending.Version);
                    metrics.ConnectionClosed("handler_failed");
                    metrics.Request(pending.Api, System.Diagnostics.Stopwatch.GetElapsedTime(pending.Started).TotalMilliseconds);
                    return;
                }

                if (response is not null && socket is not null && segments is not null)
                {
                    metrics.Response(pending.Api, response, pending.Version);
                    RequestFrame.WriteResponse(segments, pending.CorrelationId, response, pending.Version);
                    if (!await SendAsync(socket, segments, maxIdleMs))
                    {
                        // The client has not taken the response for the whole deadline. The send may still hold the
                        // chunks, so they are not released: the GC takes them with the connection.
                        CloseStalled();
                        return;
                    }

                    segments.Release();
                }
                else if (response is not null)
                {
                    metrics.Response(pending.Api, response, pending.Version);
                    RequestFrame.WriteResponse(output, pending.CorrelationId, response, pending.Version);
                    ValueTask<FlushResult> flushing = output.FlushAsync(stalled.Token);
                    FlushResult flushed;
                    if (flushing.IsCompleted)
                    {
                        flushed = flushing.Result;
                    }
                    else
                    {
                        // Only a flush that waits for the client gets a deadline (no timer for the usual, immediate one).
                        stalled.CancelAfter(maxIdleMs);
                        try
                        {
                            flushed = await flushing;
                        }
                        catch (OperationCanceledException)
                        {
                            CloseStalled();
                            return;
                        }

                        if (!stalled.TryReset())
                        {
                            // The deadline passed just as the flush finished: the next flush needs a source not cancelled.
                            stalled.Dispose();
                            stalled = new CancellationTokenSource();
                        }
                    }

                    if (flushed.IsCompleted || flushed.IsCanceled)
                    {
                        return;
                    }
                }

                metrics.Request(pending.Api, System.Diagnostics.Stopwatch.GetElapsedTime(pending.Started).TotalMilliseconds);
                owed.Done();
            }
        }
        catch (Exception e) when (e is ConnectionResetException or ConnectionAbortedException or InvalidOperationException or ObjectDisposedException or IOException or System.Net.Sockets.SocketException)
        {
            // The client went away while we were answering.
            LogWriteStopped(logger, connection.ConnectionId, e.Message);
        }
        finally
        {
            stalled.Dispose();

            // Stops the reading loop too if it is still running (handler failure or a closed output).
            await closing.CancelAsync();
        }
    }

    /// <summary>
    /// Sends a response's buffers, all of them (a gathered send may take only part), within <paramref name="maxIdleMs"/>;
    /// false when the client did not take it in time. At most <see cref="MaxBuffersPerSend"/> buffers go per call.
    /// </summary>
    private static async Task<bool> SendAsync(System.Net.Sockets.Socket socket, ResponseSegments response, int maxIdleMs)
    {
        List<ArraySegment<byte>> buffers = response.Segments;
        Task sending = SendAllAsync(socket, buffers);
        if (!sending.IsCompleted)
        {
            try
            {
                await sending.WaitAsync(TimeSpan.FromMilliseconds(maxIdleMs));
            }
            catch (TimeoutException)
            {
                // Observed later by nobody: the abort that follows fails the send.
                _ = sending.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
                return false;
            }
        }

        await sending;
        return true;
    }

    /// <summary>The most buffers one gathered send is given, so one call's buffer list stays small.</summary>
    private const int MaxBuffersPerSend = 256;

    private static async Task SendAllAsync(System.Net.Sockets.Socket socket, List<ArraySegment<byte>> buffers)
    {
        var batch = new List<ArraySegment<byte>>(Math.Min(buffers.Count, MaxBuffersPerSend));
        int next = 0;
        while (next < buffers.Count || batch.Count > 0)
        {
            while (batch.Count < MaxBuffersPerSend && next < buffers.Count)
            {
                batch.Add(buffers[next++]);
            }

            int sent = await socket.SendAsync(batch, System.Net.Sockets.SocketFlags.None).ConfigureAwait(false);
            if (sent <= 0)
            {
                throw new IOException("The socket took no bytes of a response.");
            }

            // Drop what went out; a buffer sent in part stays with its remainder.
            int whole = 0;
            while (whole < batch.Count && sent >= batch[whole].Count)
            {
                sent -= batch[whole].Count;
                whole++;
            }

            batch.RemoveRange(0, whole);
            if (sent > 0)
            {
                batch[0] = batch[0].Slice(sent);
            }
        }
    }

    /// <summary>A request whose response is still to be written, in the order the requests came.</summary>
    private readonly record struct PendingResponse(Task<IApiMessage?> Response, ApiKey Api, int CorrelationId, short Version, long Started);

    private static int ReadCorrelationId(ReadOnlySequence<byte> frame)
    {
        Span<byte> header = stackalloc byte[8];
        frame.Slice(0, 8).CopyTo(header);
        return BinaryPrimitives.ReadInt32BigEndian(header[4..]);
    }

    private sealed class FrameTooLargeException(string message) : Exception(message);

    [LoggerMessage(Level = LogLevel.Information, Message = "Closing connection {ConnectionId} after {Api}: {Reason}")]
    private static partial void LogClosedByHandler(ILogger logger, string connectionId, ApiKey api, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Connection {ConnectionId} from {Remote}")]
    private static partial void LogConnected(ILogger logger, string connectionId, System.Net.EndPoint? remote);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Connection {ConnectionId} closed")]
    private static partial void LogDisconnected(ILogger logger, string connectionId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connection {ConnectionId} idle for {IdleMs} ms; closing")]
    private static partial void LogIdleClosed(ILogger logger, string connectionId, int idleMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connection {ConnectionId}: the client has not taken a response for {IdleMs} ms; closing")]
    private static partial void LogWriteStalled(ILogger logger, string connectionId, int idleMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connection {ConnectionId}: closed, the broker is stopping")]
    private static partial void LogClosedForShutdown(ILogger logger, string connectionId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection {ConnectionId}: protocol violation, closing: {Reason}")]
    private static partial void LogProtocolViolation(ILogger logger, string connectionId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Connection {ConnectionId}: API key {ApiKey} version {Version} is not served")]
    private static partial void LogUnsupportedVersion(ILogger logger, string connectionId, short apiKey, short version);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Connection {ConnectionId}: responses stopped: {Reason}")]
    private static partial void LogWriteStopped(ILogger logger, string connectionId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Connection {ConnectionId}: {Api} v{Version} handler failed; closing the connection")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception, string connectionId, ApiKey api, short version);
}
