using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SharedLog.Contracts.Evidence;

/// <summary>
/// Every interval, writes the enforcement counts of the window (records by topic, contract version and
/// outcome; and, for contracts at audit level violations, violations by partition, rule, kind and action, with the offsets
/// of the stored ones) to the audit journal
/// (<c>_contract_audit</c>) as one JSON record, so any Kafka client can
/// read what the gate did without scraping metrics. Quiet windows write nothing. A failed write keeps its counts
/// for the next window (which then starts where the failed one did), and the last window is written at shutdown.
/// </summary>
public sealed partial class EnforcementSummaryWriter(ContractMetrics metrics, IJournal audit, ILogger<EnforcementSummaryWriter> logger)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// Most violation lines in one summary (about 200 bytes each): a window with more lists the first ones and says how many
    /// it left out, so the record stays far below the largest one the audit topic takes and a write never fails for its size.
    /// </summary>
    public const int MaxViolationLines = 2_000;

    /// <summary>How long the shutdown's last summary may take (the broker stops accepting requests first, storage after).</summary>
    private static readonly TimeSpan FinalWriteTimeout = TimeSpan.FromSeconds(10);

    public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        DateTimeOffset windowStart = DateTimeOffset.UtcNow;
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                windowStart = await WriteOnceAsync(windowStart, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        // Stopping: the counts since the last summary would otherwise be lost with the process.
        try
        {
            await WriteOnceAsync(windowStart, CancellationToken.None).WaitAsync(FinalWriteTimeout, CancellationToken.None);
        }
        catch (TimeoutException e)
        {
            LogFailed(e);
        }
    }

    /// <summary>Writes the summary of the window that started at <paramref name="windowStart"/>; returns the next window's start.</summary>
    /// <param name="cancellationToken">Stops a summary not yet begun (the last one, written at stop, takes its counts); one begun is written whole.</param>
    public async Task<DateTimeOffset> WriteOnceAsync(DateTimeOffset windowStart, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        DateTimeOffset windowEnd = DateTimeOffset.UtcNow;
        Dictionary<(string Topic, int Version, string Outcome), long> counts = metrics.TakeWindow();
        Dictionary<ViolationKey, ViolationSpan> violations = metrics.TakeViolationWindow();
        if (counts.Count == 0 && violations.Count == 0)
        {
            return windowEnd;
        }

        var summary = new Dictionary<string, object?>
        {
            ["type"] = "enforcement-summary",
            ["windowStart"] = windowStart,
            ["windowEnd"] = windowEnd,
            ["counts"] = counts
                .OrderBy(c => c.Key.Topic, StringComparer.Ordinal).ThenBy(c => c.Key.Outcome, StringComparer.Ordinal)
                .Select(c => new Dictionary<string, object> { ["topic"] = c.Key.Topic, ["contractVersion"] = c.Key.Version, ["outcome"] = c.Key.Outcome, ["records"] = c.Value })
                .ToList(),
        };
        if (violations.Count > 0)
        {
            // Contracts at audit level violations: what broke, by partition, rule, kind of failure and action, besides the counts; and
            // where the records are, so a bad period can be found and replayed by offset.
            summary["violations"] = violations
                .OrderBy(v => v.Key.Topic, StringComparer.Ordinal).ThenBy(v => v.Key.Partition).ThenBy(v => v.Key.ContractVersion).ThenBy(v => v.Key.Rule, StringComparer.Ordinal).ThenBy(v => v.Key.Reason, StringComparer.Ordinal).ThenBy(v => v.Key.Action, StringComparer.Ordinal)
                .Take(MaxViolationLines)
                .Select(v => ViolationLine(v.Key, v.Value))
                .ToList();
            if (violations.Count > MaxViolationLines)
            {
                summary["violationLinesOmitted"] = violations.Count - MaxViolationLines;
            }
        }

        try
        {
            // Not cancellable: an append given up on may still be stored, and its counts, put back, would be written again.
            await audit.AppendAsync([new JournalEntry("enforcement-summary"u8.ToArray(), JsonSerializer.SerializeToUtf8Bytes(summary, Json))], CancellationToken.None);
        }
        catch (Exception e)
        {
            // Kept for the next window, which starts where this one did, so no count and no stretch of time goes missing.
            metrics.ReturnWindow(counts);
            metrics.ReturnViolationWindow(violations);
            if (e is not OperationCanceledException)
            {
                LogFailed(e);
            }

            return windowStart;
        }

        return windowEnd;
    }

    private static Dictionary<string, object> ViolationLine(ViolationKey key, ViolationSpan span)
    {
        var line = new Dictionary<string, object>
        {
            ["topic"] = key.Topic,
            ["partition"] = key.Partition,
            ["contractVersion"] = key.ContractVersion,
            ["rule"] = key.Rule,
            ["reason"] = key.Reason,
            ["action"] = key.Action,
            ["records"] = span.Records,
        };
        if (span.FirstOffset >= 0)
        {
            line["firstOffset"] = span.FirstOffset;
            line["lastOffset"] = span.LastOffset;
        }

        return line;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Writing the enforcement summary to the audit topic failed")]
    private partial void LogFailed(Exception error);
}
