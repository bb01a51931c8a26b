namespace SharedLog.Broker.Handlers;

/// <summary>
/// The authorized-operations bit fields Metadata and DescribeCluster return when asked (bit n set for ACL operation code
/// n). This broker has no authorizer (ACLs are not built), so, as Kafka without one, a client may do every operation
/// the resource supports; the field left at its default would read as "not asked for", and admin clients report none.
/// </summary>
internal static class AuthorizedOperations
{
    // Kafka's AclOperation codes.
    private const int Read = 3, Write = 4, Create = 5, Delete = 6, Alter = 7, Describe = 8, ClusterAction = 9, DescribeConfigs = 10, AlterConfigs = 11, IdempotentWrite = 12;

    /// <summary>What Kafka supports on a topic: read, write, create, delete, alter, describe, describe and alter configs.</summary>
    public const int Topic = (1 << Read) | (1 << Write) | (1 << Create) | (1 << Delete) | (1 << Alter) | (1 << Describe) | (1 << DescribeConfigs) | (1 << AlterConfigs);

    /// <summary>What Kafka supports on a consumer group: read, describe, delete (DescribeGroups v3+).</summary>
    public const int Group = (1 << Read) | (1 << Describe) | (1 << Delete);

    /// <summary>What Kafka supports on the cluster: create, cluster action, describe and alter configs, idempotent write, alter, describe.</summary>
    public const int Cluster = (1 << Create) | (1 << ClusterAction) | (1 << DescribeConfigs) | (1 << AlterConfigs) | (1 << IdempotentWrite) | (1 << Alter) | (1 << Describe);
}
