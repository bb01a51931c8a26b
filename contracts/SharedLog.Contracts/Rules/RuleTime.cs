using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace SharedLog.Contracts.Rules;

/// <summary>Timestamps and durations: RFC 3339 and Go-style duration text, range-checked arithmetic, calendar accessors.</summary>
internal static class RuleTime
{
    public const long MinTimestampSeconds = -62135596800; // 0001-01-01T00:00:00Z
    public const long MaxTimestampSeconds = 253402300799; // 9999-12-31T23:59:59Z
    public const long MaxDurationSeconds = 315576000000; // about 10,000 years, as google.protobuf.Duration
    private const int NanosPerSecond = 1_000_000_000;
    private const int MaxCachedZones = 64;

    private static readonly ConcurrentDictionary<string, TimeZoneInfo?> Zones = new(StringComparer.Ordinal);

    public static RuleValue Timestamp(long seconds, long nanos)
    {
        seconds += Math.DivRem(nanos, NanosPerSecond, out var rest);
        if (rest < 0)
        {
            seconds--;
            rest += NanosPerSecond;
        }

        return seconds is < MinTimestampSeconds or > MaxTimestampSeconds
            ? RuleValue.Error("timestamp out of range")
            : RuleValue.Timestamp(seconds, (int)rest);
    }

    public static RuleValue Duration(long seconds, long nanos)
    {
        seconds += Math.DivRem(nanos, NanosPerSecond, out var rest);
        // seconds and nanos carry the same sign
        if (seconds > 0 && rest < 0)
        {
            seconds--;
            rest += NanosPerSecond;
        }
        else if (seconds < 0 && rest > 0)
        {
            seconds++;
            rest -= NanosPerSecond;
        }

        return seconds is < -MaxDurationSeconds or > MaxDurationSeconds
            ? RuleValue.Error("duration out of range")
            : RuleValue.Duration(seconds, (int)rest);
    }

    public static RuleValue AddDuration(in RuleValue timestamp, in RuleValue duration, bool subtract)
    {
        var sign = subtract ? -1 : 1;
        return Timestamp(timestamp.Seconds + (sign * duration.Seconds), timestamp.Nanos + ((long)sign * duration.Nanos));
    }

    public static RuleValue AddDurations(in RuleValue a, in RuleValue b, bool subtract)
    {
        var sign = subtract ? -1 : 1;
        return Duration(a.Seconds + (sign * b.Seconds), a.Nanos + ((long)sign * b.Nanos));
    }

    /// <summary>The difference of two timestamps; like CEL's reference implementation it must fit in 64-bit nanoseconds.</summary>
    public static RuleValue Difference(in RuleValue a, in RuleValue b)
    {
        var seconds = a.Seconds - b.Seconds;
        var nanos = (long)a.Nanos - b.Nanos;
        var total = (Int128)seconds * NanosPerSecond + nanos;
        if (total > long.MaxValue || total < long.MinValue)
        {
            return RuleValue.Error("duration out of range");
        }

        return Duration(seconds, nanos);
    }

    /// <summary>Parses RFC 3339 text such as 2009-02-13T23:31:30.123Z or 2009-02-13T23:31:30+01:00.</summary>
    public static RuleValue ParseTimestamp(string text)
    {
        var s = text.AsSpan();
        if (s.Length < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':'
            || !TryDigits(s[..4], out var year) || !TryDigits(s.Slice(5, 2), out var month) || !TryDigits(s.Slice(8, 2), out var day)
            || !TryDigits(s.Slice(11, 2), out var hour) || !TryDigits(s.Slice(14, 2), out var minute) || !TryDigits(s.Slice(17, 2), out var second))
        {
            return RuleValue.Error($"timestamp '{text}' is not RFC 3339 text");
        }

        var position = 19;
        long nanos = 0;
        if (position < s.Length && s[position] == '.')
        {
            position++;
            var digits = 0;
            while (position < s.Length && char.IsAsciiDigit(s[position]))
            {
                if (digits < 9)
                {
                    nanos = (nanos * 10) + (s[position] - '0');
                }

                digits++;
                position++;
            }

            if (digits == 0)
            {
                return RuleValue.Error($"timestamp '{text}' is not RFC 3339 text");
            }

            for (var i = digits; i < 9; i++)
            {
                nanos *= 10;
            }
        }

        long offsetSeconds;
        var zone = s[position..];
        if (zone is "Z" or "z")
        {
            offsetSeconds = 0;
        }
        else if (zone.Length == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':' && TryDigits(zone.Slice(1, 2), out var offsetHours) && TryDigits(zone.Slice(4, 2), out var offsetMinutes)
            && offsetHours <= 23 && offsetMinutes <= 59)
        {
            offsetSeconds = ((offsetHours * 3600) + (offsetMinutes * 60)) * (zone[0] == '-' ? -1 : 1);
        }
        else
        {
            return RuleValue.Error($"timestamp '{text}' is not RFC 3339 text");
        }

        if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
        {
            return RuleValue.Error($"timestamp '{text}' out of range");
        }

        var local = new DateTime(year, month, day, hour, minute, second, DateTimeKind.Utc);
        var seconds = ((local.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerSecond) - offsetSeconds;
        return Timestamp(seconds, nanos);
    }

    private static bool TryDigits(ReadOnlySpan<char> digits, out int value)
    {
        value = 0;
        foreach (var c in digits)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }

            value = (value * 10) + (c - '0');
        }

        return true;
    }

    public static string FormatTimestamp(long seconds, int nanos)
    {
        var time = DateTime.UnixEpoch.AddSeconds(seconds);
        var builder = new StringBuilder(32);
        builder.Append(time.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture));
        AppendFraction(builder, nanos);
        builder.Append('Z');
        return builder.ToString();
    }

    private static void AppendFraction(StringBuilder builder, int nanos)
    {
        if (nanos == 0)
        {
            return;
        }

        var fraction = Math.Abs(nanos).ToString("D9", CultureInfo.InvariantCulture).TrimEnd('0');
        builder.Append('.').Append(fraction);
    }

    public static string FormatDuration(long seconds, int nanos)
    {
        var builder = new StringBuilder(24);
        if (seconds < 0 || nanos < 0)
        {
            builder.Append('-');
        }

        builder.Append(Math.Abs(seconds).ToString(CultureInfo.InvariantCulture));
        AppendFraction(builder, nanos);
        builder.Append('s');
        return builder.ToString();
    }

    /// <summary>Parses Go-style duration text: an optional sign and a sequence of decimal numbers with units h, m, s, ms, us, µs, ns.</summary>
    public static RuleValue ParseDuration(string text)
    {
        var s = text.AsSpan();
        var position = 0;
        var negative = false;
        if (position < s.Length && (s[position] == '-' || s[position] == '+'))
        {
            negative = s[position] == '-';
            position++;
        }

        if (position == s.Length)
        {
            return RuleValue.Error($"invalid duration '{text}'");
        }

        if (s[position..] is "0")
        {
            return RuleValue.Duration(0, 0);
        }

        Int128 totalNanos = 0;
        while (position < s.Length)
        {
            Int128 whole = 0;
            var start = position;
            while (position < s.Length && char.IsAsciiDigit(s[position]))
            {
                whole = (whole * 10) + (s[position] - '0');
                if (whole > (Int128)MaxDurationSeconds * 3_600_000_000_000)
                {
                    return RuleValue.Error($"duration '{text}' out of range");
                }

                position++;
            }

            Int128 fraction = 0;
            Int128 scale = 1;
            var hasFraction = false;
            if (position < s.Length && s[position] == '.')
            {
                position++;
                while (position < s.Length && char.IsAsciiDigit(s[position]))
                {
                    hasFraction = true;
                    if (scale < 1_000_000_000_000_000_000)
                    {
                        fraction = (fraction * 10) + (s[position] - '0');
                        scale *= 10;
                    }

                    position++;
                }
            }

            if (position == start || (position == start + 1 && s[start] == '.' && !hasFraction))
            {
                return RuleValue.Error($"invalid duration '{text}'");
            }

            var unitStart = position;
            while (position < s.Length && !char.IsAsciiDigit(s[position]) && s[position] != '.')
            {
                position++;
            }

            long unit = s[unitStart..position] switch
            {
                "h" => 3_600_000_000_000,
                "m" => 60_000_000_000,
                "s" => 1_000_000_000,
                "ms" => 1_000_000,
                "us" or "µs" or "μs" => 1_000,
                "ns" => 1,
                _ => 0,
            };
            if (unit == 0)
            {
                return RuleValue.Error($"invalid duration '{text}': unknown unit");
            }

            totalNanos += (whole * unit) + (fraction * unit / scale);
            if (totalNanos > (Int128)MaxDurationSeconds * NanosPerSecond)
            {
                return RuleValue.Error($"duration '{text}' out of range");
            }
        }

        if (negative)
        {
            totalNanos = -totalNanos;
        }

        return Duration((long)(totalNanos / NanosPerSecond), (long)(totalNanos % NanosPerSecond));
    }

    public static RuleValue FromUnixSeconds(long seconds) => Timestamp(seconds, 0);

    /// <summary>
    /// Steps a time zone costs to find: none when cached or a fixed offset, else a system lookup (about 30 µs; zone names
    /// may come from records, and the cache keeps only the first 64).
    /// </summary>
    public static long ZoneLookupSteps(string? zone) => zone is null || Zones.ContainsKey(zone) || TryFixedOffset(zone, out _) ? 0 : 150;

    /// <summary>The wall-clock time of a timestamp in a time zone (IANA name, UTC, or a [+-]HH:MM offset).</summary>
    public static bool TryLocalTime(in RuleValue timestamp, string? zone, out DateTime local, out string? error)
    {
        var utc = DateTime.UnixEpoch.AddSeconds(timestamp.Seconds).AddTicks(timestamp.Nanos / 100);
        error = null;
        if (zone is null)
        {
            local = utc;
            return true;
        }

        TimeZoneInfo? info = null;
        if (!TryFixedOffset(zone, out var offset))
        {
            info = FindZone(zone);
            if (info is null)
            {
                local = default;
                error = $"unknown time zone '{zone}'";
                return false;
            }

            offset = info.GetUtcOffset(utc);
        }

        // The first and last hours of the timestamp range fall in years 0 and 10000 in a zone behind or ahead of UTC, which
        // .NET's calendar does not hold: an error, not an exception out of the rule (a fixed offset) or a clamped answer (a zone).
        if (utc.Ticks + offset.Ticks < DateTime.MinValue.Ticks || utc.Ticks + offset.Ticks > DateTime.MaxValue.Ticks)
        {
            local = default;
            error = $"the timestamp's wall-clock time in time zone '{zone}' is outside years 1 to 9999";
            return false;
        }

        local = info is null ? utc + offset : TimeZoneInfo.ConvertTimeFromUtc(utc, info);
        return true;
    }

    private static bool TryFixedOffset(string zone, out TimeSpan offset)
    {
        var s = zone.AsSpan();
        var sign = 1;
        if (s.Length > 0 && (s[0] == '+' || s[0] == '-'))
        {
            sign = s[0] == '-' ? -1 : 1;
            s = s[1..];
        }

        if (s.Length == 5 && s[2] == ':' && TryDigits(s[..2], out var hours) && TryDigits(s[3..], out var minutes))
        {
            offset = TimeSpan.FromMinutes(sign * ((hours * 60) + minutes));
            return true;
        }

        offset = default;
        return false;
    }

    private static TimeZoneInfo? FindZone(string zone)
    {
        if (Zones.TryGetValue(zone, out var cached))
        {
            return cached;
        }

        TimeZoneInfo? info;
        try
        {
            info = string.Equals(zone, "UTC", StringComparison.Ordinal) ? TimeZoneInfo.Utc : TimeZoneInfo.FindSystemTimeZoneById(zone);
        }
        catch (TimeZoneNotFoundException)
        {
            info = null;
        }
        catch (InvalidTimeZoneException)
        {
            info = null;
        }

        // the cache is bounded because zone names can come from record data
        if (Zones.Count < MaxCachedZones)
        {
            Zones.TryAdd(zone, info);
        }

        return info;
    }
}
