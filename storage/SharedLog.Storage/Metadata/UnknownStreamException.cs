namespace SharedLog.Storage.Metadata;

/// <summary>No partition has this stream id (never created, or its topic was deleted).</summary>
public sealed class UnknownStreamException(long streamId) : Exception($"Stream {streamId} does not exist.")
{
    public long StreamId { get; } = streamId;
}
