using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SharedLog.Contracts.Evidence;

/// <summary>
/// Every interval, writes the enforcement counts of the window (records by topic, contract version and
/// outcome; and, for contracts at audit level violations, violations by partition, rule, kind and action, with the offsets
/// of the stored ones) to the audit journal (<c>_contract_audit</c>) as a JSON record (several, each a part, when one
/// cannot hold it), so any Kafka client can read what the gate did without scraping metrics. Quiet windows write nothing.
/// A failed write keeps its counts for the next window (which then starts where the failed one did), and the last window
/// is written at shutdown.
/// </summary>
public sealed partial class EnforcementSummaryWriter(ContractMetrics metrics, IJournal audit, ILogger<EnforcementSummaryWriter> logger)
{
    private static readonly JsonSerializerOptions Json = ReadableJson.Web();

    /// <summary>
    /// Most violation lines in one window's summary (about 200 bytes each): a window with more lists the first ones and says how
    /// many it left out. Counts are all listed; a summary too large for one record is written as several.
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

    /// <summary>
    /// Writes the summary of the window that started at <paramref name="windowStart"/>; returns the next window's start. A
    /// summary larger than one audit record holds (<see cref="IJournal.MaxAppendBytes"/>, at most 1 MiB) is written as
    /// several, each naming its <c>part</c> of <c>parts</c>; if one fails, the lines of it and of those after it are kept for
    /// the next window (the parts written stay), so a line is neither lost nor written twice.
    /// </summary>
    /// <param name="cancellationToken">Stops a summary not yet begun (the last one, written at stop, takes its counts); one begun is written whole.</param>
    public async Task<DateTimeOffset> WriteOnceAsync(DateTimeOffset windowStart, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        DateTimeOffset windowEnd = DateTimeOffset.UtcNow;
        (Dictionary<(string Topic, int Version, string Outcome), long> counts, Dictionary<ViolationKey, ViolationSpan> violations) = metrics.TakeWindows();
        if (counts.Count == 0 && violations.Count == 0)
        {
            return windowEnd;
        }

        // Contracts at audit level violations: what broke, by partition, rule, kind of failure and action, besides the counts; and
        // where the records are, so a bad period can be found and replayed by offset.
        var lines = new List<SummaryLine>(counts.Count + Math.Min(violations.Count, MaxViolationLines));
        foreach (KeyValuePair<(string Topic, int Version, string Outcome), long> count in counts
            .OrderBy(c => c.Key.Topic, StringComparer.Ordinal).ThenBy(c => c.Key.Outcome, StringComparer.Ordinal))
        {
            var line = new Dictionary<string, object> { ["topic"] = count.Key.Topic, ["contractVersion"] = count.Key.Version, ["outcome"] = count.Key.Outcome, ["records"] = count.Value };
            lines.Add(new SummaryLine(JsonSerializer.SerializeToUtf8Bytes(line, Json), count.Key, null));
        }

        foreach (KeyValuePair<ViolationKey, ViolationSpan> violation in violations
            .OrderBy(v => v.Key.Topic, StringComparer.Ordinal).ThenBy(v => v.Key.Partition).ThenBy(v => v.Key.ContractVersion).ThenBy(v => v.Key.Rule, StringComparer.Ordinal).ThenBy(v => v.Key.Reason, StringComparer.Ordinal).ThenBy(v => v.Key.Action, StringComparer.Ordinal)
            .Take(MaxViolationLines))
        {
            lines.Add(new SummaryLine(JsonSerializer.SerializeToUtf8Bytes(ViolationLine(violation.Key, violation.Value), Json), null, violation.Key));
        }

        int omitted = Math.Max(0, violations.Count - MaxViolationLines);
        List<(int First, int Count)> parts = Parts(lines, Math.Min(audit.MaxAppendBytes, MaxRecordBytes) - EnvelopeBytes);
        for (int part = 0; part < parts.Count; part++)
        {
            (int first, int count) = parts[part];
            byte[] record = SummaryRecord(windowStart, windowEnd, part, parts.Count, lines.GetRange(first, count), violations.Count > 0, part == parts.Count - 1 ? omitted : 0);
            try
            {
                // Not cancellable: an append given up on may still be stored, and its counts, put back, would be written again.
                await audit.AppendAsync([new JournalEntry(SummaryKey.ToArray(), record)], CancellationToken.None);
            }
            catch (Exception e)
            {
                // This part's lines and the later parts' are kept for the next window, which starts where this one did, so no count
                // and no stretch of time goes missing; the parts written are not written again.
                metrics.ReturnWindow(Unwritten(lines, first, counts, line => line.Count));
                metrics.ReturnViolationWindow(Unwritten(lines, first, violations, line => line.Violation));
                if (e is not OperationCanceledException)
                {
                    LogFailed(e);
                }

                return windowStart;
            }
        }

        return windowEnd;
    }

    /// <summary>A summary record's key.</summary>
    private static ReadOnlySpan<byte> SummaryKey => "enforcement-summary"u8;

    /// <summary>Largest summary record, whatever the journal takes: what a consumer with default settings reads in one fetch.</summary>
    private const int MaxRecordBytes = 1024 * 1024;

    /// <summary>Room for a record's key and the fields around its lines (type, window, part, the arrays and counts).</summary>
    private const int EnvelopeBytes = 512;

    /// <summary>One line of a summary, serialised, with the window entry it came from (a count or a violation).</summary>
    private sealed record SummaryLine(byte[] Json, (string Topic, int Version, string Outcome)? Count, ViolationKey? Violation);

    /// <summary>The lines cut into runs whose JSON fits <paramref name="budget"/> bytes each (a line larger than that alone in its run).</summary>
    private static List<(int First, int Count)> Parts(List<SummaryLine> lines, int budget)
    {
        var parts = new List<(int First, int Count)>();
        int first = 0;
        int bytes = 0;
        for (int i = 0; i < lines.Count; i++)
        {
            int size = lines[i].Json.Length + 1;
            if (i > first && bytes + size > budget)
            {
                parts.Add((first, i - first));
                (first, bytes) = (i, 0);
            }

            bytes += size;
        }

        parts.Add((first, lines.Count - first));
        return parts;
    }

    private static byte[] SummaryRecord(DateTimeOffset windowStart, DateTimeOffset windowEnd, int part, int parts, List<SummaryLine> lines, bool listsViolations, int omitted)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("type", "enforcement-summary");
            writer.WriteString("windowStart", windowStart);
            writer.WriteString("windowEnd", windowEnd);
            if (parts > 1)
            {
                writer.WriteNumber("part", part + 1);
                writer.WriteNumber("parts", parts);
            }

            writer.WriteStartArray("counts");
            foreach (SummaryLine line in lines)
            {
                if (line.Count is not null)
                {
                    writer.WriteRawValue(line.Json, skipInputValidation: true);
                }
            }

            writer.WriteEndArray();
            if (listsViolations)
            {
                writer.WriteStartArray("violations");
                foreach (SummaryLine line in lines)
                {
                    if (line.Violation is not null)
                    {
                        writer.WriteRawValue(line.Json, skipInputValidation: true);
                    }
                }

                writer.WriteEndArray();
            }

            if (omitted > 0)
            {
                writer.WriteNumber("violationLinesOmitted", omitted);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The entries of <paramref name="window"/> whose lines are not written: from line <paramref name="first"/> on, and any never listed.</summary>
    private static Dictionary<TKey, TValue> Unwritten<TKey, TValue>(List<SummaryLine> lines, int first, Dictionary<TKey, TValue> window, Func<SummaryLine, TKey?> keyOf)
        where TKey : struct
    {
        var unwritten = new Dictionary<TKey, TValue>(window);
        for (int i = 0; i < first; i++)
        {
            if (keyOf(lines[i]) is { } written)
            {
                unwritten.Remove(written);
            }
        }

        return unwritten;
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
