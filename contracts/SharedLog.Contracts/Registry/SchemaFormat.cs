namespace SharedLog.Contracts.Registry;

/// <summary>The schema languages the registry understands; names match Confluent's <c>schemaType</c>.</summary>
public enum SchemaType
{
    Avro,
    Json,
    Protobuf,
}

/// <summary>A reference from one schema to another registered schema, as Confluent's API carries it.</summary>
public sealed record SchemaReference(string Name, string Subject, int Version);

/// <summary>A reference resolved to the referenced schema's text (and, transitively, its own references).</summary>
public sealed record ResolvedReference(string Name, string Subject, int Version, string SchemaText, IReadOnlyList<ResolvedReference> References);

/// <summary>
/// A reference whose name an earlier reference of the same schema (at any depth) had already bound to another schema.
/// Names resolve in one table per schema, as in Confluent's registry and serializers, so every use of the name reads
/// <paramref name="Used"/>; what only <paramref name="Shadowed"/> declares (a privacy tag) is not seen. Used is null where
/// the schema itself holds what is read (its own <c>$id</c>); <paramref name="ReadName"/> is the other name where two names
/// resolve to one URI.
/// </summary>
public sealed record ShadowedReference(string Name, ResolvedReference? Used, ResolvedReference Shadowed, string? ReadName = null)
{
    /// <summary>Most kept per schema; past it <see cref="ShadowedReferences.Unwalkable"/> is set and tag rules fail closed.</summary>
    public const int MaxKept = 16;
}

/// <summary>
/// The shadowed references a format met while it flattened a schema's references into one table: noted while it reads
/// them (<see cref="Bind"/>, <see cref="Shadow"/>, <see cref="Hide"/>), compared once every name is bound
/// (<see cref="Complete"/>), then read by the privacy check from any thread.
/// </summary>
public sealed class ShadowedReferences
{
    private readonly Dictionary<string, ResolvedReference> _used = new(StringComparer.Ordinal);
    private readonly List<(string Name, ResolvedReference Hidden, string ReadName)> _met = [];
    private readonly List<ShadowedReference> _shadowed = [];

    public IReadOnlyList<ShadowedReference> Shadowed => _shadowed;

    /// <summary>Why the hidden bindings cannot all be compared, or null.</summary>
    public string? Unwalkable { get; private set; }

    /// <summary>Notes the reference that first binds <paramref name="name"/>.</summary>
    public void Bind(string name, ResolvedReference reference) => _used.TryAdd(name, reference);

    /// <summary>Notes <paramref name="reference"/>, met after <paramref name="name"/> was bound: a use of the name reads the first binding.</summary>
    public void Shadow(string name, ResolvedReference reference) => Meet(name, reference, name);

    /// <summary>
    /// Notes that the schema bound as <paramref name="hiddenName"/> is hidden behind the one bound as <paramref name="readName"/>
    /// (the schema itself when empty): both claim one URI, and a reference to it reads the first.
    /// </summary>
    public void Hide(string readName, string hiddenName)
    {
        if (_used.TryGetValue(hiddenName, out ResolvedReference? hidden))
        {
            Meet(hiddenName, hidden, readName);
        }
        else if (hiddenName.Length == 0)
        {
            // The schema's own embedded resource is hidden behind a reference: no binding of it can be compared.
            Unwalkable ??= $"a resource of the schema itself is hidden behind the reference '{readName}', which claims the same URI";
        }
    }

    private void Meet(string name, ResolvedReference hidden, string readName)
    {
        if (_met.Count < MaxComparedReferences)
        {
            _met.Add((name, hidden, readName));
        }
        else
        {
            Unwalkable ??= "the schema's references hide more schemas than the tag check follows";
        }
    }

    /// <summary>
    /// Compares what was met with what is read in its place, once every name is bound: two bindings of one schema are no
    /// shadow. A hidden reference's own references are not flattened either (the name's first binding is read instead), so
    /// where one of their names is bound to another schema, that one is read in its place too.
    /// </summary>
    public void Complete()
    {
        int budget = MaxComparedReferences;
        foreach ((string name, ResolvedReference hidden, string readName) in _met)
        {
            ResolvedReference? read = _used.GetValueOrDefault(readName);
            if (read is null || !Same(read, hidden, 0, ref budget))
            {
                Note(new ShadowedReference(name, read, hidden, string.Equals(name, readName, StringComparison.Ordinal) ? null : readName));
                ShadowDescendants(hidden, 0, ref budget);
            }
        }

        _met.Clear();
    }

    private void ShadowDescendants(ResolvedReference hidden, int depth, ref int budget)
    {
        foreach (ResolvedReference child in hidden.References ?? [])
        {
            if (--budget < 0 || depth > SchemaLimits.MaxDepth)
            {
                Unwalkable ??= "the schema's references hide more schemas than the tag check follows";
                return;
            }

            string name = child.Name.IndexOf('#', StringComparison.Ordinal) is var hash and >= 0 ? child.Name[..hash] : child.Name;
            if (_used.TryGetValue(name, out ResolvedReference? read) && !Same(read, child, 0, ref budget))
            {
                Note(new ShadowedReference(name, read, child));
            }

            ShadowDescendants(child, depth + 1, ref budget);
        }
    }

    private void Note(ShadowedReference shadowed)
    {
        if (_shadowed.Count < ShadowedReference.MaxKept)
        {
            _shadowed.Add(shadowed);
        }
        else
        {
            Unwalkable ??= $"the schema's references bind more than {ShadowedReference.MaxKept} names to two different schemas each";
        }
    }

    private const int MaxComparedReferences = 1_000;

    /// <summary>
    /// Whether two bindings are one schema: the same registered version, or the same text whose references are the same
    /// in turn. Past the comparison's budget they count as different, which only makes a tag rule look closer.
    /// </summary>
    private static bool Same(ResolvedReference a, ResolvedReference b, int depth, ref int budget)
    {
        if (--budget < 0 || depth > SchemaLimits.MaxDepth)
        {
            return false;
        }

        if (string.Equals(a.Subject, b.Subject, StringComparison.Ordinal) && a.Version == b.Version)
        {
            return true;
        }

        IReadOnlyList<ResolvedReference> left = a.References ?? [];
        IReadOnlyList<ResolvedReference> right = b.References ?? [];
        if (!string.Equals(a.SchemaText, b.SchemaText, StringComparison.Ordinal) || left.Count != right.Count)
        {
            return false;
        }

        for (int i = 0; i < left.Count; i++)
        {
            if (!string.Equals(left[i].Name, right[i].Name, StringComparison.Ordinal) || !Same(left[i], right[i], depth + 1, ref budget))
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>The schema text is not a valid schema of its type (Confluent error 42201).</summary>
public sealed class InvalidSchemaException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A schema parsed and checked by its format.</summary>
public interface IParsedSchema
{
    SchemaType Type { get; }

    /// <summary>The schema text as stored: the original text, or the normalized form when normalizing was asked for.</summary>
    string Text { get; }

    /// <summary>A canonical form used to decide whether two registrations are the same schema.</summary>
    string Canonical { get; }

    IReadOnlyList<ResolvedReference> References { get; }
}

/// <summary>
/// One schema language: parsing (bounded in size and depth) and the compatibility rule between a
/// reader schema and a writer schema. "Backward" checks (new reader, old writer); "forward" checks
/// (old reader, new writer); the registry composes levels from this one directed check.
/// </summary>
public interface ISchemaFormat
{
    SchemaType Type { get; }

    /// <summary>Parses <paramref name="schemaText"/>; throws <see cref="InvalidSchemaException"/> when it is not valid.</summary>
    IParsedSchema Parse(string schemaText, IReadOnlyList<ResolvedReference> references, bool normalize);

    /// <summary>
    /// Whether data written with <paramref name="writer"/> can be read with <paramref name="reader"/>.
    /// Returns an empty list when compatible, else one message per problem naming the field/path and the rule.
    /// </summary>
    IReadOnlyList<string> CheckCompatibility(IParsedSchema reader, IParsedSchema writer);
}

/// <summary>Bounds applied to every schema before and during parsing.</summary>
public static class SchemaLimits
{
    /// <summary>Largest schema text accepted, in UTF-16 characters.</summary>
    public const int MaxSchemaChars = 1024 * 1024;

    /// <summary>
    /// Most distinct regular expressions a JSON schema registered from now on may hold, with its references. Each becomes a
    /// linear-time regex of 0.1-0.5 MB that takes 1-12 ms to build (measured for <c>^[a-z]+$</c> and <c>^\w+@\w+\.com$</c>):
    /// a review's schema of 3,000 patterns took 4-7 s and 0.9 GB to build its validator. Schemas stored before are kept.
    /// </summary>
    public const int MaxJsonSchemaPatterns = 256;

    /// <summary>
    /// Most characters a schema registered from now on may import through its references in all, each import name counted
    /// once (as the formats read them). Each reference is at most <see cref="MaxSchemaChars"/>, but one 1 MB schema imported
    /// under 40 names took a review's Protobuf registration 17 s and 1.1 GB (it is parsed once per name).
    /// </summary>
    public const long MaxReferencedChars = 4L * MaxSchemaChars;

    /// <summary>Deepest nesting accepted (JSON depth, Avro/Protobuf type nesting).</summary>
    public const int MaxDepth = 64;

    /// <summary>
    /// Most steps (fields and schema nodes entered) a walk for tagged fields takes in one schema. Paths multiply with every
    /// type used in several places (an Avro record reused by name, a JSON <c>$ref</c>, a Protobuf message), so a schema of a
    /// few dozen fields can hold billions: past this its tagged fields cannot all be found, and the walk fails (closed).
    /// </summary>
    public const int MaxTaggedWalkSteps = 100_000;

    /// <summary>
    /// Most field paths one tag may name in one schema: the privacy step visits each in every record, so a tagged field of a
    /// type reused in many places costs that many walks per record. Past this the walk fails (closed).
    /// </summary>
    public const int MaxTaggedPaths = 10_000;

    /// <summary>The failure of a walk for tagged fields past <see cref="MaxTaggedWalkSteps"/>: the caller fails closed.</summary>
    public static InvalidOperationException TaggedWalkTooLarge() =>
        new($"tagged fields cannot be resolved: walking the schema's field paths within {MaxDepth} levels takes more than {MaxTaggedWalkSteps} steps; name the fields by path instead");

    /// <summary>Adds a tagged field's path, failing the walk past <see cref="MaxTaggedPaths"/>.</summary>
    public static void AddTaggedPath(List<string> paths, string path)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count >= MaxTaggedPaths)
        {
            throw new InvalidOperationException($"tagged fields cannot be resolved: the tag names more than {MaxTaggedPaths} field paths in this schema (a tagged field of a type used in many places); name the fields by path instead");
        }

        paths.Add(path);
    }
}
