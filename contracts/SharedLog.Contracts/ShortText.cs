namespace SharedLog.Contracts;

/// <summary>Texts made from data (a schema's constant, a record's value, a long field name) cut to a readable length.</summary>
internal static class ShortText
{
    /// <summary>
    /// <paramref name="text"/> when at most <paramref name="maxChars"/> long, else its start and end around an ellipsis,
    /// <paramref name="maxChars"/> characters at most: where a message names something and how it differs both stay. A
    /// surrogate pair is never split (a half would become U+FFFD in a UTF-8 header).
    /// </summary>
    public static string Cut(string text, int maxChars)
    {
        if (text.Length <= maxChars)
        {
            return text;
        }

        int head = (maxChars - 1) * 3 / 10;
        int tail = text.Length - (maxChars - 1 - head);
        if (head > 0 && char.IsHighSurrogate(text[head - 1]))
        {
            head--;
        }

        if (char.IsLowSurrogate(text[tail]))
        {
            tail++;
        }

        return string.Concat(text.AsSpan(0, head), "…", text.AsSpan(tail));
    }
}
