// ListGroups, versions 0-5. Groups known to the coordinator and groups with committed offsets; v4+
// filters by state (KIP-518), v5+ by type (KIP-848: all groups here are "classic"). Each group is listed with
// its protocol type, as Kafka: "consumer" for consumer groups, "connect" for Kafka Connect workers, kept after the
// members are gone (and across restarts), and empty for a group that only ever committed offsets (a simple group).
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
        var listed = new Dictionary<string, (string State, string ProtocolType)>(StringComparer.Ordinal);
        Func<string, string> protocolTypeWithoutMembers = await ProtocolTypesWithoutMembersAsync(groups, metadata, cancellationToken);
        foreach (string id in await metadata.ListGroupsAsync(cancellationToken))
        {
            listed[id] = ("Empty", protocolTypeWithoutMembers(id));
        }

        foreach (ConsumerGroup group in groups.All)
        {
            listed[group.GroupId] = (group.State.ToString(), group.ProtocolType ?? string.Empty);
        }

        var response = new ListGroupsResponse();
        // Every group here is a classic group, so a types filter without "classic" lists none.
        if (body.TypesFilter.Count > 0 && !body.TypesFilter.Contains("classic", StringComparer.OrdinalIgnoreCase))
        {
            return response;
        }

        HashSet<string>? states = body.StatesFilter.Count > 0 ? new HashSet<string>(body.StatesFilter, StringComparer.OrdinalIgnoreCase) : null;
        foreach ((string id, (string state, string protocolType)) in listed.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (states is not null && !states.Contains(state))
            {
                continue;
            }

            response.Groups.Add(new ListGroupsResponse.ListedGroup { GroupId = id, ProtocolType = protocolType, GroupState = state, GroupType = "classic" });
        }

        return response;
    }

    /// <summary>
    /// The protocol type of a group no member is in: the one it had while it had members (in memory, or saved by offset
    /// expiry so it outlives a restart), or "" for a group that only commits offsets.
    /// </summary>
    internal static async Task<Func<string, string>> ProtocolTypesWithoutMembersAsync(GroupCoordinator groups, IMetadataStore metadata, CancellationToken cancellationToken)
    {
        Dictionary<string, string> saved = (await metadata.ListGroupStatesAsync(cancellationToken)).ToDictionary(s => s.GroupId, s => s.ProtocolType, StringComparer.Ordinal);
        return id => groups.Activity(id)?.ProtocolType ?? saved.GetValueOrDefault(id) ?? string.Empty;
    }
}
