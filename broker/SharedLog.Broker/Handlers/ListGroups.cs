// ListGroups, versions 0-5. Groups known to the coordinator and groups with committed offsets; v4+
// filters by state (KIP-518), v5+ by type (KIP-848: all groups here are "classic").
using SharedLog.Broker.Coordinators;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;
using SharedLog.Storage.Metadata;

namespace SharedLog.Broker.Handlers;

public sealed class ListGroupsHandler(GroupCoordinator groups, IMetadataStore metadata) : IApiHandler
{
    public ApiKey Api => ApiKey.ListGroups;

    public short MinVersion => 0;

    public short MaxVersion => ApiMessages.HighestVersion(ApiKey.ListGroups);

    public async ValueTask<IApiMessage?> HandleAsync(RequestContext context, IApiMessage request, CancellationToken cancellationToken)
    {
        var body = (ListGroupsRequest)request;
        var states = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string id in await metadata.ListGroupsAsync(cancellationToken))
        {
            states[id] = "Empty";
        }

        foreach (ConsumerGroup group in groups.All)
        {
            states[group.GroupId] = group.State.ToString();
        }

        var response = new ListGroupsResponse();
        foreach ((string id, string state) in states.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (body.StatesFilter.Count > 0 && !body.StatesFilter.Contains(state, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            if (body.TypesFilter.Count > 0 && !body.TypesFilter.Contains("classic", StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            response.Groups.Add(new ListGroupsResponse.ListedGroup { GroupId = id, ProtocolType = "consumer", GroupState = state, GroupType = "classic" });
        }

        return response;
    }
}
