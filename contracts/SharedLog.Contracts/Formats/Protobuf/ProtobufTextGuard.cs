using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// A lexical pre-check run before the parser sees the text: the parser descends recursively into
/// blocks, so brace nesting is bounded first (comments and string literals are skipped); and it checks each field
/// against the message's others, a step per field before it, so the declarations a message holds are bounded too.
/// </summary>
internal static class ProtobufTextGuard
{
    /// <summary>Message nesting is bounded by MaxDepth later; oneofs, enums and option aggregates add a few braces on top.</summary>
    internal const int MaxBraceDepth = 2 * SchemaLimits.MaxDepth;

    /// <summary>
    /// Most declarations (fields, oneof members, options, reserved ranges: statements ending in ';') one message or group
    /// may hold. The parser's time grows with their square: a review's 56,325 fields (1 MB) took 23 s to register, 10,000
    /// fields 1.1 s, 5,000 0.35 s. Enums are not bounded here (50,000 values took 0.22 s).
    /// </summary>
    internal const int MaxDeclarationsPerMessage = 5_000;

    private enum BlockKind
    {
        Message,
        Oneof,
        Other,
    }

    private record struct Block(BlockKind Kind, int Declarations);

    public static void CheckBraceDepth(string text, string what)
    {
        var depth = 0;
        var i = 0;

        // The open blocks, innermost last; "message Name {", "group Name = 2 {" ('2' is no word) and "oneof name {" are told
        // by the word before the name.
        var blocks = new List<Block>();
        BlockKind lastWord = BlockKind.Other;
        BlockKind wordBeforeLast = BlockKind.Other;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsAsciiLetter(c) || c == '_')
            {
                int start = i;
                while (i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] == '_'))
                {
                    i++;
                }

                (wordBeforeLast, lastWord) = (lastWord, text.AsSpan(start, i - start) switch
                {
                    "message" or "group" => BlockKind.Message,
                    "oneof" => BlockKind.Oneof,
                    _ => BlockKind.Other,
                });
                continue;
            }

            if (c == ';' && OwnerOf(blocks) is int owner)
            {
                if (blocks[owner].Declarations >= MaxDeclarationsPerMessage)
                {
                    throw new InvalidSchemaException($"Invalid Protobuf schema: {what} declares more than {MaxDeclarationsPerMessage} fields, options or reserved ranges in one message");
                }

                blocks[owner] = blocks[owner] with { Declarations = blocks[owner].Declarations + 1 };
            }

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

                blocks.Add(new Block(wordBeforeLast, 0));
            }
            else if (c == '}' && depth > 0)
            {
                depth--;
                blocks.RemoveAt(blocks.Count - 1);
            }

            i++;
        }
    }

    /// <summary>
    /// The block a ';' counts for: the innermost open block if it is a message, or the message around the oneofs it is in;
    /// null when the statement is in no message (file level, an enum, a service, an option aggregate).
    /// </summary>
    private static int? OwnerOf(List<Block> blocks)
    {
        for (int k = blocks.Count - 1; k >= 0; k--)
        {
            if (blocks[k].Kind == BlockKind.Message)
            {
                return k;
            }

            if (blocks[k].Kind != BlockKind.Oneof)
            {
                return null;
            }
        }

        return null;
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
