using System.Runtime.CompilerServices;
using Avro;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>
/// The Avro specification's schema resolution rules, applied statically: can every datum written
/// with the writer schema be resolved against the reader schema? Each problem is reported as
/// "path: rule", the path naming fields ("/fields/address/fields/zip"), array items ("/items"),
/// map values ("/values") and writer union branches ("/union[1]").
/// </summary>
internal sealed class AvroCompatibilityChecker
{
    private readonly AvroParsedSchema _reader;

    // Record pairs being checked (assumed compatible while in progress, which ends recursion on
    // recursive types) and finished ones (so shared types are not re-walked exponentially).
    private readonly HashSet<(Schema Reader, Schema Writer)> _inProgress = new(PairComparer.Instance);
    private readonly Dictionary<(Schema Reader, Schema Writer), (bool Compatible, string Path)> _finished = new(PairComparer.Instance);

    // The pairs of _finished in the order they were finished, so a failed union trial can take back what it concluded.
    private readonly List<(Schema Reader, Schema Writer)> _finishedInOrder = [];

    /// <summary>Each reader union's named branches by every name that reaches them (full name and aliases), in branch order.</summary>
    private readonly Dictionary<UnionSchema, Dictionary<string, List<Schema>>> _namedBranches = new(ReferenceEqualityComparer.Instance);

    /// <summary>
    /// Comparisons one check makes at most. A reader union with several records of one simple name tries each, and what a
    /// failed branch concluded is taken back, so nested unions of such records cost 2^depth (depth 40 held a core for over
    /// a minute, found by a review); real schemas take a few per field and union branch.
    /// </summary>
    internal const int MaxSteps = 500_000;

    private int _steps;

    private AvroCompatibilityChecker(AvroParsedSchema reader) => _reader = reader;

    public static List<string> Check(AvroParsedSchema reader, AvroParsedSchema writer)
    {
        var problems = new List<string>();
        var checker = new AvroCompatibilityChecker(reader);
        checker.CheckSchemas(reader.Schema, writer.Schema, "", problems);
        return checker._steps > MaxSteps
            ? [$"/: the schemas are too complex to compare within {MaxSteps} steps (nested unions of records sharing a name); taken as incompatible"]
            : problems;
    }

    private void CheckSchemas(Schema readerSchema, Schema writerSchema, string path, List<string> problems)
    {
        if (++_steps > MaxSteps)
        {
            // Past the budget every comparison fails, so no union trial can pass on what was left unchecked.
            problems.Add("too complex");
            return;
        }

        var reader = AvroSchemaKinds.Unwrap(readerSchema);
        var writer = AvroSchemaKinds.Unwrap(writerSchema);

        if (writer is UnionSchema writerUnion)
        {
            for (var index = 0; index < writerUnion.Count; index++)
            {
                var branchPath = $"{path}/union[{index}]";
                if (reader is UnionSchema)
                {
                    CheckAgainstReaderUnion((UnionSchema)reader, writerUnion.Schemas[index], branchPath, problems);
                }
                else
                {
                    CheckSchemas(reader, writerUnion.Schemas[index], branchPath, problems);
                }
            }

            return;
        }

        if (reader is UnionSchema readerUnion)
        {
            CheckAgainstReaderUnion(readerUnion, writer, path, problems);
            return;
        }

        if (reader.Tag == writer.Tag && reader is PrimitiveSchema)
        {
            return;
        }

        if (IsPromotion(writer.Tag, reader.Tag))
        {
            return;
        }

        switch (reader, writer)
        {
            case (RecordSchema readerRecord, RecordSchema writerRecord):
                CheckRecords(readerRecord, writerRecord, path, problems);
                break;
            case (EnumSchema readerEnum, EnumSchema writerEnum):
                CheckEnums(readerEnum, writerEnum, path, problems);
                break;
            case (FixedSchema readerFixed, FixedSchema writerFixed):
                if (CheckNames(readerFixed, writerFixed, path, problems) && readerFixed.Size != writerFixed.Size)
                {
                    problems.Add($"{Display(path)}: fixed '{readerFixed.Fullname}' size changed from {writerFixed.Size} (writer) to {readerFixed.Size} (reader)");
                }

                break;
            case (ArraySchema readerArray, ArraySchema writerArray):
                CheckSchemas(readerArray.ItemSchema, writerArray.ItemSchema, path + "/items", problems);
                break;
            case (MapSchema readerMap, MapSchema writerMap):
                CheckSchemas(readerMap.ValueSchema, writerMap.ValueSchema, path + "/values", problems);
                break;
            default:
                problems.Add($"{Display(path)}: type changed from {AvroSchemaKinds.Describe(writer)} (writer) to {AvroSchemaKinds.Describe(reader)} (reader), which Avro cannot resolve");
                break;
        }
    }

    /// <summary>A single writer type is readable when some reader branch can read it.</summary>
    private void CheckAgainstReaderUnion(UnionSchema readerUnion, Schema writerBranch, string path, List<string> problems)
    {
        var writer = AvroSchemaKinds.Unwrap(writerBranch);
        List<string>? sameKindProblems = null;
        // A named writer type is read only by a branch of its name or alias (no promotion reaches a named type), so only
        // those are tried: a union of thousands of records is not tried branch by branch for each of the writer's. Their
        // kinds are left to CheckSchemas, which reads a record as an error and the other way round.
        IEnumerable<Schema> candidates = writer is NamedSchema named
            ? NamedBranches(readerUnion).GetValueOrDefault(named.Name, []).Concat(NamedBranches(readerUnion).GetValueOrDefault(named.Fullname, [])).Distinct()
            : readerUnion.Schemas;
        foreach (var readerBranch in candidates)
        {
            var trial = new List<string>();
            int finishedBefore = _finishedInOrder.Count;
            CheckSchemas(readerBranch, writer, path, trial);
            if (trial.Count == 0)
            {
                return;
            }

            // What the failed branch concluded may rest on a pair it assumed compatible while in progress, which then
            // failed: kept, a later check would reuse "compatible" for a pair that is not (found by a review).
            for (int i = finishedBefore; i < _finishedInOrder.Count; i++)
            {
                _finished.Remove(_finishedInOrder[i]);
            }

            _finishedInOrder.RemoveRange(finishedBefore, _finishedInOrder.Count - finishedBefore);

            // The branch Avro would pick by type/name explains the failure better than a summary.
            if (sameKindProblems is null && IsSameKind(AvroSchemaKinds.Unwrap(readerBranch), writer))
            {
                sameKindProblems = trial;
            }
        }

        if (sameKindProblems is not null)
        {
            problems.AddRange(sameKindProblems);
            return;
        }

        problems.Add($"{Display(path)}: writer type {AvroSchemaKinds.Describe(writer)} is not readable by any branch of reader {AvroSchemaKinds.Describe(readerUnion)}");
    }

    private void CheckRecords(RecordSchema reader, RecordSchema writer, string path, List<string> problems)
    {
        if (!CheckNames(reader, writer, path, problems))
        {
            return;
        }

        var pair = (reader, writer);
        if (_inProgress.Contains(pair))
        {
            return;
        }

        if (_finished.TryGetValue(pair, out var earlier))
        {
            if (!earlier.Compatible)
            {
                problems.Add($"{Display(path)}: writer record '{writer.Fullname}' cannot be read as reader record '{reader.Fullname}' (see {Display(earlier.Path)})");
            }

            return;
        }

        _inProgress.Add(pair);
        var before = problems.Count;
        foreach (var readerField in reader.Fields)
        {
            var fieldPath = $"{path}/fields/{readerField.Name}";
            var writerField = FindWriterField(writer, readerField);
            if (writerField is not null)
            {
                CheckSchemas(readerField.Schema, writerField.Schema, fieldPath, problems);
            }
            else if (readerField.DefaultValue is null)
            {
                problems.Add($"{Display(fieldPath)}: reader field '{readerField.Name}' has no default and is missing from the writer");
            }
        }

        _inProgress.Remove(pair);
        _finished[pair] = (problems.Count == before, path);
        _finishedInOrder.Add(pair);
    }

    /// <summary>Matches by name first, then by the reader field's aliases (aliases are a reader-side rename).</summary>
    private static Field? FindWriterField(RecordSchema writer, Field readerField)
    {
        if (writer.TryGetField(readerField.Name, out var byName))
        {
            return byName;
        }

        foreach (var alias in readerField.Aliases ?? [])
        {
            if (writer.TryGetField(alias, out var byAlias))
            {
                return byAlias;
            }
        }

        return null;
    }

    private void CheckEnums(EnumSchema reader, EnumSchema writer, string path, List<string> problems)
    {
        if (!CheckNames(reader, writer, path, problems) || reader.Default is not null)
        {
            return;
        }

        foreach (var symbol in writer.Symbols.Where(symbol => !reader.Contains(symbol)))
        {
            problems.Add($"{Display(path)}: enum symbol '{symbol}' written but unknown to reader enum '{reader.Fullname}', which has no default");
        }
    }

    private bool CheckNames(NamedSchema reader, NamedSchema writer, string path, List<string> problems)
    {
        if (NamesMatch(reader, writer))
        {
            return true;
        }

        problems.Add($"{Display(path)}: name changed from '{writer.Fullname}' (writer) to '{reader.Fullname}' (reader) and the reader has no alias for it");
        return false;
    }

    private Dictionary<string, List<Schema>> NamedBranches(UnionSchema union)
    {
        if (!_namedBranches.TryGetValue(union, out Dictionary<string, List<Schema>>? byName))
        {
            byName = new Dictionary<string, List<Schema>>(StringComparer.Ordinal);
            foreach (var branch in union.Schemas)
            {
                if (AvroSchemaKinds.Unwrap(branch) is not NamedSchema named)
                {
                    continue;
                }

                // The names NamesMatch accepts for this reader branch: its own unqualified name and its aliases (full names).
                IEnumerable<string> aliases = _reader.NamedTypeAliases.TryGetValue(named.Fullname, out var known) ? known : [];
                foreach (string name in aliases.Prepend(named.Name).Distinct(StringComparer.Ordinal))
                {
                    if (!byName.TryGetValue(name, out List<Schema>? branches))
                    {
                        byName[name] = branches = [];
                    }

                    branches.Add(branch);
                }
            }

            _namedBranches[union] = byName;
        }

        return byName;
    }

    /// <summary>
    /// As Avro's own SchemaCompatibility (and so Confluent's registry): the unqualified names, so a namespace change is
    /// compatible, or a reader alias naming the writer's full name.
    /// </summary>
    private bool NamesMatch(NamedSchema reader, NamedSchema writer) =>
        string.Equals(reader.Name, writer.Name, StringComparison.Ordinal)
        || (_reader.NamedTypeAliases.TryGetValue(reader.Fullname, out var aliases)
            && aliases.Contains(writer.Fullname, StringComparer.Ordinal));

    private bool IsSameKind(Schema reader, Schema writer) =>
        reader is NamedSchema namedReader && writer is NamedSchema namedWriter
            ? reader.Tag == writer.Tag && NamesMatch(namedReader, namedWriter)
            : reader.Tag == writer.Tag;

    /// <summary>The specification's promotions: writer type on the left, reader type on the right.</summary>
    private static bool IsPromotion(Schema.Type writer, Schema.Type reader) => (writer, reader) switch
    {
        (Schema.Type.Int, Schema.Type.Long or Schema.Type.Float or Schema.Type.Double) => true,
        (Schema.Type.Long, Schema.Type.Float or Schema.Type.Double) => true,
        (Schema.Type.Float, Schema.Type.Double) => true,
        (Schema.Type.String, Schema.Type.Bytes) => true,
        (Schema.Type.Bytes, Schema.Type.String) => true,
        _ => false,
    };

    private static string Display(string path) => path.Length == 0 ? "/" : path;

    private sealed class PairComparer : IEqualityComparer<(Schema Reader, Schema Writer)>
    {
        public static readonly PairComparer Instance = new();

        public bool Equals((Schema Reader, Schema Writer) x, (Schema Reader, Schema Writer) y) =>
            ReferenceEquals(x.Reader, y.Reader) && ReferenceEquals(x.Writer, y.Writer);

        public int GetHashCode((Schema Reader, Schema Writer) obj) =>
            HashCode.Combine(RuntimeHelpers.GetHashCode(obj.Reader), RuntimeHelpers.GetHashCode(obj.Writer));
    }
}
