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
    /// Most declarations (fields, oneof members, options, reserved ranges, nested types, groups and oneofs) one message,
    /// group or extend block may hold, and the file at its top level. The parser's time grows with their square: a
    /// review's 56,325 fields (1 MB) took 23 s to register, 10,000 fields 1.1 s, 5,000 0.35 s; 30,000 empty messages 5.6 s.
    /// Enum values are not bounded here (50,000 took 0.22 s).
    /// </summary>
    internal const int MaxDeclarationsPerMessage = 5_000;

    /// <summary>
    /// Most parse work one schema and the files it imports may hold together, counted as the sum over every message, group,
    /// extend block and file top level of its declarations squared (the parser's time grows so): as much as four messages
    /// of 5,000 fields. A review registered four 1 MB imports of twelve 4,999-field messages each, then a 200-byte schema
    /// importing them: each file was within the per-message limit, and the registration took 4.8 s.
    /// </summary>
    internal const long MaxDeclarationWork = 4L * MaxDeclarationsPerMessage * MaxDeclarationsPerMessage;

    private enum BlockKind
    {
        Message,
        Oneof,
        Other,

        /// <summary>The file: its types, options and imports are bounded as a message's declarations are.</summary>
        File,
    }

    private record struct Block(BlockKind Kind, int Declarations);

    /// <summary>Checks <paramref name="text"/>'s bounds; returns its parse work (see <see cref="MaxDeclarationWork"/>), for the caller to add up over imports.</summary>
    public static long CheckBraceDepth(string text, string what)
    {
        long work = 0;
        var i = 0;
        var depth = 0;

        // The open blocks, innermost last, below them the file itself. A block is told by the first word of its statement
        // (see Classify); the statement's words are those since the last ';', '{' or '}' outside brackets (any run of
        // letters, digits, '_' and '.' is a word, numbers included). Braces inside brackets are a field option's value.
        var blocks = new List<Block> { new(BlockKind.File, 0) };
        int brackets = 0;
        int bracketsOpenedAt = 0;
        int statementWords = 0;
        BlockKind statementKind = BlockKind.Other;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsLetterOrDigit(c) || c is '_' or '.')
            {
                int start = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] is '_' or '.'))
                {
                    i++;
                }

                statementKind = Classify(statementWords++, text.AsSpan(start, i - start), statementKind);
                continue;
            }

            if (c == '/' && i + 1 < text.Length && text[i + 1] == '/')
            {
                // The parser reads lines ending in '\n', '\r' or both: a comment ends at either.
                i = SkipLine(text, i + 2);
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

            if (c == '{' && ++depth > MaxBraceDepth)
            {
                throw new InvalidSchemaException($"Invalid Protobuf schema: {what} nests blocks more than {MaxBraceDepth} levels deep");
            }

            if (c == '}' && depth > 0)
            {
                depth--;
            }

            if (c == '[')
            {
                bracketsOpenedAt = brackets++ == 0 ? depth : bracketsOpenedAt;
            }
            else if (c == ']' && brackets > 0)
            {
                brackets--;
            }
            else if (brackets > 0 && ((c == '}' && depth < bracketsOpenedAt) || (c == ';' && depth == bracketsOpenedAt)))
            {
                // A '[' left open: the block or statement it was in ends here all the same (the parser goes on reading).
                brackets = 0;
            }

            if (brackets == 0 && c == ',')
            {
                // Each entry of a list counts (reserved "a", "b", ...: the parser checks each against every field).
                Count(blocks, what);
            }

            if (brackets == 0 && c is ';' or '{' or '}')
            {
                if (c is ';' or '{')
                {
                    // A field, option or reserved range, and any nested type, group or oneof: a declaration of its block.
                    Count(blocks, what);
                }

                if (c == '{')
                {
                    blocks.Add(new Block(statementWords == 0 ? BlockKind.Other : statementKind, 0));
                }
                else if (c == '}' && blocks.Count > 1)
                {
                    work += Squared(blocks[^1].Declarations);
                    blocks.RemoveAt(blocks.Count - 1);
                }

                (statementWords, statementKind) = (0, BlockKind.Other);
            }

            i++;
        }

        if (brackets > 0)
        {
            throw new InvalidSchemaException($"Invalid Protobuf schema: {what} leaves a '[' unclosed");
        }

        foreach (Block open in blocks)
        {
            work += Squared(open.Declarations); // the file itself, and any block left open
        }

        return work;
    }

    private static long Squared(int declarations) => (long)declarations * declarations;

    /// <summary>Counts a declaration for the message (or file) it is in, through oneofs; past the limit the schema is refused.</summary>
    private static void Count(List<Block> blocks, string what)
    {
        if (OwnerOf(blocks) is not int owner)
        {
            return;
        }

        if (blocks[owner].Declarations >= MaxDeclarationsPerMessage)
        {
            throw new InvalidSchemaException(blocks[owner].Kind == BlockKind.File
                ? $"Invalid Protobuf schema: {what} declares more than {MaxDeclarationsPerMessage} types, options or imports at file level"
                : $"Invalid Protobuf schema: {what} declares more than {MaxDeclarationsPerMessage} fields, options or reserved ranges in one message");
        }

        blocks[owner] = blocks[owner] with { Declarations = blocks[owner].Declarations + 1 };
    }

    /// <summary>
    /// What a statement opens, told by its first word. Fails closed: only enum, service, rpc and option blocks go uncounted,
    /// and a oneof counts for its message; any other block (message, extend, a group after its label, anything odd) is
    /// bounded as a message is.
    /// </summary>
    private static BlockKind Classify(int index, ReadOnlySpan<char> word, BlockKind sofar) => index switch
    {
        0 => word switch
        {
            "enum" or "service" or "rpc" or "option" => BlockKind.Other,
            "oneof" => BlockKind.Oneof,
            _ => BlockKind.Message,
        },
        _ => sofar,
    };

    /// <summary>
    /// The block a ';' counts for: the innermost open block if it is a message, or the message around the oneofs it is in;
    /// null when the statement is in no message (file level, an enum, a service, an option aggregate).
    /// </summary>
    private static int? OwnerOf(List<Block> blocks)
    {
        for (int k = blocks.Count - 1; k >= 0; k--)
        {
            if (blocks[k].Kind is BlockKind.Message or BlockKind.File)
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

    private static int SkipLine(string text, int start)
    {
        var end = text.AsSpan(start).IndexOfAny('\n', '\r');
        return end < 0 ? text.Length : start + end + 1;
    }

    private static int SkipString(string text, int start, char quote)
    {
        var i = start;
        while (i < text.Length)
        {
            var c = text[i];
            if (c == '\\')
            {
                // An escaped line end still ends the literal for the parser, which reads line by line.
                if (i + 1 < text.Length && text[i + 1] is '\n' or '\r')
                {
                    return i + 1;
                }

                i += 2;
                continue;
            }

            // A string literal cannot span lines; the parser reports it, the guard just stops skipping.
            if (c == quote || c is '\n' or '\r')
            {
                return i + 1;
            }

            i++;
        }

        return text.Length;
    }
}
