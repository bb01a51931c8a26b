namespace SharedLog.Protocol.Generator;

/// <summary>A spec version range: "none", "3+", "0-4" or "7".</summary>
public readonly record struct VersionRange(short Low, short High)
{
    public static readonly VersionRange None = new(1, 0);

    public bool IsEmpty => Low > High;

    public bool Contains(int version) => version >= Low && version <= High;

    public static VersionRange Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text) || text == "none")
        {
            return None;
        }

        text = text.Trim();
        if (text.EndsWith('+'))
        {
            return new VersionRange(short.Parse(text[..^1], System.Globalization.CultureInfo.InvariantCulture), short.MaxValue);
        }

        int dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash > 0)
        {
            return new VersionRange(
                short.Parse(text[..dash], System.Globalization.CultureInfo.InvariantCulture),
                short.Parse(text[(dash + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        }

        short single = short.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        return new VersionRange(single, single);
    }

    public VersionRange Intersect(VersionRange other) =>
        new(Math.Max(Low, other.Low), Math.Min(High, other.High));

    public override string ToString() =>
        IsEmpty ? "none" : High == short.MaxValue ? $"{Low}+" : Low == High ? $"{Low}" : $"{Low}-{High}";
}
