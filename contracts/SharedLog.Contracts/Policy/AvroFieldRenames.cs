using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Policy;

/// <summary>
/// Avro renames a field compatibly through aliases: <c>{"name": "social", "aliases": ["ssn"]}</c> is the field that
/// earlier versions called <c>ssn</c>, and the registry's compatibility checks read it so. A privacy path names a field by
/// one of its names; records carry the writer's. This finds the writer's paths for a privacy path, so a rename does not
/// leave the field it meant unmasked (from a review: a sensitive topic stored an SSN in clear after such a rename).
/// </summary>
internal static class AvroFieldRenames
{
    /// <summary>Writer paths at most, past which the records fail closed instead (aliases on every level of a long path).</summary>
    public const int MaxPaths = 64;

    // Passes over the schemas at most while the names known for a level still grow (a rename of a rename).
    private const int MaxPasses = 4;

    /// <summary>
    /// The paths by which <paramref name="writer"/> holds the field <paramref name="names"/> (a privacy path, split) means,
    /// when a field alias on the way renames a level in <paramref name="writer"/> or in <paramref name="related"/> (the
    /// other versions the contract admits): a level's name, the names a field of that name lists as aliases, and the name of
    /// any field that lists one of those as an alias, are one field's names. Null when no alias touches the path (the path
    /// as written is all there is); empty when the writer declares none of its names. <paramref name="tooMany"/> when past
    /// <see cref="MaxPaths"/>.
    /// </summary>
    public static IReadOnlyList<string>? WriterPaths(AvroParsedSchema writer, IEnumerable<IParsedSchema> related, string[] names, out bool tooMany)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(names);
        tooMany = false;
        var levels = new HashSet<string>[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            levels[i] = new HashSet<string>(StringComparer.Ordinal) { names[i] };
        }

        List<Avro.Schema> schemas = [writer.Schema, .. related.OfType<AvroParsedSchema>().Select(s => s.Schema)];
        bool renamed = false;
        for (int pass = 0; pass < MaxPasses; pass++)
        {
            bool grew = false;
            foreach (Avro.Schema schema in schemas)
            {
                grew |= CollectNames(schema, levels, 0, 0, []);
            }

            renamed |= grew;
            if (!grew)
            {
                break;
            }
        }

        if (!renamed)
        {
            return null;
        }

        var paths = new List<string>();
        WalkWriter(writer.Schema, names, levels, 0, 0, new string[names.Length], paths);
        tooMany = paths.Count > MaxPaths;
        return paths;
    }

    /// <summary>Adds the names fields on the path are also known by (their aliases, or the field an alias points back to); true when a level grew.</summary>
    private static bool CollectNames(Avro.Schema type, HashSet<string>[] levels, int index, int depth, HashSet<(Avro.Schema, int)> seen)
    {
        if (index == levels.Length || depth > SchemaLimits.MaxDepth || !seen.Add((type, index)))
        {
            return false;
        }

        bool grew = false;
        switch (type)
        {
            case Avro.UnionSchema union:
                foreach (Avro.Schema branch in union.Schemas)
                {
                    grew |= CollectNames(branch, levels, index, depth + 1, seen);
                }

                break;
            case Avro.ArraySchema array:
                grew |= CollectNames(array.ItemSchema, levels, index, depth + 1, seen);
                break;
            case Avro.MapSchema map:
                grew |= CollectNames(map.ValueSchema, levels, index + 1, depth + 1, seen);
                break;
            case Avro.RecordSchema record:
                foreach (Avro.Field field in record.Fields)
                {
                    if (!levels[index].Contains(field.Name) && !(field.Aliases ?? []).Any(levels[index].Contains))
                    {
                        continue;
                    }

                    grew |= levels[index].Add(field.Name);
                    foreach (string alias in field.Aliases ?? [])
                    {
                        grew |= levels[index].Add(alias);
                    }

                    grew |= CollectNames(field.Schema, levels, index + 1, depth + 1, seen);
                }

                break;
        }

        return grew;
    }

    /// <summary>Every path of the writer's own names through fields whose name is one the level is known by (a map level keeps the path's key).</summary>
    private static void WalkWriter(Avro.Schema type, string[] names, HashSet<string>[] levels, int index, int depth, string[] chosen, List<string> paths)
    {
        if (paths.Count > MaxPaths || depth > SchemaLimits.MaxDepth)
        {
            return;
        }

        if (index == names.Length)
        {
            string path = string.Join('.', chosen);
            if (!paths.Contains(path))
            {
                paths.Add(path);
            }

            return;
        }

        switch (type)
        {
            case Avro.UnionSchema union:
                foreach (Avro.Schema branch in union.Schemas)
                {
                    WalkWriter(branch, names, levels, index, depth + 1, chosen, paths);
                }

                break;
            case Avro.ArraySchema array:
                WalkWriter(array.ItemSchema, names, levels, index, depth + 1, chosen, paths);
                break;
            case Avro.MapSchema map:
                chosen[index] = names[index];
                WalkWriter(map.ValueSchema, names, levels, index + 1, depth + 1, chosen, paths);
                break;
            case Avro.RecordSchema record:
                foreach (Avro.Field field in record.Fields)
                {
                    if (levels[index].Contains(field.Name))
                    {
                        chosen[index] = field.Name;
                        WalkWriter(field.Schema, names, levels, index + 1, depth + 1, chosen, paths);
                    }
                }

                break;
        }
    }
}
