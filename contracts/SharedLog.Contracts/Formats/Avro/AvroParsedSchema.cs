using Avro;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Avro;

/// <summary>An Avro schema parsed together with the named types its references define.</summary>
internal sealed class AvroParsedSchema(
    string text,
    string canonical,
    string parsingCanonicalForm,
    IReadOnlyList<ResolvedReference> references,
    Schema schema,
    IReadOnlyDictionary<string, IReadOnlyList<string>> namedTypeAliases) : IParsedSchema
{
    public SchemaType Type => SchemaType.Avro;

    public string Text { get; } = text;

    public string Canonical { get; } = canonical;

    /// <summary>
    /// The Avro specification's Parsing Canonical Form (referenced types inlined, docs/defaults/aliases
    /// dropped): what Avro fingerprints are computed from.
    /// </summary>
    public string ParsingCanonicalForm { get; } = parsingCanonicalForm;

    public IReadOnlyList<ResolvedReference> References { get; } = references;

    public Schema Schema { get; } = schema;

    /// <summary>Full names of the aliases of each named type (Apache.Avro keeps these private).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> NamedTypeAliases { get; } = namedTypeAliases;
}
