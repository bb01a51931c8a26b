namespace SharedLog.Contracts.Model;

/// <summary>The classes a topic can be in; each brings defaults a contract may override.</summary>
public enum TopicClass
{
    Raw,
    Certified,
    Sensitive,
    Quarantine,
    Remediation,
}

/// <summary>What the audit topic (<c>_contract_audit</c>) records about a contract, each level including the ones before it.</summary>
public enum AuditLevel
{
    /// <summary>Every apply, rollback and delete, with who, when and the diff (always written).</summary>
    Changes,

    /// <summary>Also the contract's enforcement counts (records by outcome) in the periodic summary.</summary>
    Summary,

    /// <summary>Also, in the periodic summary, its violations by rule, kind of failure and action.</summary>
    Violations,
}

/// <summary>What the gate does with a batch holding records that break the contract.</summary>
public enum FailureAction
{
    /// <summary>The batch fails with INVALID_RECORD, naming each bad record.</summary>
    Reject,

    /// <summary>Bad records go to the quarantine topic; good ones are stored in place.</summary>
    Quarantine,

    /// <summary>Everything is stored; bad records carry a violation header.</summary>
    Flag,

    /// <summary>Shadow mode: everything is stored unchanged; only the metrics count failures.</summary>
    Observe,
}

public enum SubjectNameStrategy
{
    TopicNameStrategy,
    RecordNameStrategy,
    TopicRecordNameStrategy,
}

public enum PrivacyAction
{
    Redact,
    Hash,
    Drop,
}

/// <summary>
/// A contract as written in a contract file (YAML, or the same document as JSON through the REST API).
/// Property names are the file's keys in camelCase; see docs/contracts.md.
/// </summary>
public sealed class ContractDocument
{
    /// <summary>The contract's name; defaults to <see cref="Topic"/>.</summary>
    public string? Name { get; set; }

    /// <summary>A topic name, or a pattern where '*' matches any run of characters.</summary>
    public string? Topic { get; set; }

    public string? Class { get; set; }

    public string? Owner { get; set; }

    public string? Description { get; set; }

    public SchemaBinding? Key { get; set; }

    public SchemaBinding? Value { get; set; }

    public List<RuleDocument?>? Rules { get; set; }

    public List<PrivacyDocument?>? Privacy { get; set; }

    public string? OnFailure { get; set; }

    public string? QuarantineTopic { get; set; }

    /// <summary>allow (default) or reject: what happens to records with a null value.</summary>
    public string? Tombstones { get; set; }

    /// <summary>Compatibility level the contract asks of its subjects; defaults by class.</summary>
    public string? Compatibility { get; set; }

    /// <summary>How long the governed topics keep records unless a topic sets <c>retention.ms</c>: "7d", "12h", "infinite"...; defaults by class.</summary>
    public string? Retention { get; set; }

    /// <summary>
    /// Most bytes each partition of the governed topics keeps unless a topic sets <c>retention.bytes</c>: "10GiB", "500MiB",
    /// "infinite"...; unset, the broker's default (-1, no limit) applies.
    /// </summary>
    public string? RetentionBytes { get; set; }

    /// <summary>changes, summary or violations: what the audit topic records about this contract; defaults by class.</summary>
    public string? Audit { get; set; }
}

/// <summary>The registry subject a key or value must be serialized with.</summary>
public sealed class SchemaBinding
{
    /// <summary>Explicit subject; by default derived from the strategy (TopicNameStrategy: "&lt;topic&gt;-value").</summary>
    public string? Subject { get; set; }

    public string? Strategy { get; set; }

    /// <summary>Pinned versions: "3", "2-5", "&gt;=2".</summary>
    public string? Versions { get; set; }

    /// <summary>A local schema file (relative to the contract file) that <c>contracts validate</c> checks offline and against the registry.</summary>
    public string? SchemaFile { get; set; }

    /// <summary>AVRO (default), JSON or PROTOBUF: the language of <see cref="SchemaFile"/>.</summary>
    public string? SchemaType { get; set; }

    /// <summary>
    /// The registered schemas <see cref="SchemaFile"/> refers to (a Protobuf import, an Avro named type, a JSON <c>$ref</c>),
    /// as Confluent's API lists them: <c>contracts validate --registry</c> fetches them to read the file.
    /// </summary>
    public List<SchemaReferenceDocument?>? References { get; set; }
}

/// <summary>One reference of a schema file: the name the file uses for it, and the registered subject version it is.</summary>
public sealed class SchemaReferenceDocument
{
    public string? Name { get; set; }

    public string? Subject { get; set; }

    public int? Version { get; set; }
}

public sealed class RuleDocument
{
    public string? Name { get; set; }

    /// <summary>A CEL expression over value, key, headers, topic, partition and timestamp.</summary>
    public string? Expr { get; set; }

    public string? Message { get; set; }
}

public sealed class PrivacyDocument
{
    /// <summary>A dotted field path (lists are walked element by element).</summary>
    public string? Field { get; set; }

    /// <summary>A schema tag such as PII (Avro field property / JSON Schema keyword "confluent:tags").</summary>
    public string? Tag { get; set; }

    public string? Action { get; set; }
}
