using System.Text;
using Avro;
using Avro.Generic;
using Avro.IO;
using ProtoBuf;
using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Formats.Protobuf;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;
using SharedLog.Contracts.Rules;

namespace SharedLog.Contracts.Tests;

public class PayloadCodecTests
{
    private static readonly AvroPayloadCodec Avro = new();
    private static readonly JsonPayloadCodec Json = new();
    private static readonly ProtobufPayloadCodec Protobuf = new();

    private const string AllTypesAvro = """
        {"type":"record","name":"All","namespace":"test","fields":[
          {"name":"maybe","type":["null","string"]},
          {"name":"i","type":"int"},
          {"name":"l","type":"long"},
          {"name":"f","type":"float"},
          {"name":"d","type":"double"},
          {"name":"b","type":"boolean"},
          {"name":"raw","type":"bytes"},
          {"name":"s","type":"string"},
          {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
          {"name":"hash","type":{"type":"fixed","name":"Hash","size":4}},
          {"name":"nums","type":{"type":"array","items":"int"}},
          {"name":"counts","type":{"type":"map","values":"long"}},
          {"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":"int"},{"name":"tag","type":"string","default":"none"}]}},
          {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
          {"name":"atMicros","type":{"type":"long","logicalType":"timestamp-micros"}},
          {"name":"day","type":{"type":"int","logicalType":"date"}},
          {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
          {"name":"email","type":"string","default":"unknown@example.com"},
          {"name":"phone","type":["null","string"],"default":null}
        ]}
        """;

    private static AvroParsedSchema ParseAvro(string text) => (AvroParsedSchema)new AvroSchemaFormat().Parse(text, [], normalize: false);

    private static ProtobufParsedSchema ParseProto(string text) => (ProtobufParsedSchema)new ProtobufSchemaFormat().Parse(text, [], normalize: false);

    private static IParsedSchema ParseJsonSchema() => new JsonSchemaFormat().Parse("""{"type":"object"}""", [], normalize: false);

    private static byte[] WriteWithApacheAvro(Schema schema, object datum)
    {
        using var stream = new MemoryStream();
        new GenericDatumWriter<object>(schema).Write(datum, new BinaryEncoder(stream));
        return stream.ToArray();
    }

    private static GenericRecord ReadWithApacheAvro(Schema schema, byte[] bytes)
    {
        using var stream = new MemoryStream(bytes);
        return (GenericRecord)new GenericDatumReader<object>(schema, schema).Read(null!, new BinaryDecoder(stream));
    }

    private static GenericRecord SampleAvroRecord(RecordSchema schema)
    {
        var record = new GenericRecord(schema);
        record.Add("maybe", "present");
        record.Add("i", -42);
        record.Add("l", 1L << 40);
        record.Add("f", 1.5f);
        record.Add("d", -2.25);
        record.Add("b", true);
        record.Add("raw", new byte[] { 1, 2, 3 });
        record.Add("s", "héllo ✓");
        record.Add("color", new GenericEnum((EnumSchema)schema["color"].Schema, "BLUE"));
        record.Add("hash", new GenericFixed((FixedSchema)schema["hash"].Schema, [9, 8, 7, 6]));
        record.Add("nums", new object[] { 1, -1, 300 });
        record.Add("counts", new Dictionary<string, object> { ["a"] = 1L, ["b"] = -2L });
        var inner = new GenericRecord((RecordSchema)schema["inner"].Schema);
        inner.Add("x", 7);
        inner.Add("tag", "t");
        record.Add("inner", inner);
        record.Add("at", new DateTime(2024, 3, 4, 5, 6, 7, 890, DateTimeKind.Utc));
        record.Add("atMicros", new DateTime(2024, 3, 4, 5, 6, 7, DateTimeKind.Utc).AddTicks(1234560));
        record.Add("day", new DateTime(2024, 1, 2, 0, 0, 0, DateTimeKind.Utc));
        record.Add("price", new AvroDecimal(12.34m));
        record.Add("email", "a@b.c");
        record.Add("phone", "555");
        return record;
    }

    [Fact]
    public void Avro_decodes_bytes_written_by_apache_avro_and_encodes_them_back_identically()
    {
        var schema = ParseAvro(AllTypesAvro);
        var bytes = WriteWithApacheAvro(schema.Schema, SampleAvroRecord((RecordSchema)schema.Schema));

        var decoded = Avro.Decode(schema, bytes);
        var value = Assert.IsType<Dictionary<string, object?>>(decoded.Value);
        Assert.Equal(
            ["maybe", "i", "l", "f", "d", "b", "raw", "s", "color", "hash", "nums", "counts", "inner", "at", "atMicros", "day", "price", "email", "phone"],
            value.Keys);
        Assert.Equal("present", value["maybe"]);
        Assert.Equal(-42L, value["i"]);
        Assert.Equal(1L << 40, value["l"]);
        Assert.Equal(1.5, value["f"]);
        Assert.Equal(-2.25, value["d"]);
        Assert.Equal(true, value["b"]);
        Assert.Equal(new byte[] { 1, 2, 3 }, value["raw"]);
        Assert.Equal("héllo ✓", value["s"]);
        Assert.Equal("BLUE", value["color"]);
        Assert.Equal(new byte[] { 9, 8, 7, 6 }, value["hash"]);
        Assert.Equal(new List<object?> { 1L, -1L, 300L }, value["nums"]);
        Assert.Equal(new Dictionary<string, object?> { ["a"] = 1L, ["b"] = -2L }, value["counts"]);
        Assert.Equal(new Dictionary<string, object?> { ["x"] = 7L, ["tag"] = "t" }, value["inner"]);
        Assert.Equal(new DateTimeOffset(2024, 3, 4, 5, 6, 7, 890, TimeSpan.Zero), value["at"]);
        Assert.Equal(new DateTimeOffset(2024, 3, 4, 5, 6, 7, TimeSpan.Zero).AddTicks(1234560), value["atMicros"]);
        Assert.Equal((long)(new DateTime(2024, 1, 2) - DateTime.UnixEpoch).TotalDays, value["day"]);
        Assert.Equal(new byte[] { 0x04, 0xD2 }, value["price"]); // unscaled 1234, big-endian two's complement
        Assert.Null(decoded.MessageFullName);

        Assert.Equal(bytes, Avro.Encode(schema, decoded));
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(3.4e39)]
    [InlineData(0.5)]
    public void Avro_re_encode_keeps_every_double_of_a_float_or_double_union_exact(double amount)
    {
        var schema = ParseAvro("""{"type":"record","name":"M","fields":[{"name":"amount","type":["null","float","double"]}]}""");
        var decoded = new DecodedPayload(new Dictionary<string, object?> { ["amount"] = amount });
        var value = (Dictionary<string, object?>)Avro.Decode(schema, Avro.Encode(schema, decoded)).Value!;
        Assert.Equal(amount, value["amount"]);
    }

    [Fact]
    public void Avro_encode_after_a_policy_rewrite_is_read_by_apache_avro()
    {
        var schema = ParseAvro(AllTypesAvro);
        var decoded = Avro.Decode(schema, WriteWithApacheAvro(schema.Schema, SampleAvroRecord((RecordSchema)schema.Schema)));
        var value = (Dictionary<string, object?>)decoded.Value!;
        value["s"] = "***";                 // redacted string stays a string
        value["raw"] = "hashed";            // a string is accepted for bytes (UTF-8)
        value.Remove("email");              // dropped: written as its default
        value.Remove("phone");              // dropped: written as the default null
        value["maybe"] = null;              // union switches to its null branch
        value["i"] = 5;                     // any CLR integer is accepted
        ((Dictionary<string, object?>)value["inner"]!).Remove("tag");

        var record = ReadWithApacheAvro(schema.Schema, Avro.Encode(schema, decoded));

        Assert.Equal("***", record["s"]);
        Assert.Equal("hashed"u8.ToArray(), (byte[])record["raw"]);
        Assert.Equal("unknown@example.com", record["email"]);
        Assert.Null(record["phone"]);
        Assert.Null(record["maybe"]);
        Assert.Equal(5, record["i"]);
        Assert.Equal("none", ((GenericRecord)record["inner"])["tag"]);
        Assert.Equal(new DateTime(2024, 3, 4, 5, 6, 7, 890, DateTimeKind.Utc), ((DateTime)record["at"]).ToUniversalTime());
    }

    [Fact]
    public void Avro_uuid_and_decimal_fields_masked_by_privacy_rules_stay_readable_as_their_logical_types()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"Account","fields":[
              {"name":"id","type":{"type":"string","logicalType":"uuid"}},
              {"name":"owner","type":["null",{"type":"string","logicalType":"uuid"}]},
              {"name":"balance","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
              {"name":"limit","type":{"type":"fixed","name":"Limit","size":8,"logicalType":"decimal","precision":10,"scale":2}}]}
            """);
        var record = new GenericRecord((RecordSchema)schema.Schema);
        var id = Guid.Parse("0b5d4f3e-6c2a-4d2e-9f7a-1c2b3d4e5f60");
        record.Add("id", id);
        record.Add("owner", Guid.Parse("11111111-2222-4333-8444-555555555555"));
        record.Add("balance", new AvroDecimal(12345.67m));
        record.Add("limit", new AvroDecimal(100.00m));
        byte[] original = WriteWithApacheAvro(schema.Schema, record);

        var rewriter = new SharedLog.Contracts.Policy.PrivacyRewriter("k"u8.ToArray());
        var decoded = Avro.Decode(schema, original);
        var value = (Dictionary<string, object?>)decoded.Value!;
        Assert.Equal(new UuidText(id.ToString("D")), value["id"]);
        // Also where the gate decodes, leaving other strings as slices of the payload.
        Assert.Equal(new UuidText(id.ToString("D")), ((Dictionary<string, object?>)Avro.Decode(schema, original.AsMemory()).Value!)["id"]);
        Assert.Equal(SharedLog.Contracts.Rules.RuleValue.String(id.ToString("D")), SharedLog.Contracts.Rules.RuleValue.FromObject(value["id"]));
        Assert.True(rewriter.Apply(value, "id", PrivacyAction.Hash, out _));
        Assert.True(rewriter.Apply(value, "owner", PrivacyAction.Redact, out _));
        Assert.True(rewriter.Apply(value, "balance", PrivacyAction.Redact, out _));
        Assert.True(rewriter.Apply(value, "limit", PrivacyAction.Redact, out _));
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["id"], ["owner"], ["balance"], ["limit"]], [], output);

        GenericRecord read = ReadWithApacheAvro(schema.Schema, output.WrittenSpan.ToArray());
        var hashed = Assert.IsType<Guid>(read["id"]);
        Assert.NotEqual(id, hashed);
        Assert.Equal(8, hashed.Version);
        Assert.Equal(Guid.Empty, read["owner"]);
        Assert.Equal(0m, ((AvroDecimal)read["balance"]).ToType<decimal>());
        Assert.Equal(0m, ((AvroDecimal)read["limit"]).ToType<decimal>());

        // Stable: the same UUID hashes to the same UUID, so hashed ids still join.
        var again = Avro.Decode(schema, original);
        Assert.True(rewriter.Apply(again.Value, "id", PrivacyAction.Hash, out _));
        Assert.Equal(new UuidText(hashed.ToString("D")), ((Dictionary<string, object?>)again.Value!)["id"]);

        // A UUID written in capitals stays as written for rules and for a fresh encode, and hashes as its lowercase form.
        // Written by hand (Apache Avro writes uuids through Guid, in lowercase): id, owner null, balance 1.00, limit 1.00.
        byte[] upperBytes = [0x48, .. Encoding.ASCII.GetBytes(id.ToString("D").ToUpperInvariant()), 0x00, 0x02, 0x64, 0, 0, 0, 0, 0, 0, 0, 0x64];
        var upperDecoded = Avro.Decode(schema, upperBytes);
        Assert.Equal(SharedLog.Contracts.Rules.RuleValue.String(id.ToString("D").ToUpperInvariant()), SharedLog.Contracts.Rules.RuleValue.FromObject(((Dictionary<string, object?>)upperDecoded.Value!)["id"]));
        Assert.Equal(upperBytes, Avro.Encode(schema, upperDecoded));
        Assert.True(rewriter.Apply(upperDecoded.Value, "id", PrivacyAction.Hash, out _));
        Assert.Equal(new UuidText(hashed.ToString("D")), ((Dictionary<string, object?>)upperDecoded.Value!)["id"]);
    }

    [Fact]
    public void Avro_uuid_on_a_16_byte_fixed_reads_as_a_uuid_as_Java_reads_it_and_writes_back_as_its_bytes()
    {
        // Avro 1.12 (Java) takes uuid on a fixed(16), big-endian; Apache.Avro's C# parser refuses the schema, so it is parsed
        // without the logical type, but the field is still a UUID for rules and privacy, not 16 bytes.
        var schema = ParseAvro("""
            {"type":"record","name":"Event","fields":[
              {"name":"id","type":{"type":"fixed","name":"EventId","size":16,"logicalType":"uuid"}},
              {"name":"parent","type":["null","EventId"]},
              {"name":"note","type":"string"}]}
            """);
        Assert.Contains("\"logicalType\":\"uuid\"", schema.Canonical, StringComparison.Ordinal);
        Assert.DoesNotContain(SharedLog.Contracts.Formats.Avro.AvroInvalidLogicalTypes.UuidFixedMarker, schema.Canonical, StringComparison.Ordinal);
        byte[] idBytes = Convert.FromHexString("0102030405060708090A0B0C0D0E0F10");
        byte[] payload = [.. idBytes, 0x02, .. idBytes, 0x04, (byte)'h', (byte)'i'];

        var decoded = Avro.Decode(schema, payload.AsMemory());
        var value = (Dictionary<string, object?>)decoded.Value!;
        Assert.Equal(new UuidText("01020304-0506-0708-090a-0b0c0d0e0f10"), value["id"]);
        Assert.Equal(new UuidText("01020304-0506-0708-090a-0b0c0d0e0f10"), value["parent"]);
        Assert.True(SharedLog.Contracts.Rules.CelRule.Compile("value.id == '01020304-0506-0708-090a-0b0c0d0e0f10' && value.parent == value.id").Evaluate(new Dictionary<string, object?> { ["value"] = value }).IsPassed);
        Assert.Equal(payload, Avro.Encode(schema, decoded));

        // Hashed, it is another UUID of 16 bytes, and the union keeps its branch.
        var rewriter = new SharedLog.Contracts.Policy.PrivacyRewriter("k"u8.ToArray());
        Assert.True(rewriter.Apply(value, "id", PrivacyAction.Hash, out _));
        Assert.True(rewriter.Apply(value, "parent", PrivacyAction.Redact, out _));
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, payload, [["id"], ["parent"]], [], output);
        byte[] rewritten = output.WrittenSpan.ToArray();
        Assert.Equal(payload.Length, rewritten.Length);
        Assert.NotEqual(idBytes, rewritten[..16]);
        Assert.Equal(new Guid(rewritten.AsSpan(0, 16), bigEndian: true).ToString("D"), ((UuidText)value["id"]!).Text);
        Assert.Equal([0x02, .. new byte[16]], rewritten[16..33]);
        Assert.Equal(payload[33..], rewritten[33..]);

        // Next to a plain 16-byte fixed in a union, the bytes of the plain one stay in its branch when encoded afresh.
        var union = ParseAvro("""
            {"type":"record","name":"R","fields":[{"name":"v","type":["null",
              {"type":"fixed","name":"U","size":16,"logicalType":"uuid"},{"type":"fixed","name":"Md5","size":16}]}]}
            """);
        byte[] md5 = [0x04, .. idBytes];
        Assert.Equal(md5, Avro.Encode(union, Avro.Decode(union, md5.AsMemory())));
    }

    [Fact]
    public void Avro_rewrite_through_a_nullable_record_keeps_every_union_branch_the_producer_chose()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"Pay","fields":[
              {"name":"n","type":["int","long"]},
              {"name":"c","type":[{"type":"enum","name":"Color","symbols":["RED","BLUE"]},"string"]},
              {"name":"card","type":["null",{"type":"record","name":"Card","fields":[
                {"name":"number","type":"string"},
                {"name":"code","type":["null","int","long"]}]}]},
              {"name":"after","type":["int","long"]}]}
            """);
        var record = new GenericRecord((RecordSchema)schema.Schema);
        var cardSchema = (RecordSchema)((UnionSchema)((RecordSchema)schema.Schema)["card"].Schema)[1];
        var card = new GenericRecord(cardSchema);
        card.Add("number", "4111111111111111");
        card.Add("code", 7L);
        record.Add("n", 5L);         // long branch, though an int would hold it
        record.Add("c", "RED");      // string branch, though it is also an enum symbol
        record.Add("card", card);
        record.Add("after", 9L);
        byte[] original = WriteWithApacheAvro(schema.Schema, record);

        var decoded = Avro.Decode(schema, original);
        var values = (Dictionary<string, object?>)decoded.Value!;
        var decodedCard = (Dictionary<string, object?>)values["card"]!;
        decodedCard["number"] = "****";
        decodedCard["code"] = 0L;  // rewritten to a value that still fits the long branch it came in
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["card", "number"], ["card", "code"]], [], output);

        GenericRecord read = ReadWithApacheAvro(schema.Schema, output.WrittenSpan.ToArray());
        Assert.IsType<long>(read["n"]);
        Assert.IsType<string>(read["c"]);
        Assert.IsType<long>(read["after"]);
        var readCard = (GenericRecord)read["card"];
        Assert.Equal("****", readCard["number"]);
        Assert.Equal(0L, Assert.IsType<long>(readCard["code"]));

        // The fields before the card are the producer's bytes, unchanged.
        int prefix = original.AsSpan().CommonPrefixLength(output.WrittenSpan);
        Assert.True(prefix >= 4, $"only {prefix} bytes kept before the rewritten field");
    }

    [Fact]
    public void Avro_drop_is_spliced_as_the_default_and_other_unions_keep_their_branches()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"Pay","fields":[
              {"name":"n","type":["int","long"]},
              {"name":"email","type":"string","default":"unknown@example.com"},
              {"name":"phone","type":["null","string"]},
              {"name":"after","type":["int","long"]}]}
            """);
        var record = new GenericRecord((RecordSchema)schema.Schema);
        record.Add("n", 5L);
        record.Add("email", "ada@example.com");
        record.Add("phone", "+44 1");
        record.Add("after", 9L);
        byte[] original = WriteWithApacheAvro(schema.Schema, record);
        var decoded = Avro.Decode(schema, original);
        var values = (Dictionary<string, object?>)decoded.Value!;
        values.Remove("email");
        values.Remove("phone");
        Assert.True(((IPayloadCodec)Avro).SplicesRemovedFields);

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["email"], ["phone"]], [], output);

        GenericRecord read = ReadWithApacheAvro(schema.Schema, output.WrittenSpan.ToArray());
        Assert.Equal("unknown@example.com", read["email"]);
        Assert.Null(read["phone"]);
        Assert.IsType<long>(read["n"]);
        Assert.IsType<long>(read["after"]);
    }

    [Fact]
    public void Avro_rewrite_under_a_null_branch_leaves_the_payload_as_it_was()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"Pay","fields":[
              {"name":"n","type":["int","long"]},
              {"name":"card","type":["null",{"type":"record","name":"Card","fields":[{"name":"number","type":"string"}]}]}]}
            """);
        var record = new GenericRecord((RecordSchema)schema.Schema);
        record.Add("n", 5L);
        record.Add("card", null);
        byte[] original = WriteWithApacheAvro(schema.Schema, record);
        var decoded = Avro.Decode(schema, original);
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["card", "number"]], [], output);
        Assert.Equal(original, output.WrittenSpan.ToArray());
    }

    [Fact]
    public void Avro_rewrite_through_an_array_keeps_each_union_item_the_record_type_it_was()
    {
        // Dropping email leaves a Signup with Ping's field names; chosen by value, the item became a Ping.
        var schema = ParseAvro("""
            {"type":"record","name":"Batch","fields":[{"name":"events","type":{"type":"array","items":[
              {"type":"record","name":"Signup","fields":[{"name":"id","type":"string"},{"name":"email","type":["null","string"],"default":null}]},
              {"type":"record","name":"Ping","fields":[{"name":"id","type":"string"}]}]}}]}
            """);
        byte[] original = Convert.FromHexString("0200047531021E616461406578616D706C652E636F6D00");
        var decoded = Avro.Decode(schema, original);
        var item = (Dictionary<string, object?>)((List<object?>)((Dictionary<string, object?>)decoded.Value!)["events"]!)[0]!;
        item.Remove("email");

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["events", "email"]], [], output);

        var events = (object[])ReadWithApacheAvro(schema.Schema, output.WrittenSpan.ToArray())["events"];
        var signup = Assert.IsType<GenericRecord>(Assert.Single(events));
        Assert.Equal("Signup", signup.Schema.Name);
        Assert.Equal("u1", signup["id"]);
        Assert.Null(signup["email"]);
    }

    [Fact]
    public void Avro_rewrite_through_an_array_leaves_untouched_unions_on_their_branches()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"Order","fields":[
              {"name":"n","type":["int","long"]},{"name":"f","type":["float","double"]},
              {"name":"status","type":[{"type":"enum","name":"S","symbols":["OK","BAD"]},"string"]},
              {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[{"name":"sku","type":"string"}]}}}]}
            """);
        // n = 5 as a long, f = 0.5 as a double, status "OK" as a string, one line with sku "a".
        byte[] original = Convert.FromHexString("020A02000000000000E03F02044F4B0202" + "6100");
        var decoded = Avro.Decode(schema, original);
        var line = (Dictionary<string, object?>)((List<object?>)((Dictionary<string, object?>)decoded.Value!)["lines"]!)[0]!;
        line["sku"] = PrivacyRewriter.RedactedText;

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["lines", "sku"]], [], output);

        Assert.Equal("020A02000000000000E03F02044F4B0208" + "2A2A2A2A00", Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void Avro_rewrite_keeps_a_union_record_whose_field_names_another_branch_shares()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"Batch","fields":[{"name":"events","type":{"type":"array","items":[
              {"type":"record","name":"A","fields":[{"name":"id","type":"string"},{"name":"note","type":"string"}]},
              {"type":"record","name":"B","fields":[{"name":"id","type":"long"},{"name":"note","type":"string"}]}]}}]}
            """);
        byte[] original = Convert.FromHexString("02020E0C73656372657400"); // one B { id 7, note "secret" }
        var decoded = Avro.Decode(schema, original);
        var item = (Dictionary<string, object?>)((List<object?>)((Dictionary<string, object?>)decoded.Value!)["events"]!)[0]!;
        item["note"] = PrivacyRewriter.RedactedText;

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["events", "note"]], [], output);
        Assert.Equal("02020E082A2A2A2A00", Convert.ToHexString(output.WrittenSpan));

        // Written by value alone (no original to follow), the long id tells B from A by its type, not only by its name.
        Assert.Equal("02020E082A2A2A2A00", Convert.ToHexString(Avro.Encode(schema, decoded)));
    }

    [Fact]
    public void Avro_records_with_optional_fields_are_still_their_union_branch()
    {
        // From the verification review: the type check of a union branch's fields read a nullable field as fitting nothing,
        // so a nullable record with an optional field present could not be written again at all.
        var nested = ParseAvro("""
            {"type":"record","name":"R","fields":[{"name":"addr","type":["null",
              {"type":"record","name":"Addr","fields":[{"name":"street","type":["null","string"]}]}]}]}
            """);
        byte[] payload = [0x02, 0x02, 0x04, (byte)'a', (byte)'b'];
        Assert.Equal(payload, Avro.Encode(nested, Avro.Decode(nested, payload)));

        var events = ParseAvro("""
            {"type":"record","name":"Batch","fields":[{"name":"events","type":{"type":"array","items":[
              {"type":"record","name":"Signup","fields":[{"name":"id","type":"string"},{"name":"email","type":["null","string"],"default":null}]},
              {"type":"record","name":"Ping","fields":[{"name":"id","type":"string"}]}]}}]}
            """);
        byte[] original = Convert.FromHexString("0200047531021E616461406578616D706C652E636F6D00");
        var decoded = Avro.Decode(events, original);
        ((Dictionary<string, object?>)((List<object?>)((Dictionary<string, object?>)decoded.Value!)["events"]!)[0]!)["id"] = PrivacyRewriter.RedactedText;
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(events, decoded, original, [["events", "id"]], [], output);
        Assert.Equal("0200082A2A2A2A021E616461406578616D706C652E636F6D00", Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void Avro_map_written_again_keeps_each_value_on_the_branch_of_its_keys_last_value()
    {
        // A dropped entry put later keys out of step (b became an int), and a repeated key was guided by its first value
        // while the decoded map kept its last.
        var schema = ParseAvro("""{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":["int","long"]}}]}""");
        byte[] original = Convert.FromHexString("0402610" + "20A0262020E00"); // a: long 5, b: long 7
        var decoded = Avro.Decode(schema, original);
        ((Dictionary<string, object?>)((Dictionary<string, object?>)decoded.Value!)["m"]!).Remove("a");
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["m", "a"]], [], output);
        Assert.Equal("020262020E00", Convert.ToHexString(output.WrittenSpan));

        var repeated = ParseAvro("""
            {"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":["int","long"]}},
              {"name":"arr","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"x","type":"string"}]}}}]}
            """);
        byte[] withRepeat = Convert.FromHexString("060261000202620" + "20E02610206000202" + "7100"); // a: int 1, b: long 7, a: long 3; arr [q]
        var values = (Dictionary<string, object?>)Avro.Decode(repeated, withRepeat).Value!;
        ((Dictionary<string, object?>)((List<object?>)values["arr"]!)[0]!)["x"] = PrivacyRewriter.RedactedText;
        output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(repeated, new DecodedPayload(values), withRepeat, [["arr", "x"]], [], output);
        Assert.Equal("040261020602620" + "20E0002082A2A2A2A00", Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void Json_rewrite_of_more_than_64_paths_keeps_the_text_of_every_other_number()
    {
        // From a fuzz review: past 64 changed paths (a tag rule on a wide schema) the record was written from the graph,
        // so untouched numbers lost their text: 1.0 became 1, and a 20-digit integer a rounded double.
        var members = string.Join(",", Enumerable.Range(0, 70).Select(i => $"\"f{i}\":\"s{i}\""));
        byte[] original = Encoding.UTF8.GetBytes("{" + members + ",\"n\":1.0,\"big\":12345678901234567890,\"e\":1e3}");
        var schema = ParseJsonSchema();
        var decoded = Json.Decode(schema, (ReadOnlyMemory<byte>)original);
        var fields = (Dictionary<string, object?>)decoded.Value!;
        var paths = new List<string[]>();
        for (int i = 0; i < 70; i++)
        {
            fields[$"f{i}"] = PrivacyRewriter.RedactedText;
            paths.Add([$"f{i}"]);
        }

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Json.EncodeRewrite(schema, decoded, original, paths, "P"u8, output);
        string redacted = string.Join(",", Enumerable.Range(0, 70).Select(i => $"\"f{i}\":\"****\""));
        Assert.Equal("P{" + redacted + ",\"n\":1.0,\"big\":12345678901234567890,\"e\":1e3}", Encoding.UTF8.GetString(output.WrittenSpan));

        // A path under a member a later path drops (a tag rule covering a.b, then a rule dropping a), in an earlier pass.
        byte[] nested = Encoding.UTF8.GetBytes("{" + members + ",\"a\":{\"b\":\"secret\",\"c\":1.0},\"n\":1.0}");
        var nestedDecoded = Json.Decode(schema, (ReadOnlyMemory<byte>)nested);
        var nestedFields = (Dictionary<string, object?>)nestedDecoded.Value!;
        var nestedPaths = new List<string[]>();
        nestedPaths.Add(["a", "b"]);
        for (int i = 0; i < 70; i++)
        {
            nestedFields[$"f{i}"] = PrivacyRewriter.RedactedText;
            nestedPaths.Add([$"f{i}"]);
        }

        nestedFields.Remove("a");
        nestedPaths.Add(["a"]);
        output = new System.Buffers.ArrayBufferWriter<byte>();
        Json.EncodeRewrite(schema, nestedDecoded, nested, nestedPaths, [], output);
        Assert.Equal("{" + redacted + ",\"n\":1.0}", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void A_signalling_NaN_float_is_written_again_bit_for_bit()
    {
        // Widening a float to a double sets a NaN's quiet bit: a record written again changed a float no policy touched.
        var proto = ParseProto("syntax = \"proto3\";\npackage p;\nmessage F { float f = 1; string s = 2; }\n");
        byte[] payload = Convert.FromHexString("000D0100807F120161");
        var decoded = Protobuf.Decode(proto, payload);
        ((Dictionary<string, object?>)decoded.Value!)["s"] = PrivacyRewriter.RedactedText;
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, payload, [["s"]], [], output);
        Assert.Equal("000D0100807F12042A2A2A2A", Convert.ToHexString(output.WrittenSpan));

        var avro = ParseAvro("""{"type":"record","name":"R","fields":[{"name":"f","type":"float"},{"name":"s","type":"string"}]}""");
        byte[] avroPayload = Convert.FromHexString("0100807F0261");
        Assert.Equal(avroPayload, Avro.Encode(avro, Avro.Decode(avro, avroPayload)));
        Assert.Equal(0x7FC00000u, PayloadValues.NarrowToFloatBits(BitConverter.UInt64BitsToDouble(0x7FF0000000000001))); // payload below a float's: the quiet NaN
    }

    [Fact]
    public void Protobuf_masked_top_level_fields_are_spliced_into_the_bytes_as_they_came()
    {
        var proto = ParseProto("syntax = \"proto3\";\npackage p;\nmessage M { string id = 1; string email = 2; int64 n = 3; string note = 4; optional string phone = 5; }\n");
        // Message index 0, then the fields out of number order (note, email, id, n, phone), as a producer may write them.
        byte[] payload = Convert.FromHexString("00" + "22026869" + "1203614062" + "0A0178" + "1805" + "2A023132");
        var decoded = Protobuf.Decode(proto, payload);
        var value = (Dictionary<string, object?>)decoded.Value!;
        var rewriter = new PrivacyRewriter("k"u8.ToArray());
        Assert.True(rewriter.Apply(value, "email", PrivacyAction.Hash, out _));
        Assert.True(rewriter.Apply(value, "n", PrivacyAction.Drop, out _));
        Assert.True(rewriter.Apply(value, "phone", PrivacyAction.Redact, out _));
        byte[] hashed = Encoding.UTF8.GetBytes(Assert.IsType<string>(value["email"]));
        Assert.NotEqual("a@b"u8.ToArray(), hashed);

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, payload, [["email"], ["n"], ["phone"]], [0xAB], output);

        // The untouched fields keep their place and bytes; the dropped one is gone; a whole encoding would have written
        // them in number order.
        byte[] expected = [0xAB, 0x00, 0x22, 0x02, (byte)'h', (byte)'i', 0x12, (byte)hashed.Length, .. hashed, 0x0A, 0x01, (byte)'x', 0x2A, 0x04, .. "****"u8];
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(output.WrittenSpan));
        var reread = (Dictionary<string, object?>)Protobuf.Decode(proto, output.WrittenSpan[1..]).Value!;
        Assert.Equal(value["email"], reread["email"]);
        Assert.False(reread.ContainsKey("n"));
        Assert.Equal("hi", reread["note"]);
    }

    [Fact]
    public void Protobuf_strings_decoded_from_the_gates_memory_stay_utf8_slices_and_read_and_write_as_strings()
    {
        var proto = ParseProto("syntax = \"proto3\";\npackage p;\nmessage M { string name = 1; map<string, string> tags = 2; string empty = 3; repeated string list = 4; }\n");
        // name "a@", tags {"k": "v"}, empty given as "" (its default: not set), list ["x", "y"].
        byte[] payload = Convert.FromHexString("00" + "0A026140" + "12060A016B120176" + "1A00" + "220178" + "220179");
        var decoded = Protobuf.Decode(proto, payload.AsMemory());
        var value = (Dictionary<string, object?>)decoded.Value!;
        Assert.Equal("a@", Assert.IsType<Utf8Text>(value["name"]).ToString());
        var tags = Assert.IsAssignableFrom<Dictionary<string, object?>>(value["tags"]);
        Assert.Equal("v", Assert.IsType<Utf8Text>(tags[Assert.Single(tags.Keys)]).ToString());
        Assert.Equal("k", tags.Keys.Single());
        Assert.False(value.ContainsKey("empty"));
        Assert.Equal(["x", "y"], Assert.IsType<List<object?>>(value["list"]).Select(item => Assert.IsType<Utf8Text>(item).ToString()));
        Assert.True(SharedLog.Contracts.Rules.CelRule.Compile("value.name == 'a@' && value.tags['k'] == 'v' && value.empty == '' && size(value.list) == 2 && value.list[1] == 'y'")
            .Evaluate(new Dictionary<string, object?> { ["value"] = value }).IsPassed);
        Assert.Equal(Convert.ToHexString(Protobuf.Encode(proto, Protobuf.Decode(proto, payload))), Convert.ToHexString(Protobuf.Encode(proto, decoded)));

        // Hashed, the name is written from the hash's own text.
        Assert.True(new PrivacyRewriter("k"u8.ToArray()).Apply(value, "name", PrivacyAction.Hash, out _));
        string hashed = Utf8Text.AsString(value["name"])!;
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, payload, [["name"]], [], output);
        Assert.Equal(hashed, ((Dictionary<string, object?>)Protobuf.Decode(proto, output.WrittenSpan).Value!)["name"]);
        Assert.Equal(-1, output.WrittenSpan.IndexOf("a@"u8));
    }

    [Fact]
    public void Protobuf_fields_of_low_high_and_unknown_numbers_decode_in_each_top_level_message_the_index_names()
    {
        var proto = ParseProto("syntax = \"proto3\";\npackage p;\nmessage A { string a = 1; }\nmessage B { int64 low = 2; int64 high = 200; int64 top = 536870911; }\n");
        // [1] (B): low 3, an unknown field 5 (varint 9), high 4, top 5; then [0] (A) and [1] again, so each index keeps its own message.
        byte[] b = Convert.FromHexString("0202" + "1003" + "2809" + "C00C04" + "F8FFFFFF0F05");
        byte[] a = Convert.FromHexString("00" + "0A0178");
        for (int round = 0; round < 2; round++)
        {
            var decodedB = Protobuf.Decode(proto, b.AsMemory());
            Assert.Equal("p.B", decodedB.MessageFullName);
            var valueB = (Dictionary<string, object?>)decodedB.Value!;
            Assert.Equal([("high", (object?)4L), ("low", 3L), ("top", 5L)], valueB.OrderBy(pair => pair.Key, StringComparer.Ordinal).Select(pair => (pair.Key, pair.Value)));
            Assert.True(ProtobufPayloadCodec.HasUnknownFields(valueB));
            var decodedA = Protobuf.Decode(proto, a.AsMemory());
            Assert.Equal("p.A", decodedA.MessageFullName);
            Assert.Equal("x", ((Dictionary<string, object?>)decodedA.Value!)["a"]!.ToString());
        }
    }

    [Fact]
    public void A_protobuf_field_sent_twice_or_not_at_the_top_level_is_written_whole_with_no_trace_of_its_clear_values()
    {
        var proto = ParseProto("syntax = \"proto3\";\npackage p;\nmessage M { string email = 1; Inner inner = 2; oneof contact { string phone = 3; string fax = 4; } string note = 5; }\nmessage Inner { string email = 1; }\n");
        var rewriter = new PrivacyRewriter("k"u8.ToArray());

        // email twice: a parser keeps the last, but the first is still in the bytes; the rewrite must carry neither.
        byte[] twice = Convert.FromHexString("00" + "2A0178" + "0A03612D31" + "0A03612D32");
        var decoded = Protobuf.Decode(proto, twice);
        Assert.Equal("a-2", ((Dictionary<string, object?>)decoded.Value!)["email"]);
        Assert.True(rewriter.Apply(decoded.Value, "email", PrivacyAction.Hash, out _));
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, twice, [["email"]], [], output);
        Assert.Equal(-1, output.WrittenSpan.IndexOf("a-1"u8));
        Assert.Equal(-1, output.WrittenSpan.IndexOf("a-2"u8));
        Assert.Equal(Convert.ToHexString(Protobuf.Encode(proto, decoded)), Convert.ToHexString(output.WrittenSpan));

        // A nested field and a oneof member: encoded whole too (number order), masked.
        byte[] nested = Convert.FromHexString("00" + "2A0178" + "1A03312D32" + "12050A03622D31");
        decoded = Protobuf.Decode(proto, nested);
        Assert.True(rewriter.Apply(decoded.Value, "inner.email", PrivacyAction.Redact, out _));
        Assert.True(rewriter.Apply(decoded.Value, "phone", PrivacyAction.Redact, out _));
        output = new System.Buffers.ArrayBufferWriter<byte>();
        ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, nested, [["inner", "email"], ["phone"]], [], output);
        Assert.Equal("00" + "12060A042A2A2A2A" + "1A042A2A2A2A" + "2A0178", Convert.ToHexString(output.WrittenSpan));
    }

    [Fact]
    public void A_protobuf_splice_that_would_drop_a_required_field_is_refused()
    {
        var proto = ParseProto("syntax = \"proto2\";\npackage p;\nmessage R { required string email = 1; optional string note = 2; }\n");
        byte[] payload = Convert.FromHexString("00" + "1201780A03612D31");
        var decoded = Protobuf.Decode(proto, payload);
        Assert.True(new PrivacyRewriter("k"u8.ToArray()).Apply(decoded.Value, "email", PrivacyAction.Drop, out _));
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        var refused = Assert.Throws<PayloadDecodeException>(() => ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, payload, [["email"]], [], output));
        Assert.Contains("R.email is a required field", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, output.WrittenCount);
    }

    [Fact]
    public void A_privacy_path_into_a_protobuf_timestamp_is_a_problem_not_a_silent_no_op()
    {
        var proto = ParseProto("syntax = \"proto3\";\npackage p;\nimport \"google/protobuf/timestamp.proto\";\nmessage T { google.protobuf.Timestamp born = 1; string name = 2; }\n");
        var value = Protobuf.Decode(proto, Convert.FromHexString("000A0608E80710C801120178")).Value;
        Assert.False(new PrivacyRewriter("k"u8.ToArray()).Apply(value, "born.seconds", PrivacyAction.Redact, out string? problem));
        Assert.Contains("masked whole only: name 'born'", problem, StringComparison.Ordinal);

        // Each of a repeated field's Timestamps too.
        var repeated = ParseProto("syntax = \"proto3\";\npackage p;\nimport \"google/protobuf/timestamp.proto\";\nmessage S { repeated google.protobuf.Timestamp seen = 2; }\n");
        var seen = Protobuf.Decode(repeated, Convert.FromHexString("00120308E807120308D00F")).Value;
        Assert.False(new PrivacyRewriter("k"u8.ToArray()).Apply(seen, "seen.seconds", PrivacyAction.Redact, out string? repeatedProblem));
        Assert.Contains("masked whole only: name 'seen'", repeatedProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Avro_redacted_enum_in_a_union_with_string_stays_the_enum_at_its_default()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"R","fields":[{"name":"status","type":["null","string",
              {"type":"enum","name":"S","symbols":["UNKNOWN","OK"],"default":"UNKNOWN"}]}]}
            """);
        byte[] original = [0x04, 0x02]; // the enum branch, OK
        var decoded = Avro.Decode(schema, original);
        ((Dictionary<string, object?>)decoded.Value!)["status"] = PrivacyRewriter.RedactedText;

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["status"]], [], output);
        Assert.Equal(new byte[] { 0x04, 0x00 }, output.WrittenSpan.ToArray());
    }

    [Fact]
    public void Avro_redacted_big_decimal_is_zero_as_avro_writes_it()
    {
        var schema = ParseAvro("""{"type":"record","name":"R","fields":[{"name":"amount","type":{"type":"bytes","logicalType":"big-decimal"}}]}""");
        byte[] original = [0x06, 0x02, 0x0F, 0x02]; // 1.5: unscaled 15, scale 1
        var decoded = Avro.Decode(schema, original);
        ((Dictionary<string, object?>)decoded.Value!)["amount"] = Array.Empty<byte>();

        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["amount"]], [], output);
        Assert.Equal(new byte[] { 0x06, 0x02, 0x00, 0x00 }, output.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData("i")]
    [InlineData("color")]
    public void Avro_dropping_a_field_without_default_or_null_fails_naming_the_field(string field)
    {
        var schema = ParseAvro(AllTypesAvro);
        var decoded = Avro.Decode(schema, WriteWithApacheAvro(schema.Schema, SampleAvroRecord((RecordSchema)schema.Schema)));
        ((Dictionary<string, object?>)decoded.Value!).Remove(field);

        var error = Assert.Throws<PayloadDecodeException>(() => Avro.Encode(schema, decoded));
        Assert.Contains($"All.{field}", error.Message, StringComparison.Ordinal);
        Assert.Contains("cannot be", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s", 5L, "cannot be written as string")]
    [InlineData("color", "PURPLE", "is not a symbol")]
    [InlineData("hash", new byte[] { 1 }, "fixed")]
    [InlineData("unknownField", "x", "has no field 'unknownField'")]
    public void Avro_encode_rejects_values_the_schema_cannot_hold(string field, object value, string expected)
    {
        var schema = ParseAvro(AllTypesAvro);
        var decoded = Avro.Decode(schema, WriteWithApacheAvro(schema.Schema, SampleAvroRecord((RecordSchema)schema.Schema)));
        ((Dictionary<string, object?>)decoded.Value!)[field] = value;

        var error = Assert.Throws<PayloadDecodeException>(() => Avro.Encode(schema, decoded));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Avro_union_branches_round_trip_through_the_graph()
    {
        var schema = ParseAvro("""
            {"type":"record","name":"U","fields":[
              {"name":"v","type":{"type":"array","items":["null","int","string",{"type":"record","name":"P","fields":[{"name":"p","type":"long"}]},{"type":"map","values":"string"}]}}
            ]}
            """);
        var record = new GenericRecord((RecordSchema)schema.Schema);
        var p = new GenericRecord((RecordSchema)((UnionSchema)((ArraySchema)((RecordSchema)schema.Schema)["v"].Schema).ItemSchema)[3]);
        p.Add("p", 9L);
        record.Add("v", new object?[] { null, 3, "s", p, new Dictionary<string, object> { ["k"] = "v" } });
        var bytes = WriteWithApacheAvro(schema.Schema, record);

        var decoded = Avro.Decode(schema, bytes);
        var items = (List<object?>)((Dictionary<string, object?>)decoded.Value!)["v"]!;
        Assert.Equal([null, 3L, "s", new Dictionary<string, object?> { ["p"] = 9L }, new Dictionary<string, object?> { ["k"] = "v" }], items);
        Assert.Equal(bytes, Avro.Encode(schema, decoded));
    }

    [Fact]
    public void Avro_reads_blocks_with_negative_counts_and_byte_sizes()
    {
        var schema = ParseAvro("""{"type":"array","items":"int"}""");
        // block of -2 items (zig-zag 3) with byte size 2 (zig-zag 4), items 1 and 2, then a block of 1 item (3), end.
        var decoded = Avro.Decode(schema, [0x03, 0x04, 0x02, 0x04, 0x02, 0x06, 0x00]);
        Assert.Equal(new List<object?> { 1L, 2L, 3L }, decoded.Value);
    }

    public static TheoryData<string, string, byte[]> HostileAvro => new()
    {
        { "empty payload", "\"int\"", [] },
        { "truncated string", "\"string\"", [0x0A, (byte)'a'] },
        { "negative string length", "\"string\"", [0x01, (byte)'a'] },
        { "claimed 2 GB string in 10 bytes", "\"string\"", [0x80, 0x80, 0x80, 0x80, 0x10, 1, 2, 3, 4, 5] },
        { "claimed huge bytes length", "\"bytes\"", [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] },
        { "varint longer than 64 bits", "\"long\"", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] },
        { "int beyond 32 bits", "\"int\"", [0x80, 0x80, 0x80, 0x80, 0x10] },
        { "truncated double", "\"double\"", [1, 2, 3] },
        { "truncated fixed", """{"type":"fixed","name":"F","size":16}""", [1, 2, 3] },
        { "boolean byte 2", "\"boolean\"", [2] },
        { "trailing garbage", "\"int\"", [0x02, 0xFF] },
        { "invalid UTF-8 in string", "\"string\"", [0x04, 0xC3, 0x28] },
        { "union index past the branches", """["null","string"]""", [0x04] },
        { "negative union index", """["null","string"]""", [0x01] },
        { "enum index past the symbols", """{"type":"enum","name":"E","symbols":["A","B"]}""", [0x0A] },
        { "negative enum index", """{"type":"enum","name":"E","symbols":["A","B"]}""", [0x01] },
        { "array block count over the element budget", """{"type":"array","items":"null"}""", [0x82, 0x89, 0x7A, 0x00] },
        { "huge negative block count", """{"type":"array","items":"int"}""", [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00] },
        { "block byte size past the end", """{"type":"array","items":"int"}""", [0x01, 0x7E, 0x02, 0x00] },
        { "array missing its end block", """{"type":"array","items":"int"}""", [0x02, 0x02] },
        { "array block whose items outrun its byte size", """{"type":"array","items":"string"}""", [0x01, 0x02, 0x04, (byte)'a', (byte)'b', 0x00] },
        { "array block whose items fall short of its byte size", """{"type":"array","items":"int"}""", [0x01, 0x04, 0x02, 0x06, 0x00] },
        { "map block whose entries outrun its byte size", """{"type":"map","values":"int"}""", [0x01, 0x02, 0x02, (byte)'k', 0x02, 0x00] },
        { "map with truncated key", """{"type":"map","values":"int"}""", [0x02, 0x08, (byte)'k'] },
        { "deep recursion", """{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}""", [.. Enumerable.Repeat((byte)0x02, 100), 0x00] },
        { "int 0 in 6 bytes (Java reads ints in at most 5)", "\"int\"", [0x80, 0x80, 0x80, 0x80, 0x80, 0x00] },
        { "union index in 6 bytes", """["null","string"]""", [0x80, 0x80, 0x80, 0x80, 0x80, 0x00] },
        { "enum index in 6 bytes", """{"type":"enum","name":"E","symbols":["A","B"]}""", [0x80, 0x80, 0x80, 0x80, 0x80, 0x00] },
    };

    [Fact]
    public async Task Avro_array_of_one_item_blocks_decodes_in_time_linear_in_its_blocks()
    {
        // 400 000 blocks of one null each: setting the list's capacity per block copied it once per block, which took
        // minutes (quadratic); grown geometrically it is milliseconds. The deadline is generous, not a measurement.
        var schema = ParseAvro("""{"type":"array","items":"null"}""");
        byte[] payload = [.. Enumerable.Range(0, 400_000).SelectMany(_ => new byte[] { 0x02 }), 0x00];
        var decoded = await Task.Run(() => Avro.Decode(schema, payload)).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(400_000, ((List<object?>)decoded.Value!).Count);
    }

    [Fact]
    public void Small_integers_decode_to_shared_boxes_and_larger_ones_to_their_own()
    {
        // Every decoded integer was a new box, about 24 bytes per field per record for the gate to collect.
        var schema = ParseJsonSchema();
        var first = (Dictionary<string, object?>)Json.Decode(schema, """{"low":-128,"high":1023,"zero":0,"below":-129,"above":1024,"big":9007199254740993,"max":9223372036854775807,"min":-9223372036854775808}"""u8).Value!;
        var second = (Dictionary<string, object?>)Json.Decode(schema, """{"low":-128,"high":1023,"zero":0,"below":-129,"above":1024,"big":9007199254740993,"max":9223372036854775807,"min":-9223372036854775808}"""u8).Value!;
        foreach (string shared in new[] { "low", "high", "zero" })
        {
            Assert.Same(first[shared], second[shared]);
        }

        foreach (string own in new[] { "below", "above", "big", "max", "min" })
        {
            Assert.NotSame(first[own], second[own]);
            Assert.Equal(first[own], second[own]);
        }

        Assert.Equal(new object[] { -128L, 1023L, 0L, -129L, 1024L, 9_007_199_254_740_993L, long.MaxValue, long.MinValue }, first.Values.ToArray());

        var avro = ParseAvro("""{"type":"record","name":"N","fields":[{"name":"i","type":"int"},{"name":"l","type":"long"}]}""");
        byte[] payload = [0x0e, 0x80, 0x10]; // zigzag varints: i = 7, l = 1024
        var avroFirst = (Dictionary<string, object?>)Avro.Decode(avro, payload).Value!;
        var avroSecond = (Dictionary<string, object?>)Avro.Decode(avro, payload).Value!;
        Assert.Same(avroFirst["i"], avroSecond["i"]);
        Assert.NotSame(avroFirst["l"], avroSecond["l"]);
        Assert.Equal(7L, avroFirst["i"]);
        Assert.Equal(1024L, avroFirst["l"]);
    }

    private const string EventTypes = """
        [{"type":"record","name":"Created","namespace":"crm","fields":[{"name":"id","type":"string"},{"name":"email","type":"string"}]},
         {"type":"record","name":"Deleted","namespace":"crm","fields":[{"name":"id","type":"string"},{"name":"email","type":"string"}]}]
        """;

    [Fact]
    public void Avro_rewrite_of_a_top_level_union_of_records_keeps_the_record_type_the_producer_wrote()
    {
        var schema = ParseAvro(EventTypes);
        var union = (UnionSchema)schema.Schema;
        var deleted = new GenericRecord((RecordSchema)union[1]);
        deleted.Add("id", "42");
        deleted.Add("email", "a@b.c");
        byte[] original = WriteWithApacheAvro(schema.Schema, deleted);

        var decoded = Avro.Decode(schema, original);
        ((Dictionary<string, object?>)decoded.Value!)["email"] = "****";
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Avro.EncodeRewrite(schema, decoded, original, [["email"]], [], output);

        using var stream = new MemoryStream(output.WrittenSpan.ToArray());
        var read = (GenericRecord)new GenericDatumReader<object>(schema.Schema, schema.Schema).Read(null!, new BinaryDecoder(stream));
        Assert.Equal("crm.Deleted", read.Schema.Fullname);
        Assert.Equal("****", read["email"]);
        Assert.Equal("42", read["id"]);
    }

    [Fact]
    public void Avro_encoding_a_record_two_record_branches_take_alike_is_refused_rather_than_guessed()
    {
        // Inside an array the rewrite encodes afresh, where the decoded record no longer says which type it was.
        var schema = ParseAvro("""{"type":"record","name":"Batch","namespace":"crm","fields":[{"name":"events","type":{"type":"array","items":""" + EventTypes + "}}]}");
        var decoded = new DecodedPayload(new Dictionary<string, object?> { ["events"] = new List<object?> { new Dictionary<string, object?> { ["id"] = "1", ["email"] = "****" } } });
        var error = Assert.Throws<PayloadDecodeException>(() => Avro.Encode(schema, decoded));
        Assert.Contains("crm.Created", error.Message, StringComparison.Ordinal);
        Assert.Contains("crm.Deleted", error.Message, StringComparison.Ordinal);

        // A record with exactly one branch's fields goes to that branch, though a larger one (with a nullable extra
        // field) would take it too.
        var nested = ParseAvro("""
            {"type":"record","name":"Batch","namespace":"crm","fields":[{"name":"events","type":{"type":"array","items":[
              {"type":"record","name":"Big","fields":[{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}]},
              {"type":"record","name":"Small","fields":[{"name":"id","type":"string"}]}]}}]}
            """);
        var small = new DecodedPayload(new Dictionary<string, object?> { ["events"] = new List<object?> { new Dictionary<string, object?> { ["id"] = "1" } } });
        Assert.Equal([0x02, 0x02, 0x02, (byte)'1', 0x00], Avro.Encode(nested, small));
    }

    [Theory]
    [MemberData(nameof(HostileAvro))]
    public void Avro_hostile_input_fails_with_PayloadDecodeException(string description, string schemaText, byte[] payload)
    {
        var schema = ParseAvro(schemaText);
        var error = Assert.Throws<PayloadDecodeException>(() => Avro.Decode(schema, payload));
        Assert.False(string.IsNullOrEmpty(error.Message), description);
    }

    [Fact]
    public void Avro_array_beyond_the_element_budget_fails()
    {
        var schema = ParseAvro("""{"type":"array","items":"int"}""");
        // Two blocks of 600 000 zero ints (a byte each): each fits, together they break the 1 000 000 budget.
        byte[] block = [0x80, 0x9F, 0x49, .. new byte[600_000]]; // zig-zag varint of 600 000, then the items
        var error = Assert.Throws<PayloadDecodeException>(() => Avro.Decode(schema, [.. block, .. block, 0x00]));
        Assert.Contains($"more than {RecordValue.MaxElements} ", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"array","items":"null"}""", 1)]
    [InlineData("""{"type":"array","items":{"type":"record","name":"Empty","fields":[]}}""", 1 + RecordValue.ObjectElements)]
    [InlineData("""{"type":"array","items":{"type":"record","name":"Nulls","fields":[{"name":"a","type":"null"}]}}""", 2 + RecordValue.ObjectElements)]
    public void Avro_values_of_no_bytes_are_bounded_by_the_payload_size(string schemaText, int elementsPerItem)
    {
        // Nulls and empty records take no bytes: a block count of a million of them, four bytes of payload, built a million
        // objects. A payload holds at most eight elements per byte, and at least 4096.
        var schema = ParseAvro(schemaText);
        static byte[] Items(int count) => [.. Varint((ulong)count * 2), 0x00];
        var error = Assert.Throws<PayloadDecodeException>(() => Avro.Decode(schema, Items(1_000_000)));
        Assert.Contains("per byte", error.Message, StringComparison.Ordinal);

        // An item of a one-field record of no bytes is the item, the field and the record, which counts as an object.
        int fits = 4096 / elementsPerItem;
        Assert.Equal(fits, ((List<object?>)Avro.Decode(schema, Items(fits)).Value!).Count);
        Assert.Throws<PayloadDecodeException>(() => Avro.Decode(schema, Items(fits + 1)));

        // Padding does not buy a million records: 125 KB of bytes lifts the budget to the million, and then records of no
        // bytes count as objects (a review built 92 MiB this way). A million nulls are only list slots, and decode.
        var padded = ParseAvro($$"""{"type":"record","name":"Padded","fields":[{"name":"pad","type":"bytes"},{"name":"xs","type":{{schemaText}}}]}""");
        byte[] pad = new byte[125_000];
        byte[] payload = [.. Varint((ulong)pad.Length * 2), .. pad, .. Items(1_000_000 - 8)];
        if (elementsPerItem == 1)
        {
            Assert.Equal(1_000_000 - 8, ((List<object?>)((Dictionary<string, object?>)Avro.Decode(padded, payload).Value!)["xs"]!).Count);
        }
        else
        {
            Assert.Contains("elements", Assert.Throws<PayloadDecodeException>(() => Avro.Decode(padded, payload)).Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Avro_string_and_bytes_lengths_are_longs_as_Java_reads_them()
    {
        // Java's BinaryDecoder reads string and bytes lengths with readLong: a length in six bytes (a non-minimal encoding
        // of 1) reads there, where an int, a union or an enum index takes at most five.
        byte[] longLength = [0x82, 0x80, 0x80, 0x80, 0x80, 0x00];
        Assert.Equal("a", Avro.Decode(ParseAvro("\"string\""), [.. longLength, (byte)'a']).Value);
        Assert.Equal(new byte[] { 7 }, Avro.Decode(ParseAvro("\"bytes\""), [.. longLength, 7]).Value);
        Assert.Throws<PayloadDecodeException>(() => Avro.Decode(ParseAvro("\"int\""), [.. longLength]));
    }

    [Fact]
    public void Avro_nesting_within_the_depth_limit_decodes()
    {
        // A union is not a level of its own: a linked list through ["null","Node"] takes a level per link, as JSON and
        // Protobuf nesting do (it used to take two, so about 32 links were the most that decoded).
        var schema = ParseAvro("""{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}""");
        byte[] payload = [.. Enumerable.Repeat((byte)0x02, RecordValue.MaxDepth - 1), 0x00];
        var decoded = Avro.Decode(schema, payload);
        var depth = 0;
        for (var node = (Dictionary<string, object?>?)decoded.Value; node is not null; node = (Dictionary<string, object?>?)node["next"])
        {
            depth++;
        }

        Assert.Equal(RecordValue.MaxDepth, depth);
        Assert.Equal(payload, Avro.Encode(schema, decoded));
        Assert.Throws<PayloadDecodeException>(() => Avro.Decode(schema, [.. Enumerable.Repeat((byte)0x02, RecordValue.MaxDepth), 0x00]));
    }

    [Fact]
    public void Json_decodes_into_the_graph_and_encodes_compactly()
    {
        var schema = ParseJsonSchema();
        var text = """ { "id": 42, "big": 12345678901234567890, "ratio": 0.5, "one": 1.0, "neg": -7, "name": "Zoë ✓", "ok": true, "none": null, "tags": ["a", 1, [false]], "nested": { "x": 1e3 } } """;

        var decoded = Json.Decode(schema, Encoding.UTF8.GetBytes(text));
        var value = Assert.IsType<Dictionary<string, object?>>(decoded.Value);
        Assert.Equal(["id", "big", "ratio", "one", "neg", "name", "ok", "none", "tags", "nested"], value.Keys);
        Assert.Equal(42L, value["id"]);
        Assert.Equal(12345678901234567890d, value["big"]);
        Assert.Equal(0.5, value["ratio"]);
        Assert.IsType<double>(value["one"]);
        Assert.Equal(-7L, value["neg"]);
        Assert.Equal("Zoë ✓", value["name"]);
        Assert.Equal(true, value["ok"]);
        Assert.Null(value["none"]);
        Assert.Equal(new List<object?> { "a", 1L, new List<object?> { false } }, value["tags"]);
        Assert.Equal(new Dictionary<string, object?> { ["x"] = 1000.0 }, value["nested"]);

        value["name"] = "***";
        value.Remove("big");
        var encoded = Encoding.UTF8.GetString(Json.Encode(schema, decoded));
        Assert.Equal("""{"id":42,"ratio":0.5,"one":1,"neg":-7,"name":"***","ok":true,"none":null,"tags":["a",1,[false]],"nested":{"x":1000}}""", encoded);
    }

    [Fact]
    public void Encoding_with_a_prefix_writes_the_prefix_then_the_same_bytes_for_every_codec()
    {
        byte[] header = [0, 0, 0, 1, 7];
        var json = ParseJsonSchema();
        var jsonValue = Json.Decode(json, """{"name":"a","n":[1,2]}"""u8);
        var proto = ParseProto(AllTypesProto);
        var protoValue = Protobuf.Decode(proto, Framed([0], AllTypesMessage()));
        var avro = ParseAvro("""{"type":"record","name":"R","fields":[{"name":"s","type":"string"}]}""");
        var big = new DecodedPayload(new Dictionary<string, object?> { ["s"] = new string('z', 3_000_000) });
        var small = new DecodedPayload(new Dictionary<string, object?> { ["s"] = "hi" });

        foreach ((IPayloadCodec codec, IParsedSchema schema, DecodedPayload value) in new (IPayloadCodec, IParsedSchema, DecodedPayload)[]
        {
            (Json, json, jsonValue), (Protobuf, proto, protoValue), (Avro, avro, small),
            (Avro, avro, big), (Avro, avro, small), (Json, json, jsonValue),
        })
        {
            byte[] plain = codec.Encode(schema, value);
            byte[] prefixed = codec.Encode(schema, value, header);
            Assert.Equal([.. header, .. plain], prefixed);
        }

        // A 3 MB payload does not leave its buffer behind to corrupt or bloat the thread's next encode.
        Assert.Equal(new byte[] { 4, (byte)'h', (byte)'i' }, Avro.Encode(avro, small));
    }

    [Fact]
    public void Json_round_trip_preserves_the_graph()
    {
        var schema = ParseJsonSchema();
        var original = Json.Decode(schema, """[{"a":"<b>&'\"\u0001"},-0.25,9223372036854775807,"日本"]"""u8);
        var again = Json.Decode(schema, Json.Encode(schema, original));
        Assert.Equal(original.Value, again.Value);
    }

    [Fact]
    public void Json_encodes_clr_values_policies_may_produce()
    {
        var schema = ParseJsonSchema();
        var value = new Dictionary<string, object?>
        {
            ["bytes"] = new byte[] { 1, 2, 3 },
            ["at"] = new DateTimeOffset(2024, 1, 2, 3, 4, 5, TimeSpan.Zero),
            ["u"] = ulong.MaxValue,
            ["i"] = 3,
        };
        Assert.Equal("""{"bytes":"AQID","at":"2024-01-02T03:04:05+00:00","u":18446744073709551615,"i":3}""", Encoding.UTF8.GetString(Json.Encode(schema, new DecodedPayload(value))));
        Assert.Throws<PayloadDecodeException>(() => Json.Encode(schema, new DecodedPayload(double.NaN)));
        Assert.Throws<PayloadDecodeException>(() => Json.Encode(schema, new DecodedPayload(new object())));
    }

    public static TheoryData<string, byte[]> HostileJson => new()
    {
        { "empty", [] },
        { "whitespace only", "   "u8.ToArray() },
        { "truncated object", """{"a":"""u8.ToArray() },
        { "trailing garbage", "{} x"u8.ToArray() },
        { "two values", "1 2"u8.ToArray() },
        { "duplicate key", """{"a":1,"a":2}"""u8.ToArray() },
        { "invalid UTF-8 in string", [(byte)'"', 0xC3, 0x28, (byte)'"'] },
        { "invalid UTF-8 in key", [(byte)'{', (byte)'"', 0xFF, (byte)'"', (byte)':', (byte)'1', (byte)'}'] },
        { "nesting deeper than the limit", Encoding.ASCII.GetBytes(new string('[', 65) + new string(']', 65)) },
        { "number beyond double", "1e400"u8.ToArray() },
        { "comment", "/* c */ 1"u8.ToArray() },
        { "trailing comma", "[1,]"u8.ToArray() },
        { "single quotes", "{'a':1}"u8.ToArray() },
        { "NaN literal", "NaN"u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(HostileJson))]
    public void Json_hostile_input_fails_with_PayloadDecodeException(string description, byte[] payload)
    {
        var error = Assert.Throws<PayloadDecodeException>(() => Json.Decode(ParseJsonSchema(), payload));
        Assert.False(string.IsNullOrEmpty(error.Message), description);
    }

    [Fact]
    public void Json_nesting_at_the_limit_decodes()
    {
        var text = new string('[', RecordValue.MaxDepth) + new string(']', RecordValue.MaxDepth);
        Assert.IsType<List<object?>>(Json.Decode(ParseJsonSchema(), Encoding.ASCII.GetBytes(text)).Value);
    }

    [Fact]
    public void Json_member_names_decode_exactly_however_many_names_share_the_name_cache()
    {
        // More names than the per-thread name cache has slots, so names collide and replace each other;
        // non-ASCII names and names at and just over the cached length take part. Decoded twice: once
        // filling the cache, once reading from it.
        var names = new List<string>();
        for (int i = 0; i < 700; i++)
        {
            names.Add(i % 3 == 0 ? $"prénom-{i}" : i % 3 == 1 ? $"f{i}" : $"日本-{i}");
        }

        names.Add(new string('a', Utf8NameCache.MaxNameBytes));
        names.Add(new string('b', Utf8NameCache.MaxNameBytes + 1));
        names.Add("é" + new string('c', Utf8NameCache.MaxNameBytes - 2));
        var payload = Encoding.UTF8.GetBytes("{" + string.Join(",", names.Select((n, i) => $"\"{n}\":{i}")) + "}");
        for (int pass = 0; pass < 2; pass++)
        {
            var members = Assert.IsType<Dictionary<string, object?>>(Json.Decode(ParseJsonSchema(), payload).Value);
            Assert.Equal(names.Count, members.Count);
            for (int i = 0; i < names.Count; i++)
            {
                Assert.Equal((long)i, members[names[i]]);
            }
        }
    }

    [Fact]
    public void Json_rewrite_of_top_level_members_keeps_every_other_byte_whether_spliced_from_the_decode_or_read_again()
    {
        var schema = ParseJsonSchema();
        // Spaces around values, a nested object and array, an escaped string: only the rewritten values may change.
        const string text = "{ \"b\" : \"x\\\"y\" , \"a\":[1, 2],\"keep\": {\"d\" : 1}, \"c\": {\"d\":1} ,\"e\":\"plain\" }";
        byte[] payload = Encoding.UTF8.GetBytes(text);
        string printable = new([.. Enumerable.Range(0x20, 0x7F - 0x20).Select(c => (char)c).Where(c => c is not '"' and not '\\')]);
        List<string[]> paths = [["e"], ["a"], ["c"], ["e"], ["b"]];

        byte[] Rewrite(bool readAgain)
        {
            var decoded = Json.Decode(schema, (ReadOnlyMemory<byte>)payload);
            var fields = Assert.IsType<Dictionary<string, object?>>(decoded.Value);
            fields["e"] = printable; // written without the JSON writer: must match what the writer writes
            fields["a"] = "h1";
            fields["c"] = "****";
            fields["b"] = "q\"r"; // needs escaping: written by the JSON writer
            if (readAgain)
            {
                // Another decode on this thread: the rewrite can no longer use the first one's member positions.
                Json.Decode(schema, (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes("{\"e\":1}"));
            }

            var output = new System.Buffers.ArrayBufferWriter<byte>();
            Json.EncodeRewrite(schema, decoded, payload, paths, "P"u8, output);
            return output.WrittenSpan.ToArray();
        }

        string spliced = Encoding.UTF8.GetString(Rewrite(readAgain: false));
        string read = Encoding.UTF8.GetString(Rewrite(readAgain: true));
        Assert.Equal("P{ \"b\" : \"q\\\"r\" , \"a\":\"h1\",\"keep\": {\"d\" : 1}, \"c\": \"****\" ,\"e\":\"" + printable + "\" }", spliced);
        Assert.Equal(read, spliced);
    }

    [Theory]
    [InlineData("""{"a":1,"b":2,"c":3}""", "b", """{"a":1,"c":3}""")]
    [InlineData("""{"a":1,"b":2,"c":3}""", "a", """{"b":2,"c":3}""")]
    [InlineData("""{"a":1,"b":2,"c":3}""", "c", """{"a":1,"b":2}""")]
    [InlineData("""{"a":1,"b":2,"c":3}""", "a,b,c", """{}""")]
    [InlineData("""{"a":1,"b":2,"c":3}""", "a,c", """{"b":2}""")]
    [InlineData("""{ "a" : 1 ,  "b" : 2 , "c":3 }""", "a,b", """{ "c":3 }""")]
    [InlineData("""{"big":123456789012345678901234567890,"x":1.10,"pii":"x@y","e":2.5E-3}""", "pii", """{"big":123456789012345678901234567890,"x":1.10,"e":2.5E-3}""")]
    [InlineData("""{"o":{"k":1,"pii":"s"},"l":[{"pii":1,"k":2},{"k":3}]}""", "o.pii,l.pii", """{"o":{"k":1},"l":[{"k":2},{"k":3}]}""")]
    public void Json_drop_is_spliced_out_and_every_other_byte_is_kept(string payload, string dropped, string expected)
    {
        var schema = ParseJsonSchema();
        byte[] original = Encoding.UTF8.GetBytes(payload);
        var decoded = Json.Decode(schema, (ReadOnlyMemory<byte>)original);
        List<string[]> paths = [.. dropped.Split(',').Select(p => p.Split('.'))];
        foreach (string[] path in paths)
        {
            RemoveEverywhere(decoded.Value, path, 0);
        }

        Assert.True(((IPayloadCodec)Json).SplicesRemovedFields);
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        Json.EncodeRewrite(schema, decoded, original, paths, [], output);
        Assert.Equal(expected, Encoding.UTF8.GetString(output.WrittenSpan));

        static void RemoveEverywhere(object? node, string[] path, int level)
        {
            if (node is List<object?> items)
            {
                items.ForEach(item => RemoveEverywhere(item, path, level));
            }
            else if (node is Dictionary<string, object?> fields)
            {
                if (level == path.Length - 1)
                {
                    fields.Remove(path[level]);
                }
                else if (fields.TryGetValue(path[level], out object? child))
                {
                    RemoveEverywhere(child, path, level + 1);
                }
            }
        }
    }

    [Fact]
    public void Utf8NameCache_returns_the_same_string_for_the_same_bytes_and_refuses_invalid_utf8()
    {
        var cache = new Utf8NameCache();
        string first = cache.Get("currency"u8);
        Assert.Equal("currency", first);
        Assert.Same(first, cache.Get("currency"u8));
        Assert.Equal("currencz", cache.Get("currencz"u8));
        Assert.Equal("", cache.Get([]));
        Assert.Throws<PayloadDecodeException>(() => cache.Get([(byte)'a', 0xC3, 0x28]));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Get(new byte[Utf8NameCache.MaxNameBytes + 1]));
    }

    private const string AllTypesProto = """
        syntax = "proto3";
        package test;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/duration.proto";

        message All {
          int32 a = 1;
          int64 b = 2;
          uint32 c = 3;
          sint32 d = 4;
          sint64 e = 5;
          bool f = 6;
          Color g = 7;
          fixed32 h = 8;
          sfixed32 i = 9;
          float j = 10;
          fixed64 k = 11;
          sfixed64 l = 12;
          double m = 13;
          string n = 14;
          bytes o = 15;
          repeated int32 p = 16;
          Inner q = 17;
          map<string, int64> r = 18;
          google.protobuf.Timestamp s = 19;
          repeated string t = 20;
          oneof choice {
            string u = 21;
            int32 v = 22;
          }
          google.protobuf.Duration w = 23;
          map<int32, Inner> x = 24;
          repeated int32 unpacked = 25 [packed = false];
          uint64 y = 26;
          message Inner { string name = 1; repeated Inner children = 2; }
        }

        enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }

        message Second { string id = 1; }
        """;

    private static readonly string[] RepeatedTexts = ["x", ""];
    private static readonly int[] UnpackedNumbers = [7, 8];
    private static readonly int[] PackedNumbers = [1, 300, -1];

    private delegate void ProtoBody(ref ProtoWriter.State state);

    /// <summary>Bytes written by protobuf-net's own wire-format writer.</summary>
    private static byte[] WithProtobufNet(ProtoBody body)
    {
        using var stream = new MemoryStream();
        var state = ProtoWriter.State.Create(stream, null, null);
        try
        {
            body(ref state);
            state.Close();
        }
        finally
        {
            state.Dispose();
        }

        return stream.ToArray();
    }

    private static byte[] Framed(byte[] indexes, byte[] message) => [.. indexes, .. message];

    private static byte[] AllTypesMessage() => WithProtobufNet((ref ProtoWriter.State w) =>
    {
        w.WriteFieldHeader(1, WireType.Varint);
        w.WriteInt32(-5);
        w.WriteFieldHeader(2, WireType.Varint);
        w.WriteInt64(1L << 50);
        w.WriteFieldHeader(3, WireType.Varint);
        w.WriteUInt32(4_000_000_000);
        w.WriteFieldHeader(4, WireType.SignedVarint);
        w.WriteInt32(-3);
        w.WriteFieldHeader(5, WireType.SignedVarint);
        w.WriteInt64(long.MinValue);
        w.WriteFieldHeader(6, WireType.Varint);
        w.WriteBoolean(true);
        w.WriteFieldHeader(7, WireType.Varint);
        w.WriteInt32(2);
        w.WriteFieldHeader(8, WireType.Fixed32);
        w.WriteUInt32(0xDEADBEEF);
        w.WriteFieldHeader(9, WireType.Fixed32);
        w.WriteInt32(-9);
        w.WriteFieldHeader(10, WireType.Fixed32);
        w.WriteSingle(2.5f);
        w.WriteFieldHeader(11, WireType.Fixed64);
        w.WriteUInt64(ulong.MaxValue);
        w.WriteFieldHeader(12, WireType.Fixed64);
        w.WriteInt64(-12);
        w.WriteFieldHeader(13, WireType.Fixed64);
        w.WriteDouble(3.25);
        w.WriteFieldHeader(14, WireType.String);
        w.WriteString("Zoë ✓");
        w.WriteFieldHeader(15, WireType.String);
        w.WriteBytes(new byte[] { 0, 255 });
        w.WriteFieldHeader(16, WireType.String);
        w.WriteBytes(WithProtobufNet((ref ProtoWriter.State packed) =>
        {
            foreach (var n in PackedNumbers)
            {
                packed.WriteFieldHeader(1, WireType.Varint); // header written only to set the wire type; stripped below
                packed.WriteInt32(n);
            }
        }).StripHeaders());
        w.WriteFieldHeader(17, WireType.String);
        w.WriteBytes(InnerMessage("root", InnerMessage("kid", null)));
        foreach (var (key, value) in new[] { ("k1", 10L), ("k2", -20L) })
        {
            w.WriteFieldHeader(18, WireType.String);
            w.WriteBytes(WithProtobufNet((ref ProtoWriter.State entry) =>
            {
                entry.WriteFieldHeader(1, WireType.String);
                entry.WriteString(key);
                entry.WriteFieldHeader(2, WireType.Varint);
                entry.WriteInt64(value);
            }));
        }

        w.WriteFieldHeader(19, WireType.String);
        w.WriteBytes(SecondsAndNanos(1_700_000_000, 123_456_700));
        foreach (var text in RepeatedTexts)
        {
            w.WriteFieldHeader(20, WireType.String);
            w.WriteString(text);
        }

        w.WriteFieldHeader(22, WireType.Varint);
        w.WriteInt32(22);
        w.WriteFieldHeader(23, WireType.String);
        w.WriteBytes(SecondsAndNanos(90, 500_000_000));
        w.WriteFieldHeader(24, WireType.String);
        w.WriteBytes(WithProtobufNet((ref ProtoWriter.State entry) =>
        {
            entry.WriteFieldHeader(1, WireType.Varint);
            entry.WriteInt32(-1);
            entry.WriteFieldHeader(2, WireType.String);
            entry.WriteBytes(InnerMessage("in map", null));
        }));
        foreach (var n in UnpackedNumbers)
        {
            w.WriteFieldHeader(25, WireType.Varint);
            w.WriteInt32(n);
        }

        w.WriteFieldHeader(26, WireType.Varint);
        w.WriteUInt64(ulong.MaxValue);
    });

    private static byte[] InnerMessage(string name, byte[]? child) => WithProtobufNet((ref ProtoWriter.State w) =>
    {
        w.WriteFieldHeader(1, WireType.String);
        w.WriteString(name);
        if (child is not null)
        {
            w.WriteFieldHeader(2, WireType.String);
            w.WriteBytes(child);
        }
    });

    private static byte[] SecondsAndNanos(long seconds, int nanos) => WithProtobufNet((ref ProtoWriter.State w) =>
    {
        w.WriteFieldHeader(1, WireType.Varint);
        w.WriteInt64(seconds);
        w.WriteFieldHeader(2, WireType.Varint);
        w.WriteInt32(nanos);
    });

    [Fact]
    public void Protobuf_decodes_bytes_written_by_protobuf_net_field_by_field_and_encodes_them_back()
    {
        var schema = ParseProto(AllTypesProto);
        var payload = Framed([0], AllTypesMessage());

        var decoded = Protobuf.Decode(schema, payload);
        Assert.Equal("test.All", decoded.MessageFullName);
        Assert.Equal([0], decoded.MessageIndexes!);
        var value = Assert.IsAssignableFrom<Dictionary<string, object?>>(decoded.Value);
        Assert.Equal(-5L, value["a"]);
        Assert.Equal(1L << 50, value["b"]);
        Assert.Equal(4_000_000_000UL, value["c"]);
        Assert.Equal(-3L, value["d"]);
        Assert.Equal(long.MinValue, value["e"]);
        Assert.Equal(true, value["f"]);
        Assert.Equal("GREEN", value["g"]);
        Assert.Equal(0xDEADBEEFUL, value["h"]);
        Assert.Equal(-9L, value["i"]);
        Assert.Equal(2.5, value["j"]);
        Assert.Equal(ulong.MaxValue, value["k"]);
        Assert.Equal(-12L, value["l"]);
        Assert.Equal(3.25, value["m"]);
        Assert.Equal("Zoë ✓", value["n"]);
        Assert.Equal(new byte[] { 0, 255 }, value["o"]);
        Assert.Equal(new List<object?> { 1L, 300L, -1L }, value["p"]);
        Assert.Equal(
            new Dictionary<string, object?> { ["name"] = "root", ["children"] = new List<object?> { new Dictionary<string, object?> { ["name"] = "kid" } } },
            value["q"]);
        Assert.Equal(new Dictionary<string, object?> { ["k1"] = 10L, ["k2"] = -20L }, value["r"]);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000).AddTicks(1_234_567), value["s"]);
        Assert.Equal(new List<object?> { "x", "" }, value["t"]);
        Assert.False(value.ContainsKey("u"));
        Assert.Equal(22L, value["v"]);
        Assert.Equal(TimeSpan.FromSeconds(90.5), value["w"]);
        Assert.Equal(new Dictionary<string, object?> { ["-1"] = new Dictionary<string, object?> { ["name"] = "in map" } }, value["x"]);
        Assert.Equal(new List<object?> { 7L, 8L }, value["unpacked"]);
        Assert.Equal(ulong.MaxValue, value["y"]);

        Assert.Equal(payload, Protobuf.Encode(schema, decoded));
    }

    [Fact]
    public void Protobuf_policy_rewrite_encodes_and_decodes_again()
    {
        var schema = ParseProto(AllTypesProto);
        var decoded = Protobuf.Decode(schema, Framed([0], AllTypesMessage()));
        var value = (Dictionary<string, object?>)decoded.Value!;
        value["n"] = "***";
        value.Remove("o");
        value["g"] = "RED";
        value["s"] = new DateTimeOffset(1969, 12, 31, 23, 59, 59, 500, TimeSpan.Zero);
        ((Dictionary<string, object?>)value["r"]!)["k3"] = 3;

        var again = (Dictionary<string, object?>)Protobuf.Decode(schema, Protobuf.Encode(schema, decoded)).Value!;
        Assert.Equal("***", again["n"]);
        Assert.False(again.ContainsKey("o"));
        Assert.Equal("RED", again["g"]);
        Assert.Equal(new DateTimeOffset(1969, 12, 31, 23, 59, 59, 500, TimeSpan.Zero), again["s"]);
        Assert.Equal(3L, ((Dictionary<string, object?>)again["r"]!)["k3"]);

        value["nope"] = 1;
        Assert.Contains("has no field 'nope'", Assert.Throws<PayloadDecodeException>(() => Protobuf.Encode(schema, decoded)).Message, StringComparison.Ordinal);
        value.Remove("nope");
        value["a"] = "text";
        Assert.Contains("All.a", Assert.Throws<PayloadDecodeException>(() => Protobuf.Encode(schema, decoded)).Message, StringComparison.Ordinal);
        value["a"] = 1;
        value["g"] = "PURPLE";
        Assert.Contains("not a value", Assert.Throws<PayloadDecodeException>(() => Protobuf.Encode(schema, decoded)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Protobuf_message_index_path_selects_the_message_and_is_written_back()
    {
        var schema = ParseProto(AllTypesProto);
        // Path [1]: count 1, index 1 (both zig-zag); Second is the second declared top-level message.
        byte[] payload = [0x02, 0x02, 0x0A, 0x02, (byte)'i', (byte)'d'];
        var decoded = Protobuf.Decode(schema, payload);
        Assert.Equal("test.Second", decoded.MessageFullName);
        Assert.Equal([1], decoded.MessageIndexes!);
        Assert.Equal(new Dictionary<string, object?> { ["id"] = "id" }, decoded.Value);
        Assert.Equal(payload, Protobuf.Encode(schema, decoded));
        Assert.Equal(payload, Protobuf.Encode(schema, new DecodedPayload(decoded.Value, "test.Second")));

        // Nested message path [0, 0]: All.Inner.
        var inner = Protobuf.Decode(schema, [0x04, 0x00, 0x00, 0x0A, 0x01, (byte)'z']);
        Assert.Equal("test.All.Inner", inner.MessageFullName);
        Assert.Equal(new Dictionary<string, object?> { ["name"] = "z" }, inner.Value);
    }

    [Fact]
    public void Protobuf_unknown_fields_are_kept_unless_asked_to_drop_them()
    {
        var schema = ParseProto(AllTypesProto);
        // Second { id = "a" } plus unknown field 99 (varint 5) and unknown field 100 (fixed32).
        byte[] message = [0x0A, 0x01, (byte)'a', 0x98, 0x06, 0x05, 0xA5, 0x06, 1, 2, 3, 4];
        byte[] payload = [0x02, 0x02, .. message];

        var decoded = Protobuf.Decode(schema, payload);
        Assert.Equal(new Dictionary<string, object?> { ["id"] = "a" }, decoded.Value);
        Assert.Equal(payload, Protobuf.Encode(schema, decoded));

        var dropping = new ProtobufPayloadCodec(keepUnknownFields: false);
        Assert.Equal(payload[..5], dropping.Encode(schema, dropping.Decode(schema, payload)));
    }

    [Fact]
    public void Protobuf_semantics_of_repeated_occurrences_oneofs_and_unknown_enum_numbers()
    {
        var schema = ParseProto(AllTypesProto);
        var message = WithProtobufNet((ref ProtoWriter.State w) =>
        {
            w.WriteFieldHeader(21, WireType.String);
            w.WriteString("first");
            w.WriteFieldHeader(22, WireType.Varint);
            w.WriteInt32(5);                            // oneof: the last member set wins
            w.WriteFieldHeader(7, WireType.Varint);
            w.WriteInt32(99);                           // enum number the schema does not name
            w.WriteFieldHeader(17, WireType.String);
            w.WriteBytes(InnerMessage("a", null));
            w.WriteFieldHeader(17, WireType.String);
            w.WriteBytes(WithProtobufNet((ref ProtoWriter.State inner) =>
            {
                inner.WriteFieldHeader(2, WireType.String);
                inner.WriteBytes(InnerMessage("b", null));
            }));                                         // a singular message seen twice is merged
            w.WriteFieldHeader(1, WireType.Varint);
            w.WriteInt32(1);
            w.WriteFieldHeader(1, WireType.Varint);
            w.WriteInt32(2);                            // a scalar seen twice: the last wins
        });

        var value = (Dictionary<string, object?>)Protobuf.Decode(schema, Framed([0], message)).Value!;
        Assert.False(value.ContainsKey("u"));
        Assert.Equal(5L, value["v"]);
        Assert.Equal(99L, value["g"]);
        Assert.Equal(
            new Dictionary<string, object?> { ["name"] = "a", ["children"] = new List<object?> { new Dictionary<string, object?> { ["name"] = "b" } } },
            value["q"]);
        Assert.Equal(2L, value["a"]);
    }

    [Fact]
    public void Protobuf_timestamp_and_duration_finer_than_a_tick_are_kept_exact_and_read_by_rules_to_the_nanosecond()
    {
        var schema = ParseProto(AllTypesProto);
        var message = WithProtobufNet((ref ProtoWriter.State w) =>
        {
            w.WriteFieldHeader(19, WireType.String);
            w.WriteBytes(SecondsAndNanos(1, 7)); // 7 ns is finer than a DateTimeOffset tick (100 ns)
            w.WriteFieldHeader(23, WireType.String);
            w.WriteBytes(SecondsAndNanos(2, 5));
        });
        var decoded = Protobuf.Decode(schema, Framed([0], message));
        var value = (Dictionary<string, object?>)decoded.Value!;
        // They stayed messages ({seconds, nanos}), so every timestamp rule on data from a nanosecond clock was a rule error.
        Assert.Equal(new NanoTimestamp(1, 7), value["s"]);
        Assert.Equal(new NanoDuration(2, 5), value["w"]);
        Assert.Equal(Framed([0], message), Protobuf.Encode(schema, decoded));

        Assert.True(RuleHolds(value, "value.s > timestamp('1970-01-01T00:00:01.000000006Z') && value.s < timestamp('1970-01-01T00:00:01.000000008Z')"));
        Assert.True(RuleHolds(value, "value.w == duration('2.000000005s') && type(value.s) == google.protobuf.Timestamp"));
    }

    [Fact]
    public void Protobuf_proto2_repeated_is_unpacked_unless_asked_and_absent_fields_stay_absent()
    {
        var schema = ParseProto("""
            syntax = "proto2";
            package p2;
            message M { optional int32 a = 1; repeated int32 plain = 2; repeated int32 packed = 3 [packed = true]; required string name = 4; }
            """);
        var value = new Dictionary<string, object?>
        {
            ["plain"] = new List<object?> { 1L, 2L },
            ["packed"] = new List<object?> { 1L, 2L },
            ["name"] = "n",
        };
        var bytes = Protobuf.Encode(schema, new DecodedPayload(value));
        Assert.Equal([0x00, 0x10, 0x01, 0x10, 0x02, 0x1A, 0x02, 0x01, 0x02, 0x22, 0x01, (byte)'n'], bytes);
        var decoded = (Dictionary<string, object?>)Protobuf.Decode(schema, bytes).Value!;
        Assert.False(decoded.ContainsKey("a"));
        Assert.Equal(value, decoded);
    }

    [Fact]
    public void Protobuf_proto2_required_field_cannot_be_dropped_or_nulled_by_a_rewrite()
    {
        var schema = ParseProto("""
            syntax = "proto2";
            package p2;
            message M { required string id = 1; required string email = 2; optional string note = 3; }
            """);
        byte[] original = [0x00, 0x0A, 0x01, (byte)'x', 0x12, 0x03, (byte)'a', (byte)'@', (byte)'b', 0x1A, 0x01, (byte)'n'];
        foreach (Action<Dictionary<string, object?>> rewrite in new Action<Dictionary<string, object?>>[] { v => v.Remove("email"), v => v["email"] = null })
        {
            var decoded = Protobuf.Decode(schema, original);
            rewrite((Dictionary<string, object?>)decoded.Value!);
            var error = Assert.Throws<PayloadDecodeException>(() => Protobuf.Encode(schema, decoded));
            Assert.Contains("M.email is a required field", error.Message, StringComparison.Ordinal);
        }

        // An optional field may go.
        var withoutNote = Protobuf.Decode(schema, original);
        ((Dictionary<string, object?>)withoutNote.Value!).Remove("note");
        Assert.Equal(original[..^3], Protobuf.Encode(schema, withoutNote));
    }

    [Fact]
    public void Protobuf_timestamp_or_duration_sent_in_two_pieces_is_merged_as_parsers_merge_a_message()
    {
        var schema = ParseProto(AllTypesProto);
        // s (19, a Timestamp) as seconds of 2100-01-01, then a second piece with nanos only; w (23, a Duration) likewise.
        byte[] message = [0x9A, 0x01, 0x06, 0x08, 0x80, 0xAE, 0x99, 0xA4, 0x0F, 0x9A, 0x01, 0x02, 0x10, 0x01,
            0xBA, 0x01, 0x02, 0x08, 0x05, 0xBA, 0x01, 0x03, 0x10, 0xC8, 0x01];
        var decoded = Protobuf.Decode(schema, Framed([0], message));
        var value = (Dictionary<string, object?>)decoded.Value!;
        // Before, the second piece replaced the first: 1970-01-01T00:00:00.000000001Z, which passed a rule on the year.
        Assert.Equal(new NanoTimestamp(4_102_444_800, 1), value["s"]);
        Assert.Equal(TimeSpan.FromTicks(50_000_002), value["w"]); // 5 s and 200 ns: a whole number of ticks
        Assert.False(decoded.Superseded);
        Assert.False(RuleHolds(value, "value.s < timestamp('2030-01-01T00:00:00Z')"));
        Assert.Equal(Framed([0], [0x9A, 0x01, 0x08, 0x08, 0x80, 0xAE, 0x99, 0xA4, 0x0F, 0x10, 0x01, 0xBA, 0x01, 0x05, 0x08, 0x05, 0x10, 0xC8, 0x01]), Protobuf.Encode(schema, decoded));
    }

    [Fact]
    public void Protobuf_timestamp_with_a_field_unknown_to_it_is_still_the_time_and_its_holder_answers_for_the_field()
    {
        var schema = ParseProto(AllTypesProto);
        // s (19) = {seconds: 1700000000, nanos: 500000000, field 9: 1}.
        byte[] message = [0x9A, 0x01, 0x0E, 0x08, 0x80, 0xE2, 0xCF, 0xAA, 0x06, 0x10, 0x80, 0xCA, 0xB5, 0xEE, 0x01, 0x48, 0x01];
        var value = (Dictionary<string, object?>)Protobuf.Decode(schema, Framed([0], message)).Value!;
        // Before, it stayed a map: `value.s != timestamp(...)` held, so a rule refusing that instant let it through.
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_500), value["s"]);
        Assert.False(RuleHolds(value, "value.s != timestamp('2023-11-14T22:13:20.5Z')"));
        Assert.True(ProtobufPayloadCodec.HasUnknownFields(value)); // a sensitive topic still refuses the record
    }

    [Fact]
    public void Protobuf_messages_nested_in_messages_count_against_the_element_budget()
    {
        // Sub { Sub s = 2; } repeated: each element an empty Sub holding an empty Sub, 4 bytes. 600,000 of them are
        // 1.2 million objects, past the budget of a million (before, only the 600,000 repeated elements counted).
        var schema = ParseProto("syntax = \"proto3\";\npackage n;\nmessage Sub { string x = 1; Sub s = 2; }\nmessage M { repeated Sub r = 2; }\n");
        byte[] payload = [0x02, 0x02, .. Enumerable.Repeat<byte[]>([0x12, 0x02, 0x12, 0x00], 600_000).SelectMany(b => b)];
        Assert.Contains("more than 1000000", Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(schema, payload)).Message, StringComparison.Ordinal);
        Assert.Equal(2, ((List<object?>)((Dictionary<string, object?>)Protobuf.Decode(schema, [0x02, 0x02, 0x12, 0x02, 0x12, 0x00, 0x12, 0x00]).Value!)["r"]!).Count);
    }

    [Fact]
    public void Protobuf_proto3_field_without_presence_holding_its_default_is_not_set()
    {
        var schema = ParseProto("""
            syntax = "proto3";
            package p3;
            enum Kind { KIND_UNSPECIFIED = 0; KIND_A = 1; }
            message M { string id = 1; repeated int64 ids = 2; optional string opt = 3; int32 n = 4; double d = 5; Kind k = 6; oneof o { int32 one = 7; } bytes b = 8; bool f = 9; }
            """);
        // id = "", ids = empty packed run, opt = "" (explicit presence), n = 5 then 0, d = -0.0, k = 0, one = 0 (a oneof
        // member has presence), b = empty, f = false.
        byte[] message = [0x0A, 0x00, 0x12, 0x00, 0x1A, 0x00, 0x20, 0x05, 0x20, 0x00, 0x29, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x30, 0x00, 0x38, 0x00, 0x42, 0x00, 0x48, 0x00];
        var decoded = Protobuf.Decode(schema, Framed([0], message));
        var value = (Dictionary<string, object?>)decoded.Value!;
        Assert.Equal(["d", "one", "opt"], value.Keys.Order(StringComparer.Ordinal));
        Assert.True(decoded.Superseded); // n's 5 was given and then cleared
        // As CEL on proto3: has() is false for a default; the field still reads as its default.
        Assert.True(RuleHolds(value, "!has(value.id) && !has(value.ids) && !has(value.n) && !has(value.k) && !has(value.b) && !has(value.f)"));
        Assert.True(RuleHolds(value, "has(value.opt) && has(value.d) && has(value.one) && value.id == '' && value.n == 0 && size(value.ids) == 0"));
    }

    [Fact]
    public void Protobuf_proto2_message_without_a_required_field_does_not_decode_unless_a_later_piece_gives_it()
    {
        var schema = ParseProto("""
            syntax = "proto2";
            package p2;
            message Inner { required string id = 1; optional int32 n = 2; }
            message M { optional Inner inner = 1; optional int32 n = 2; }
            """);
        var error = Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(schema, Framed([0x02, 0x02], [0x0A, 0x02, 0x10, 0x05])));
        Assert.Contains("Inner.id: required field is missing", error.Message, StringComparison.Ordinal);
        var direct = ParseProto("syntax = \"proto2\";\npackage p2;\nmessage Only { required string id = 1; optional int32 n = 2; }\n");
        Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(direct, Framed([0], [0x10, 0x05])));

        // inner sent in two pieces, the second with the required id: merged, it has it.
        var merged = (Dictionary<string, object?>)Protobuf.Decode(schema, Framed([0x02, 0x02], [0x0A, 0x02, 0x10, 0x05, 0x0A, 0x03, 0x0A, 0x01, (byte)'x'])).Value!;
        Assert.Equal("x", ((Dictionary<string, object?>)merged["inner"]!)["id"]);

        // Only what the record keeps counts, as Java's isInitialized: a oneof member another replaced, a map value given
        // again. A map entry without its value holds the empty message, which lacks the id.
        var kept = ParseProto("""
            syntax = "proto2";
            package p2k;
            message Inner { required string id = 1; }
            message M { oneof o { Inner a = 1; string b = 2; } map<string, Inner> m = 3; }
            """);
        byte[] replaced = [0x0A, 0x00, 0x12, 0x01, (byte)'x', 0x1A, 0x05, 0x0A, 0x01, (byte)'k', 0x12, 0x00, 0x1A, 0x08, 0x0A, 0x01, (byte)'k', 0x12, 0x03, 0x0A, 0x01, (byte)'y'];
        var decodedKept = (Dictionary<string, object?>)Protobuf.Decode(kept, Framed([0x02, 0x02], replaced)).Value!;
        Assert.Equal(["b", "m"], decodedKept.Keys.Order(StringComparer.Ordinal));
        error = Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(kept, Framed([0x02, 0x02], [0x1A, 0x03, 0x0A, 0x01, (byte)'k'])));
        Assert.Contains("Inner.id: required field is missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Protobuf_message_sent_in_pieces_keeps_the_unknown_fields_of_each()
    {
        var schema = ParseProto("syntax = \"proto3\";\npackage u;\nmessage Addr { string s = 1; }\nmessage A { Addr addr = 1; string t = 2; }\n");
        // addr twice, each piece with unknown field 111 (varint): 1, then 2.
        var decoded = Protobuf.Decode(schema, Framed([0x02, 0x02], [0x0A, 0x03, 0xF8, 0x06, 0x01, 0x0A, 0x03, 0xF8, 0x06, 0x02]));
        ((Dictionary<string, object?>)decoded.Value!)["t"] = "x"; // a rewrite: the message is encoded again
        Assert.Equal(Framed([0x02, 0x02], [0x0A, 0x06, 0xF8, 0x06, 0x01, 0xF8, 0x06, 0x02, 0x12, 0x01, (byte)'x']), Protobuf.Encode(schema, decoded));
    }

    [Fact]
    public void A_oneof_of_many_members_costs_memory_linear_in_them_and_keeps_only_the_member_set_last()
    {
        // From a hostile-payload review: each member listed every other one (a 10,000-member oneof took 767 MiB to lay out,
        // 30,000 took 7 GB), and each member decoded cleared all the others (3,000 members named in turn: 4 s per MB). The
        // registry now refuses messages of more than 5,000 declarations; 4,998 members, their oneof and one more field are
        // still parsed.
        const int members = 4_998;
        string oneof = string.Join("\n", Enumerable.Range(1, members).Select(i => $"    bool f{i} = {i};"));
        var schema = ParseProto($"syntax = \"proto3\";\nmessage M {{\n  oneof choice {{\n{oneof}\n  }}\n  Inner inner = 20000;\n}}\nmessage Inner {{ oneof pick {{ string a = 1; string b = 2; }} }}\n");
        Assert.True(AllocatedBytes(() => Protobuf.Decode(schema, [0x00, 0x08, 0x01])) < 50_000_000);

        // f1, f2, f4998 in turn: only the last is set. Inner given in two pieces, a then b: b replaces a across the pieces.
        byte[] f4998 = [0xB0, 0xB8, 0x02, 0x01]; // field 4998, varint 1
        byte[] innerA = [0x82, 0xE2, 0x09, 0x03, 0x0A, 0x01, (byte)'x']; // field 20000, length 3: a = "x"
        byte[] innerB = [0x82, 0xE2, 0x09, 0x03, 0x12, 0x01, (byte)'y']; // b = "y"
        var decoded = (Dictionary<string, object?>)Protobuf.Decode(schema, [0x00, 0x08, 0x01, 0x10, 0x01, .. f4998, .. innerA, .. innerB]).Value!;
        Assert.Equal(["f4998", "inner"], decoded.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["b"], ((Dictionary<string, object?>)decoded["inner"]!).Keys);
    }

    [Fact]
    public void A_protobuf_duration_of_the_smallest_seconds_stays_a_message_instead_of_overflowing()
    {
        // From a hostile-payload review: Math.Abs(long.MinValue) threw OverflowException out of the decoder, and the produce
        // handler answered the whole batch with UNKNOWN_SERVER_ERROR and a stack trace in the log.
        var schema = ParseProto("syntax = \"proto3\";\npackage p;\nimport \"google/protobuf/duration.proto\";\nmessage T { google.protobuf.Duration d = 1; }\n");
        byte[] payload = [0, 0x0A, 0x0B, 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]; // d { seconds: long.MinValue }
        var d = Assert.IsAssignableFrom<IDictionary<string, object?>>(((IDictionary<string, object?>)Protobuf.Decode(schema, payload).Value!)["d"]);
        Assert.Equal(long.MinValue, d["seconds"]);
    }

    [Fact]
    public void A_message_sent_in_many_pieces_gathers_their_unknown_fields_in_linear_memory()
    {
        // From a hostile-payload review: each piece copied the unknown fields of all earlier ones, so 240,000 pieces of
        // 4 bytes (960 KB) took 40 s. 20,000 pieces copied about 800 MB.
        var schema = ParseProto("syntax = \"proto3\";\nmessage Outer { Inner m = 1; }\nmessage Inner { int32 b = 2; }\n");
        const int pieces = 20_000;
        byte[] payload = [0x00, .. Enumerable.Repeat<byte[]>([0x0A, 0x02, 0x08, 0x00], pieces).SelectMany(b => b)]; // m, holding unknown field 1 = 0
        DecodedPayload? decoded = null;
        Assert.True(AllocatedBytes(() => decoded = Protobuf.Decode(schema, payload)) < 20_000_000);

        // Every piece's unknown field is kept, in order, when the message is written again.
        ((Dictionary<string, object?>)((Dictionary<string, object?>)decoded!.Value!)["m"]!)["b"] = 1L;
        byte[] encoded = Protobuf.Encode(schema, decoded);
        Assert.Equal(1 + 1 + 3 + (2 * pieces) + 2, encoded.Length); // index, tag, length (3-byte varint), unknowns, b = 1
    }

    [Fact]
    public void Payloads_of_many_empty_messages_or_objects_do_not_allocate_room_for_absent_fields()
    {
        // 100,000 empty elements (2 bytes each in Protobuf, 3 in JSON). Before, each Protobuf element was a dictionary sized to
        // its type's 40 fields (about 1.5 KB) and each JSON object one sized to 8 members (about 430 bytes).
        string fields = string.Join(' ', Enumerable.Range(1, 40).Select(i => $"int32 f{i} = {i};"));
        var schema = ParseProto($"syntax = \"proto3\";\npackage big;\nmessage Big {{ {fields} }}\nmessage Holder {{ repeated Big items = 1; }}\n");
        byte[] protobuf = [0x02, 0x02, .. Enumerable.Repeat<byte[]>([0x0A, 0x00], 100_000).SelectMany(b => b)];
        Assert.True(AllocatedBytes(() => Protobuf.Decode(schema, protobuf)) < 30_000_000);

        byte[] json = Encoding.UTF8.GetBytes("[" + string.Join(',', Enumerable.Repeat("{}", 100_000)) + "]");
        Assert.True(AllocatedBytes(() => Json.Decode(ParseJsonSchema(), json.AsMemory())) < 25_000_000);

        // Avro records of null fields take no bytes: their fields count against the element budget as array items do.
        var avro = ParseAvro("""{"type":"array","items":{"type":"record","name":"Nulls","fields":[{"name":"a","type":"null"},{"name":"b","type":"null"}]}}""");
        byte[] manyNulls = [0x80, 0x9F, 0x49, 0x00]; // one block of 600,000 records, no bytes each
        Assert.Contains("record fields", Assert.Throws<PayloadDecodeException>(() => Avro.Decode(avro, manyNulls)).Message, StringComparison.Ordinal);
    }

    private static bool RuleHolds(object? value, string expression) =>
        CelRule.Compile(expression).Evaluate(new Dictionary<string, object?> { ["value"] = value }).IsPassed;

    private static long AllocatedBytes(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    private const string RecursiveProto = """
        syntax = "proto3";
        package rec;
        message Node { Node next = 1; string s = 2; repeated bool flags = 3; }
        """;

    private static byte[] NestedNodes(int depth)
    {
        byte[] message = [];
        for (var i = 0; i < depth; i++)
        {
            message = [0x0A, .. Varint((ulong)message.Length), .. message];
        }

        return [0x00, .. message];
    }

    /// <summary>A base-128 varint (Protobuf; Avro after zig-zag).</summary>
    internal static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }

    public static TheoryData<string, byte[]> HostileProtobuf => new()
    {
        { "empty payload (no index path)", [] },
        { "message index past the messages", [0x02, 0x0A] },
        { "negative message index", [0x02, 0x01] },
        { "index path longer than allowed", [0x82, 0x01, .. new byte[70]] },
        { "truncated varint", [0x00, 0x08, 0x80] },
        { "varint longer than 64 bits", [0x00, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F] },
        { "claimed 2 GB string in 10 bytes", [0x00, 0x12, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 2, 3] },
        { "claimed 2^64 length", [0x00, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] },
        { "length past the end", [0x00, 0x12, 0x05, (byte)'a'] },
        { "invalid UTF-8 in string", [0x00, 0x12, 0x02, 0xC3, 0x28] },
        { "field number 0", [0x00, 0x00, 0x01] },
        { "wire type 6", [0x00, 0x0E, 0x01] },
        { "wire type 7 on unknown field", [0x00, 0xA7, 0x06] },
        { "end-group without start", [0x00, 0xA4, 0x06] },
        { "wire type mismatch on known field", [0x00, 0x15, 1, 2, 3, 4] },
        { "truncated fixed64 in unknown field", [0x00, 0xA1, 0x06, 1, 2] },
        { "unterminated unknown group", [0x00, 0xA3, 0x06, 0x08, 0x01] },
        { "unknown group closed by another number", [0x00, 0xA3, 0x06, 0xAC, 0x06] },
        { "truncated packed bools", [0x00, 0x1A, 0x03, 0x01] },
        { "packed varint cut inside", [0x00, 0x1A, 0x01, 0x80] },
        { "nested message truncated", [0x00, 0x0A, 0x04, 0x0A, 0x05, 0x00] },
        { "nesting deeper than the limit", NestedNodes(RecordValue.MaxDepth + 5) },
        { "unknown groups nested deeper than the limit", [0x00, .. Enumerable.Repeat(new byte[] { 0xA3, 0x06 }, 80).SelectMany(b => b)] },
    };

    [Theory]
    [MemberData(nameof(HostileProtobuf))]
    public void Protobuf_hostile_input_fails_with_PayloadDecodeException(string description, byte[] payload)
    {
        var schema = ParseProto(RecursiveProto);
        var error = Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(schema, payload));
        Assert.False(string.IsNullOrEmpty(error.Message), description);
    }

    [Fact]
    public void Protobuf_closed_enum_numbers_a_proto2_schema_does_not_declare_stay_unknown_fields()
    {
        // Found by a differential fuzz against Google.Protobuf: the decoder took an undeclared number as the field's value,
        // where Java, C++ and Go parsers keep it as an unknown field and leave the field unset (proto2 enums are closed).
        var proto2 = ParseProto("""
            syntax = "proto2";
            package closed;
            enum E { A = 0; B = 1; }
            message M { optional E e = 1; repeated E r = 2; repeated E rp = 3 [packed = true]; map<string, E> m = 4; oneof o { E oe = 5; string s = 6; } }
            """);
        Dictionary<string, object?> Decode(params byte[] body) => (Dictionary<string, object?>)Protobuf.Decode(proto2, [0x00, .. body]).Value!;

        var unset = Decode(0x08, 0x02);
        Assert.False(unset.ContainsKey("e"));
        Assert.True(ProtobufPayloadCodec.HasUnknownFields(unset));
        Assert.Equal(new byte[] { 0x00, 0x08, 0x02 }, Protobuf.Encode(proto2, new DecodedPayload(unset, "closed.M", [0]))); // written back as it came

        Assert.Equal("B", Decode(0x08, 0x01, 0x08, 0x02)["e"]); // the undeclared number does not replace the value before it
        Assert.Equal("x", Decode(0x32, 0x01, 0x78, 0x28, 0x02)["s"]); // nor clear the other member of its oneof
        Assert.Equal(new List<object?> { "B" }, Decode(0x10, 0x01, 0x10, 0x02)["r"]);
        Assert.Equal(new List<object?> { "B" }, Decode(0x1A, 0x02, 0x01, 0x02)["rp"]);
        Assert.False(Decode(0x10, 0x02).ContainsKey("r"));
        // A map entry whose value is undeclared is held out of the map whole, as Java's generated code keeps it (an unknown
        // field of the message), and written back as it came.
        byte[] entry = [0x22, 0x05, 0x0A, 0x01, (byte)'k', 0x10, 0x02];
        var map = Decode(entry);
        Assert.False(map.ContainsKey("m"));
        Assert.True(ProtobufPayloadCodec.HasUnknownFields(map));
        Assert.Equal([0x00, .. entry], Protobuf.Encode(proto2, new DecodedPayload(map, "closed.M", [0])));
        var both = Decode([0x22, 0x05, 0x0A, 0x01, (byte)'j', 0x10, 0x01, .. entry]);
        Assert.Equal(new Dictionary<string, object?> { ["j"] = "B" }, both["m"]);
        // An entry's last value decides, as in Java: declared last, the entry is in the map.
        Assert.Equal(new Dictionary<string, object?> { ["k"] = "B" }, Decode(0x22, 0x07, 0x0A, 0x01, (byte)'k', 0x10, 0x02, 0x10, 0x01)["m"]);
        Assert.False(Decode(0x22, 0x07, 0x0A, 0x01, (byte)'k', 0x10, 0x01, 0x10, 0x02).ContainsKey("m"));

        // Held-out numbers are charged against the element budget as objects are: 500,000 of them (1 MB) are refused.
        Assert.Throws<PayloadDecodeException>(() => Decode([.. Enumerable.Repeat(new byte[] { 0x08, 0x02 }, 500_000).SelectMany(b => b)]));

        // A required enum given only an undeclared number is missing: Java refuses to parse such a message, so does the gate.
        var required = ParseProto("""
            syntax = "proto2";
            package closed;
            enum E { A = 0; B = 1; }
            message R { required E e = 1; }
            """);
        Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(required, [0x00, 0x08, 0x02]));

        // Proto3 enums are open: the number is the value.
        var proto3 = ParseProto("""
            syntax = "proto3";
            package open;
            enum E { A = 0; B = 1; }
            message M { E e = 1; }
            """);
        Assert.Equal(2L, ((Dictionary<string, object?>)Protobuf.Decode(proto3, [0x00, 0x08, 0x02]).Value!)["e"]);
    }

    [Fact]
    public void Objects_count_as_several_elements_so_empty_ones_in_bulk_are_bounded()
    {
        // An empty JSON object or Protobuf map entry takes two or three bytes of payload and a dictionary of memory: counted
        // as one element each, 2 MB of them built a million dictionaries (about 100 MiB). Each now counts as four. A
        // Protobuf message still counts as one: 260,000 messages of four bytes (1 MB) are a real record.
        int most = RecordValue.MaxElements / RecordValue.ObjectElements;
        var proto = ParseProto("""
            syntax = "proto3";
            package bulk;
            message Holder { repeated Point points = 1; map<string, Point> named = 2; }
            message Point { int32 x = 1; }
            """);
        byte[] Entries(int count) => [0x00, .. Enumerable.Repeat(new byte[] { 0x12, 0x00 }, count).SelectMany(b => b)];
        Assert.Single((Dictionary<string, object?>)((Dictionary<string, object?>)Protobuf.Decode(proto, Entries(most)).Value!)["named"]!); // one key, ""
        Assert.Contains("a map entry counts as 4", Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(proto, Entries(most + 1))).Message, StringComparison.Ordinal);
        byte[] points = [0x00, .. Enumerable.Repeat(new byte[] { 0x0A, 0x02, 0x08, 0x01 }, 260_000).SelectMany(b => b)];
        Assert.Equal(260_000, ((List<object?>)((Dictionary<string, object?>)Protobuf.Decode(proto, points).Value!)["points"]!).Count);

        var json = ParseJsonSchema();
        byte[] Objects(int count) => Encoding.UTF8.GetBytes("[" + string.Join(",", Enumerable.Repeat("{}", count)) + "]");
        Assert.Equal(most, ((List<object?>)Json.Decode(json, (ReadOnlyMemory<byte>)Objects(most)).Value!).Count);
        Assert.Contains("an object counts as 4", Assert.Throws<PayloadDecodeException>(() => Json.Decode(json, (ReadOnlyMemory<byte>)Objects(most + 1))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Protobuf_nesting_within_the_limit_and_packed_elements_within_budget_decode()
    {
        var schema = ParseProto(RecursiveProto);
        Assert.IsAssignableFrom<Dictionary<string, object?>>(Protobuf.Decode(schema, NestedNodes(RecordValue.MaxDepth - 1)).Value);

        var tooMany = new byte[RecordValue.MaxElements + 1];
        byte[] payload = [0x00, 0x1A, .. Varint((ulong)tooMany.Length), .. tooMany];
        Assert.Contains("elements", Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(schema, payload)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Protobuf_enum_name_of_unknown_number_and_enum_encode_by_number()
    {
        var schema = ParseProto(AllTypesProto);
        var bytes = Protobuf.Encode(schema, new DecodedPayload(new Dictionary<string, object?> { ["g"] = 99L }));
        Assert.Equal([0x00, 0x38, 0x63], bytes);
    }

    [Fact]
    public void Avro_block_counts_that_would_overflow_the_element_budget_are_refused()
    {
        // One element, then a block claiming long.MaxValue elements of a type that takes no bytes: the sum wrapped
        // negative, passed the budget, and the decoder added nulls until memory ran out.
        var schema = ParseAvro("""{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}},{"name":"b","type":{"type":"array","items":"null"}}]}""");
        byte[] payload = [0x02, 0x00, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        Assert.Contains("elements", Assert.Throws<PayloadDecodeException>(() => Avro.Decode(schema, payload)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Claimed_2_GB_lengths_in_10_bytes_fail_without_allocating_them()
    {
        var avroSchema = ParseAvro("""{"type":"record","name":"R","fields":[{"name":"s","type":"string"},{"name":"b","type":"bytes"}]}""");
        var protoSchema = ParseProto(RecursiveProto);
        byte[] avro = [0x02, (byte)'a', 0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2, 3]; // s = "a", b claims 2^31 - 1 bytes
        byte[] proto = [0x00, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 1, 2, 3];   // s claims 2^31 - 1 bytes

        // Warm up so JIT and type loading do not count.
        Assert.Throws<PayloadDecodeException>(() => Avro.Decode(avroSchema, avro));
        Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(protoSchema, proto));

        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<PayloadDecodeException>(() => Avro.Decode(avroSchema, avro));
        Assert.Throws<PayloadDecodeException>(() => Protobuf.Decode(protoSchema, proto));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 256 * 1024, $"allocated {allocated} bytes");
    }

    /// <summary>Every prefix of a valid payload, and random corruptions of it, decode or fail with PayloadDecodeException only.</summary>
    [Fact]
    public void Truncated_and_corrupted_payloads_only_ever_throw_PayloadDecodeException()
    {
        var avroSchema = ParseAvro(AllTypesAvro);
        var avroBytes = WriteWithApacheAvro(avroSchema.Schema, SampleAvroRecord((RecordSchema)avroSchema.Schema));
        var protoSchema = ParseProto(AllTypesProto);
        var protoBytes = Framed([0], AllTypesMessage());
        var jsonSchema = ParseJsonSchema();
        var jsonBytes = """{"a":[1,2.5,"x",{"b":null}],"c":true}"""u8.ToArray();

        var cases = new (IPayloadCodec Codec, IParsedSchema Schema, byte[] Bytes)[]
        {
            (Avro, avroSchema, avroBytes),
            (Protobuf, protoSchema, protoBytes),
            (Json, jsonSchema, jsonBytes),
        };
        var random = new Random(12345);
        foreach (var (codec, schema, bytes) in cases)
        {
            for (var length = 0; length < bytes.Length; length++)
            {
                AssertDecodesOrFailsCleanly(codec, schema, bytes[..length]);
            }

            for (var round = 0; round < 3000; round++)
            {
                var corrupted = (byte[])bytes.Clone();
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    corrupted[random.Next(corrupted.Length)] = (byte)random.Next(256);
                }

                AssertDecodesOrFailsCleanly(codec, schema, corrupted);
            }
        }
    }

    private static void AssertDecodesOrFailsCleanly(IPayloadCodec codec, IParsedSchema schema, byte[] payload)
    {
        try
        {
            var decoded = codec.Decode(schema, payload);
            // Whatever decodes must encode again.
            codec.Encode(schema, decoded);
        }
        catch (PayloadDecodeException)
        {
        }
    }
}

internal static class ProtoTestBytes
{
    /// <summary>Drops the one-byte field headers protobuf-net needs before each value, leaving packed content.</summary>
    public static byte[] StripHeaders(this byte[] headedVarints)
    {
        var result = new List<byte>();
        var i = 0;
        while (i < headedVarints.Length)
        {
            i++; // header 0x08
            while ((headedVarints[i] & 0x80) != 0)
            {
                result.Add(headedVarints[i++]);
            }

            result.Add(headedVarints[i++]);
        }

        return [.. result];
    }
}
