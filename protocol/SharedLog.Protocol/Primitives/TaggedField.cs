namespace SharedLog.Protocol;

/// <summary>A tagged field this version of SharedLog does not know, kept so it survives a round trip.</summary>
public sealed record RawTaggedField(int Tag, byte[] Data);
