namespace SharedLog.Storage.Metadata;

/// <summary>No partition has this stream id (never created, or its topic was deleted).</summary>
public sealed class UnknownStreamException(long streamId) : StreamRefusedException(streamId, $"Stream {streamId} does not exist.");
