namespace SharedLog.Contracts;

/// <summary>
/// Topics only the broker writes: the schema registry's and the contract store's journals, and the audit topic.
/// Any Kafka client may read them; a client's produce to one is refused, as Kafka refuses appends to its internal
/// topics, because the journals are replayed at start and a forged record would change (or stop) the broker.
/// </summary>
public static class InternalTopics
{
    public const string Schemas = "_schemas";
    public const string Contracts = "_contracts";
    public const string ContractAudit = "_contract_audit";

    public static bool IsInternal(string topic) => topic is Schemas or Contracts or ContractAudit;

    /// <summary>Every internal topic's name.</summary>
    public static IReadOnlyList<string> All { get; } = [Schemas, Contracts, ContractAudit];
}
