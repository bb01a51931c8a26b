using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace SharedLog.Contracts.Evidence;

/// <summary>What one line of the summary's violations counts: a rule of a contract version broken on a topic partition, the kind of failure, the action taken.</summary>
public readonly record struct ViolationKey(string Topic, int Partition, int ContractVersion, string Rule, string Reason, string Action);

/// <summary>
/// How many records of a summary line broke the rule, and the first and last offset they have in their partition: where a
/// flagged or observed record is stored, or the gap a quarantined one left. -1 for records that were not stored (rejected).
/// </summary>
public readonly record struct ViolationSpan(long Records, long FirstOffset, long LastOffset)
{
    /// <summary>Both spans' records, from the earlier first offset to the later last one (offsets of stored records only).</summary>
    public ViolationSpan Merge(ViolationSpan other) => new(
        Records + other.Records,
        FirstOffset < 0 ? other.FirstOffset : other.FirstOffset < 0 ? FirstOffset : Math.Min(FirstOffset, other.FirstOffset),
        Math.Max(LastOffset, other.LastOffset));

    /// <summary>Adds <paramref name="span"/> to the one <paramref name="spans"/> holds for <paramref name="key"/>, or holds it there.</summary>
    public static void AddTo<TKey>(Dictionary<TKey, ViolationSpan> spans, TKey key, ViolationSpan span)
        where TKey : notnull
    {
        ref ViolationSpan known = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(spans, key, out bool exists);
        known = exists ? known.Merge(span) : span;
    }
}

/// <summary>
/// Enforcement evidence as OpenTelemetry instruments (exported by the broker on /metrics): records by
/// topic, contract version and outcome; violations by rule and kind of failure; schema ids seen; quarantine backlog and
/// oldest age (observed through a callback the broker provides). Counts are also kept in memory for
/// the periodic summary written to the audit topic.
/// </summary>
public sealed class ContractMetrics : IDisposable
{
    public const string MeterName = "SharedLog.Contracts";

    public const string Accepted = "accepted";
    public const string Rejected = "rejected";
    public const string Quarantined = "quarantined";
    public const string Flagged = "flagged";
    public const string ObservedFailing = "observed_failing";

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _records;
    private readonly Counter<long> _violations;
    private readonly Counter<long> _schemasSeen;
    private readonly Histogram<double> _gateDuration;
    private readonly Counter<long> _replayed;
    private readonly Lock _sync = new();
    private Dictionary<(string Topic, int Version, string Outcome), long> _window = [];
    private Dictionary<ViolationKey, ViolationSpan> _violationWindow = [];

    public ContractMetrics()
    {
        _records = _meter.CreateCounter<long>("sharedlog.contract.records", description: "Records through the contract gate, by topic, contract version and outcome");
        _violations = _meter.CreateCounter<long>("sharedlog.contract.violations", description: "Contract violations, by topic, contract version, rule, kind of failure (reason) and action taken");
        _replayed = _meter.CreateCounter<long>("sharedlog.contract.replay.records", description: "Quarantined records replayed, by quarantine topic, target topic and outcome (written, refused)");
        _schemasSeen = _meter.CreateCounter<long>("sharedlog.contract.schema.records", description: "Records checked, by topic, schema id, and the subject and version it is registered as");

        // The gate's time is what a contract adds to a produce; its buckets resolve tens of microseconds.
        _gateDuration = _meter.CreateHistogram("sharedlog.contract.gate.duration", unit: "ms", description: "Time the contract gate spent on one batch (decode, validate, rules, privacy, rebuild), by topic", tags: null, advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000],
        });
    }

    /// <summary>Counts records a replay wrote to <paramref name="target"/> or the target refused.</summary>
    public void Replayed(string quarantineTopic, string target, long written, long refused)
    {
        foreach ((string outcome, long count) in new[] { ("written", written), ("refused", refused) })
        {
            if (count > 0)
            {
                _replayed.Add(count, new KeyValuePair<string, object?>("quarantine_topic", quarantineTopic), new KeyValuePair<string, object?>("target", target), new KeyValuePair<string, object?>("outcome", outcome));
            }
        }
    }

    /// <summary>Records the gate's time on one batch.</summary>
    public void GateDuration(string topic, TimeSpan elapsed) =>
        _gateDuration.Record(elapsed.TotalMilliseconds, new KeyValuePair<string, object?>("topic", topic));

    /// <summary>Supplies (quarantine topic, backlog records, oldest record age in seconds) for the gauges.</summary>
    public void ObserveQuarantine(Func<IEnumerable<(string Topic, long Backlog, double OldestAgeSeconds)>> source)
    {
        _meter.CreateObservableGauge("sharedlog.contract.quarantine.backlog", () => source().Select(q => new Measurement<long>(q.Backlog, new KeyValuePair<string, object?>("topic", q.Topic))), description: "Records in each quarantine topic");
        _meter.CreateObservableGauge("sharedlog.contract.quarantine.oldest.age", () => source().Select(q => new Measurement<double>(q.OldestAgeSeconds, new KeyValuePair<string, object?>("topic", q.Topic))), unit: "s", description: "Age of the oldest record in each quarantine topic");
    }

    /// <param name="summarized">Whether the counts also go to the audit topic's periodic summary (the contract's audit level).</param>
    public void Records(string topic, int contractVersion, string outcome, long count, bool summarized = true)
    {
        if (count == 0)
        {
            return;
        }

        _records.Add(count, new KeyValuePair<string, object?>("topic", topic), new KeyValuePair<string, object?>("contract_version", contractVersion), new KeyValuePair<string, object?>("outcome", outcome));
        if (!summarized)
        {
            return;
        }

        lock (_sync)
        {
            CollectionsMarshalAdd(_window, (topic, contractVersion, outcome), count);
        }
    }

    /// <param name="violation">Its reason is a bounded kind of failure (see <c>ContractGate.ViolationLabel</c>), not the reason text; the
    /// metric leaves the partition out, the summary keeps it.</param>
    /// <param name="summarized">Whether the violation is also counted in the audit topic's periodic summary (audit level violations).</param>
    public void Violation(ViolationKey violation, ViolationSpan span, bool summarized = false)
    {
        TagList tags = new()
        {
            { "topic", violation.Topic },
            { "contract_version", violation.ContractVersion },
            { "rule", violation.Rule },
            { "reason", violation.Reason },
            { "action", violation.Action },
        };
        _violations.Add(span.Records, in tags);
        if (summarized)
        {
            lock (_sync)
            {
                ViolationSpan.AddTo(_violationWindow, violation, span);
            }
        }
    }


    public void SchemaSeen(string topic, int schemaId, string subject, int version, long records)
    {
        TagList tags = new()
        {
            { "topic", topic },
            { "schema_id", schemaId },
            { "subject", subject },
            { "version", version },
        };
        _schemasSeen.Add(records, in tags);
    }

    /// <summary>
    /// Holds the summary's windows while one batch's counts and violations are added (the adds enter the same lock again),
    /// so a summary takes all of a batch's evidence or none of it: its count lines and violation lines in one window.
    /// </summary>
    public Lock.Scope CountingOneBatch() => _sync.EnterScope();

    /// <summary>
    /// Counts, and violations (contracts at audit level violations), since the last call, for the periodic audit summary:
    /// taken together, so no batch's counts fall in one window and its violations in the next.
    /// </summary>
    public (Dictionary<(string Topic, int Version, string Outcome), long> Counts, Dictionary<ViolationKey, ViolationSpan> Violations) TakeWindows()
    {
        lock (_sync)
        {
            (Dictionary<(string Topic, int Version, string Outcome), long> counts, Dictionary<ViolationKey, ViolationSpan> violations) = (_window, _violationWindow);
            _window = [];
            _violationWindow = [];
            return (counts, violations);
        }
    }

    /// <summary>Puts violations taken by <see cref="TakeWindows"/> back (their summary could not be written).</summary>
    public void ReturnViolationWindow(Dictionary<ViolationKey, ViolationSpan> violations)
    {
        ArgumentNullException.ThrowIfNull(violations);
        lock (_sync)
        {
            foreach ((ViolationKey key, ViolationSpan span) in violations)
            {
                ViolationSpan.AddTo(_violationWindow, key, span);
            }
        }
    }

    /// <summary>Puts counts taken by <see cref="TakeWindows"/> back (their summary could not be written).</summary>
    public void ReturnWindow(Dictionary<(string Topic, int Version, string Outcome), long> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        lock (_sync)
        {
            foreach (((string, int, string) key, long count) in counts)
            {
                CollectionsMarshalAdd(_window, key, count);
            }
        }
    }

    public void Dispose() => _meter.Dispose();

    private static void CollectionsMarshalAdd(Dictionary<(string, int, string), long> counts, (string, int, string) key, long count) =>
        System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(counts, key, out _) += count;
}
