using Microsoft.Extensions.Logging;

namespace SharedLog.Broker.Handlers;

/// <summary>
/// Logs produce refusals with KAFKA_STORAGE_ERROR, which come in storms (every producer retrying every partition while
/// uploads catch up): the first of a 10 s window at once, the rest of the window as one line with their count when the
/// window ends (a timer, so a storm that stops is still reported whole).
/// </summary>
internal sealed partial class StorageRefusalLog(ILogger logger) : IDisposable
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(10);
    private readonly Lock _sync = new();
    private long _windowStart = long.MinValue;
    private long _held;
    private (string Topic, int Partition, string Reason) _lastHeld;
    private Timer? _flush;
    private bool _disposed;

    public void Add(string topic, int partition, string reason)
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
                    _flush ??= new Timer(static state => ((StorageRefusalLog)state!).Flush(disposing: false), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                    _flush.Change(left > TimeSpan.Zero ? left : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
                }

                _lastHeld = (topic, partition, reason);
            }
        }

        if (logNow)
        {
            LogRefused(logger, topic, partition, reason);
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
        (string Topic, int Partition, string Reason) last;
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
            _held = 0;
            _windowStart = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        if (held > 0)
        {
            LogRefusedMore(logger, held, (int)Window.TotalSeconds, last.Topic, last.Partition, last.Reason);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Produce to {Topic}-{Partition} refused with KAFKA_STORAGE_ERROR (retriable): {Reason} Further such refusals within 10 s are logged as one line.")]
    private static partial void LogRefused(ILogger logger, string topic, int partition, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Refusals} more produce(s) refused with KAFKA_STORAGE_ERROR (retriable) within {Seconds} s; the last to {Topic}-{Partition}: {Reason}")]
    private static partial void LogRefusedMore(ILogger logger, long refusals, int seconds, string topic, int partition, string reason);
}
