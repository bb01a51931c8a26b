using Microsoft.Extensions.Logging;
using SharedLog.Protocol;

namespace SharedLog.Broker.Handlers;

/// <summary>
/// Logs produce refusals, which come in storms: retriable ones (KAFKA_STORAGE_ERROR while uploads catch up,
/// REQUEST_TIMED_OUT past a request's bytes bound) from every producer retrying every partition, the others from a
/// producer that keeps sending what the broker refuses (malformed or oversized batches, sequence errors). The first of a
/// 10 s window is logged at once, the rest of the window as one line with their count by error code when the window ends
/// (a timer, so a storm that stops is still reported whole).
/// </summary>
internal sealed partial class RefusalLog(ILogger logger, bool retriable) : IDisposable
{
    private readonly string _kind = retriable ? "retriable" : "not retriable";
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);
    private readonly Lock _sync = new();
    private long _windowStart = long.MinValue;
    private long _held;
    private (string Topic, int Partition, ErrorCode Error, string Reason) _lastHeld;

    // Per error code, the refusals held in the window: a summary naming only the last one's code hid the others.
    private readonly Dictionary<ErrorCode, long> _heldByError = [];
    private Timer? _flush;
    private bool _disposed;

    public void Add(string topic, int partition, ErrorCode error, string reason)
    {
        bool logNow = false;
        lock (_sync)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (_held == 0 && (_windowStart == long.MinValue || System.Diagnostics.Stopwatch.GetElapsedTime(_windowStart, now) >= Window))
            {
                _windowStart = now;
                logNow = true;
            }
            else
            {
                if (_held++ == 0 && !_disposed)
                {
                    TimeSpan left = Window - System.Diagnostics.Stopwatch.GetElapsedTime(_windowStart, now);
                    _flush ??= new Timer(static state => ((RefusalLog)state!).Flush(disposing: false), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                    _flush.Change(left > TimeSpan.Zero ? left : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
                }

                _lastHeld = (topic, partition, error, reason);
                System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_heldByError, error, out _)++;
            }
        }

        if (logNow)
        {
            LogRefused(logger, topic, partition, KafkaName(error), _kind, reason);
        }
    }

    /// <summary>
    /// Logs what the window holds now, while logging is still there, and stops a pending summary (or one already firing)
    /// from logging after the host has gone.
    /// </summary>
    public void Dispose() => Flush(disposing: true);

    private void Flush(bool disposing)
    {
        long held;
        (string Topic, int Partition, ErrorCode Error, string Reason) last;
        string byError;
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            if (disposing)
            {
                _disposed = true;
                _flush?.Dispose();
                _flush = null;
            }

            held = _held;
            last = _lastHeld;
            byError = string.Join(", ", _heldByError.Select(e => $"{KafkaName(e.Key)}: {e.Value}").Order(StringComparer.Ordinal));
            _heldByError.Clear();
            _held = 0;
            _windowStart = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        if (held > 0)
        {
            LogRefusedMore(logger, held, _kind, (int)Window.TotalSeconds, byError, last.Topic, last.Partition, KafkaName(last.Error), last.Reason);
        }
    }

    /// <summary>An error code as Kafka's protocol names it (KAFKA_STORAGE_ERROR), which is what users search for.</summary>
    private static string KafkaName(ErrorCode error)
    {
        string name = error.ToString();
        var kafka = new System.Text.StringBuilder(name.Length + 8);
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                kafka.Append('_');
            }

            kafka.Append(char.ToUpperInvariant(name[i]));
        }

        return kafka.ToString();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Produce to {Topic}-{Partition} refused with {Error} ({Kind}): {Reason} Further such refusals within 10 s are logged as one line.")]
    private static partial void LogRefused(ILogger logger, string topic, int partition, string error, string kind, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Refusals} more produce(s) refused ({Kind}) within {Seconds} s ({ByError}); the last to {Topic}-{Partition} refused with {Error}: {Reason}")]
    private static partial void LogRefusedMore(ILogger logger, long refusals, string kind, int seconds, string byError, string topic, int partition, string error, string reason);
}
