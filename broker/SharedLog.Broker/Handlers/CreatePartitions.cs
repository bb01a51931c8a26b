// CreatePartitions, versions 0-3. Raises a topic's partition count; every partition is led by this
// broker, so explicit replica assignments are checked as Kafka's controller checks them (one per new
// partition, registered brokers only) and otherwise have no effect. validateOnly checks without changing.
using SharedLog.Broker.Cluster;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Handlers;

public sealed class CreatePartitionsHandler(TopicService topics) : IApiHandler
{
    public ApiKey Api => ApiKey.CreatePartitions;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.CreatePartitions);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (CreatePartitionsRequest)request;
        var response = new CreatePartitionsResponse();
        // As Kafka: a topic named more than once is answered once, refused, and not grown.
        HashSet<string> duplicated = RequestEntries.Repeated(body.Topics.Select(t => t.Name), StringComparer.Ordinal);
        foreach (string name in duplicated)
        {
            response.Results.Add(new CreatePartitionsResponse.CreatePartitionsTopicResult { Name = name, ErrorCode = (short)ErrorCode.InvalidRequest, ErrorMessage = "Duplicate topic name." });
        }

        foreach (CreatePartitionsRequest.CreatePartitionsTopic topic in body.Topics)
        {
            if (duplicated.Contains(topic.Name))
            {
                continue;
            }

            (ErrorCode error, string? message) = AssignmentProblem(topic) is { } problem
                ? (ErrorCode.InvalidReplicaAssignment, problem)
                : await topics.AddPartitionsAsync(topic.Name, topic.Count, body.ValidateOnly, cancellationToken);
            response.Results.Add(new CreatePartitionsResponse.CreatePartitionsTopicResult { Name = topic.Name, ErrorCode = (short)error, ErrorMessage = message });
        }

        return response;
    }

    /// <summary>
    /// What is wrong with the manual assignments of a real increase (anything else is refused by the count checks first,
    /// as Kafka orders them): one replica list per new partition, each as many replicas as the existing partitions (one).
    /// </summary>
    private string? AssignmentProblem(CreatePartitionsRequest.CreatePartitionsTopic topic)
    {
        if (topic.Assignments is not { } assignments || topics.Find(topic.Name) is not { } existing || topic.Count <= existing.Partitions.Count)
        {
            return null;
        }

        int additional = topic.Count - existing.Partitions.Count;
        if (assignments.Count != additional)
        {
            return $"Attempted to add {additional} additional partition(s), but only {assignments.Count} assignment(s) were specified.";
        }

        foreach (CreatePartitionsRequest.CreatePartitionsAssignment assignment in assignments)
        {
            if (topics.ReplicaListProblem(assignment.BrokerIds, previousCount: 1) is { } problem)
            {
                return problem;
            }
        }

        return null;
    }
}
