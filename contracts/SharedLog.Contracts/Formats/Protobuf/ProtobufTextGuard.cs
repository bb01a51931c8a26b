using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// A lexical pre-check run before the parser sees the text: the parser descends recursively into
/// blocks, so brace nesting is bounded first (comments and string literals are skipped).
/// </summary>
internal static class ProtobufTextGuard
{
    /// <summary>Message nesting is bounded by MaxDepth later; oneofs, enums and option aggregates add a few braces on top.</summary>
    internal const int MaxBraceDepth = 2 * SchemaLimits.MaxDepth;

    public static void CheckBraceDepth(string text, string what)
    {
        var depth = 0;
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '/' && i + 1 < text.Length && text[i + 1] == '/')
            {
                i = SkipTo(text, i + 2, "\n");
                continue;
            }

            if (c == '/' && i + 1 < text.Length && text[i + 1] == '*')
            {
                i = SkipTo(text, i + 2, "*/");
                continue;
            }

            if (c is '"' or '\'')
            {
                i = SkipString(text, i + 1, c);
                continue;
            }

            if (c == '{')
            {
                depth++;
                if (depth > MaxBraceDepth)
                {
                    throw new InvalidSchemaException($"Invalid Protobuf schema: {what} nests blocks more than {MaxBraceDepth} levels deep");
                }
            }
            else if (c == '}' && depth > 0)
            {
                depth--;
            }

            i++;
        }
    }

    private static int SkipTo(string text, int start, string terminator)
    {
        var end = text.IndexOf(terminator, start, StringComparison.Ordinal);
        return end < 0 ? text.Length : end + terminator.Length;
    }

    private static int SkipString(string text, int start, char quote)
    {
        var i = start;
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '\\')
            {
                i += 2;
                continue;
            }

            // A string literal cannot span lines; the parser reports it, the guard just stops skipping.
            if (c == quote || c == '\n')
            {
                return i + 1;
            }

            i++;
        }

        return text.Length;
    }
}
