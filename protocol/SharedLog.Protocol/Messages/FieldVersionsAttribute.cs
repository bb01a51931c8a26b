namespace SharedLog.Protocol.Messages;

/// <summary>
/// On a generated property whose field the spec leaves out of some of the message's valid versions: the versions that
/// carry it (<see cref="Highest"/> is <see cref="short.MaxValue"/> when open-ended). At other versions the property keeps
/// its default and is neither read nor written. A property without it is present at every valid version.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = false)]
public sealed class FieldVersionsAttribute(short lowest, short highest) : Attribute
{
    public short Lowest { get; } = lowest;

    public short Highest { get; } = highest;

    public bool Contains(short version) => version >= Lowest && version <= Highest;
}
