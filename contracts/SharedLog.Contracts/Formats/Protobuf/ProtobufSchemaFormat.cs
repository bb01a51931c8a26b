using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Formats.Protobuf;

/// <summary>
/// The Protobuf schema language: parses .proto text with protobuf-net.Reflection and checks
/// compatibility with Confluent's Protobuf rules (see <see cref="ProtobufCompatibilityChecker"/>).
/// </summary>
/// <param name="packageChangeIsCompatible">
/// Confluent has shipped both verdicts for a changed package: older releases report PACKAGE_CHANGED
/// as incompatible, newer ones accept it (the package is not on the wire). Incompatible by default.
/// </param>
public sealed class ProtobufSchemaFormat(bool packageChangeIsCompatible = false) : ISchemaFormat
{
    public SchemaType Type => SchemaType.Protobuf;

    public IParsedSchema Parse(string schemaText, IReadOnlyList<ResolvedReference> references, bool normalize) =>
        ProtobufSchemaParser.Parse(schemaText, references, normalize);

    public IReadOnlyList<string> CheckCompatibility(IParsedSchema reader, IParsedSchema writer)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(writer);
        if (reader is not ProtobufParsedSchema protobufReader || writer is not ProtobufParsedSchema protobufWriter)
        {
            return ["Incompatible because of different schema type"];
        }

        return new ProtobufCompatibilityChecker(protobufReader, protobufWriter, packageChangeIsCompatible).Check();
    }
}
