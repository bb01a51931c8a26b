using SharedLog.Contracts.Formats.Avro;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Tests;

public sealed class AvroSchemaFormatTests
{
    public enum Direction
    {
        /// <summary>New schema reads data written with the old one (reader: new, writer: old).</summary>
        Backward,

        /// <summary>Old schema reads data written with the new one (reader: old, writer: new).</summary>
        Forward,
    }

    private static readonly AvroSchemaFormat Format = new();

    private static string Person(params string[] fields) =>
        $$"""{"type":"record","name":"Person","namespace":"com.acme","fields":[{{string.Join(",", fields)}}]}""";

    private static string Field(string name, string type, string extra = "") =>
        $$"""{"name":"{{name}}","type":{{type}}{{extra}}}""";

    private const string Name = """{"name":"name","type":"string"}""";
    private const string ColorRgb = """{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}""";
    private const string ColorRb = """{"type":"enum","name":"Color","symbols":["RED","BLUE"]}""";
    private const string ColorRbWithDefault = """{"type":"enum","name":"Color","symbols":["RED","BLUE"],"default":"RED"}""";

    private static string Address(params string[] fields) =>
        $$"""{"type":"record","name":"Address","fields":[{{string.Join(",", fields)}}]}""";

    private static string Node(string extraField = "") =>
        $$"""{"type":"record","name":"Node","namespace":"com.acme","fields":[{"name":"value","type":"int"},{"name":"next","type":["null","Node"],"default":null}{{extraField}}]}""";

    /// <summary>(description, old schema, new schema, direction, compatible, fragment every failure must contain).</summary>
    public static TheoryData<string, string, string, Direction, bool, string> CompatibilityCases => new()
    {
        { "identical schemas", Person(Name), Person(Name), Direction.Backward, true, "" },
        { "add field with default, backward", Person(Name), Person(Name, Field("age", "\"int\"", ",\"default\":0")), Direction.Backward, true, "" },
        { "add field with default, forward", Person(Name), Person(Name, Field("age", "\"int\"", ",\"default\":0")), Direction.Forward, true, "" },
        { "add field without default, backward", Person(Name), Person(Name, Field("age", "\"int\"")), Direction.Backward, false, "/fields/age: reader field 'age' has no default and is missing from the writer" },
        { "add field without default, forward", Person(Name), Person(Name, Field("age", "\"int\"")), Direction.Forward, true, "" },
        { "remove field with default, backward", Person(Name, Field("age", "\"int\"", ",\"default\":0")), Person(Name), Direction.Backward, true, "" },
        { "remove field with default, forward", Person(Name, Field("age", "\"int\"", ",\"default\":0")), Person(Name), Direction.Forward, true, "" },
        { "remove field without default, backward", Person(Name, Field("age", "\"int\"")), Person(Name), Direction.Backward, true, "" },
        { "remove field without default, forward", Person(Name, Field("age", "\"int\"")), Person(Name), Direction.Forward, false, "/fields/age: reader field 'age' has no default" },
        { "rename with alias, backward", Person(Field("fullName", "\"string\"")), Person(Field("name", "\"string\"", ",\"aliases\":[\"fullName\"]")), Direction.Backward, true, "" },
        { "rename with alias, forward", Person(Field("fullName", "\"string\"")), Person(Field("name", "\"string\"", ",\"aliases\":[\"fullName\"]")), Direction.Forward, false, "/fields/fullName: reader field 'fullName' has no default" },
        { "rename without alias, backward", Person(Field("fullName", "\"string\"")), Person(Field("name", "\"string\"")), Direction.Backward, false, "/fields/name: reader field 'name' has no default" },
        { "alias match still checks the type", Person(Field("fullName", "\"string\"")), Person(Field("name", "\"int\"", ",\"aliases\":[\"fullName\"]")), Direction.Backward, false, "/fields/name: type changed from string (writer) to int (reader)" },
        { "promote int to long, backward", Person(Field("n", "\"int\"")), Person(Field("n", "\"long\"")), Direction.Backward, true, "" },
        { "promote int to long, forward", Person(Field("n", "\"int\"")), Person(Field("n", "\"long\"")), Direction.Forward, false, "/fields/n: type changed from long (writer) to int (reader)" },
        { "promote int to float, backward", Person(Field("n", "\"int\"")), Person(Field("n", "\"float\"")), Direction.Backward, true, "" },
        { "promote int to double, backward", Person(Field("n", "\"int\"")), Person(Field("n", "\"double\"")), Direction.Backward, true, "" },
        { "promote long to float, backward", Person(Field("n", "\"long\"")), Person(Field("n", "\"float\"")), Direction.Backward, true, "" },
        { "promote long to double, backward", Person(Field("n", "\"long\"")), Person(Field("n", "\"double\"")), Direction.Backward, true, "" },
        { "promote float to double, backward", Person(Field("n", "\"float\"")), Person(Field("n", "\"double\"")), Direction.Backward, true, "" },
        { "demote double to float, backward", Person(Field("n", "\"double\"")), Person(Field("n", "\"float\"")), Direction.Backward, false, "type changed from double (writer) to float (reader)" },
        { "demote long to int, backward", Person(Field("n", "\"long\"")), Person(Field("n", "\"int\"")), Direction.Backward, false, "type changed from long (writer) to int (reader)" },
        { "string to bytes, backward", Person(Field("b", "\"string\"")), Person(Field("b", "\"bytes\"")), Direction.Backward, true, "" },
        { "string to bytes, forward", Person(Field("b", "\"string\"")), Person(Field("b", "\"bytes\"")), Direction.Forward, true, "" },
        { "string to int, backward", Person(Field("b", "\"string\"")), Person(Field("b", "\"int\"")), Direction.Backward, false, "/fields/b: type changed from string (writer) to int (reader)" },
        { "string to int, forward", Person(Field("b", "\"string\"")), Person(Field("b", "\"int\"")), Direction.Forward, false, "/fields/b: type changed from int (writer) to string (reader)" },
        { "enum add symbol, backward", Person(Field("c", ColorRb)), Person(Field("c", ColorRgb)), Direction.Backward, true, "" },
        { "enum add symbol, forward", Person(Field("c", ColorRb)), Person(Field("c", ColorRgb)), Direction.Forward, false, "/fields/c: enum symbol 'GREEN' written but unknown to reader" },
        { "enum add symbol, forward, old reader has default", Person(Field("c", ColorRbWithDefault)), Person(Field("c", ColorRgb)), Direction.Forward, true, "" },
        { "enum remove symbol, backward", Person(Field("c", ColorRgb)), Person(Field("c", ColorRb)), Direction.Backward, false, "enum symbol 'GREEN' written but unknown to reader" },
        { "enum remove symbol, backward, new reader has default", Person(Field("c", ColorRgb)), Person(Field("c", ColorRbWithDefault)), Direction.Backward, true, "" },
        { "enum remove symbol, forward", Person(Field("c", ColorRgb)), Person(Field("c", ColorRb)), Direction.Forward, true, "" },
        { "enum renamed", Person(Field("c", ColorRb)), Person(Field("c", ColorRb.Replace("\"Color\"", "\"Colour\"", StringComparison.Ordinal))), Direction.Backward, false, "name changed from 'com.acme.Color' (writer) to 'com.acme.Colour' (reader)" },
        { "union widen, backward", Person(Field("s", "\"string\"")), Person(Field("s", "[\"null\",\"string\"]")), Direction.Backward, true, "" },
        { "union widen, forward", Person(Field("s", "\"string\"")), Person(Field("s", "[\"null\",\"string\"]")), Direction.Forward, false, "/fields/s/union[0]: type changed from null (writer) to string (reader)" },
        { "union narrow, backward", Person(Field("s", "[\"null\",\"string\",\"int\"]")), Person(Field("s", "[\"null\",\"string\"]")), Direction.Backward, false, "/fields/s/union[2]: writer type int is not readable by any branch of reader union [null, string]" },
        { "union narrow, forward", Person(Field("s", "[\"null\",\"string\",\"int\"]")), Person(Field("s", "[\"null\",\"string\"]")), Direction.Forward, true, "" },
        { "union branch promoted", Person(Field("s", "[\"null\",\"int\"]")), Person(Field("s", "[\"null\",\"long\"]")), Direction.Backward, true, "" },
        { "writer union all readable by non-union reader", Person(Field("n", "\"double\"")), Person(Field("n", "[\"int\",\"long\"]")), Direction.Forward, true, "" },
        { "non-union writer unreadable by reader union", Person(Field("n", "\"double\"")), Person(Field("n", "[\"int\",\"long\"]")), Direction.Backward, false, "/fields/n: writer type double is not readable by any branch of reader union [int, long]" },
        { "nested record add field without default, backward", Person(Field("address", Address(Field("street", "\"string\"")))), Person(Field("address", Address(Field("street", "\"string\""), Field("zip", "\"string\"")))), Direction.Backward, false, "/fields/address/fields/zip: reader field 'zip' has no default and is missing from the writer" },
        { "nested record add field without default, forward", Person(Field("address", Address(Field("street", "\"string\"")))), Person(Field("address", Address(Field("street", "\"string\""), Field("zip", "\"string\"")))), Direction.Forward, true, "" },
        { "nested record inside union", Person(Field("address", $"[\"null\",{Address(Field("street", "\"string\""))}]")), Person(Field("address", $"[\"null\",{Address(Field("street", "\"string\""), Field("zip", "\"string\""))}]")), Direction.Backward, false, "/fields/address/union[1]/fields/zip: reader field 'zip' has no default" },
        { "array items promoted, backward", Person(Field("tags", "{\"type\":\"array\",\"items\":\"int\"}")), Person(Field("tags", "{\"type\":\"array\",\"items\":\"long\"}")), Direction.Backward, true, "" },
        { "array items promoted, forward", Person(Field("tags", "{\"type\":\"array\",\"items\":\"int\"}")), Person(Field("tags", "{\"type\":\"array\",\"items\":\"long\"}")), Direction.Forward, false, "/fields/tags/items: type changed from long (writer) to int (reader)" },
        { "map values changed", Person(Field("attrs", "{\"type\":\"map\",\"values\":\"string\"}")), Person(Field("attrs", "{\"type\":\"map\",\"values\":\"int\"}")), Direction.Backward, false, "/fields/attrs/values: type changed from string (writer) to int (reader)" },
        { "array became map", Person(Field("tags", "{\"type\":\"array\",\"items\":\"string\"}")), Person(Field("tags", "{\"type\":\"map\",\"values\":\"string\"}")), Direction.Forward, false, "/fields/tags: type changed from map (writer) to array (reader)" },
        { "fixed size change, backward", Person(Field("id", "{\"type\":\"fixed\",\"name\":\"Id\",\"size\":16}")), Person(Field("id", "{\"type\":\"fixed\",\"name\":\"Id\",\"size\":8}")), Direction.Backward, false, "/fields/id: fixed 'com.acme.Id' size changed from 16 (writer) to 8 (reader)" },
        { "fixed size change, forward", Person(Field("id", "{\"type\":\"fixed\",\"name\":\"Id\",\"size\":16}")), Person(Field("id", "{\"type\":\"fixed\",\"name\":\"Id\",\"size\":8}")), Direction.Forward, false, "size changed from 8 (writer) to 16 (reader)" },
        { "recursive type add field with default", Node(), Node(",{\"name\":\"weight\",\"type\":\"double\",\"default\":1.0}"), Direction.Backward, true, "" },
        { "recursive type add field without default", Node(), Node(",{\"name\":\"weight\",\"type\":\"double\"}"), Direction.Backward, false, "/fields/weight: reader field 'weight' has no default" },
        { "recursive type remove field without default", Node(), Node(",{\"name\":\"weight\",\"type\":\"double\"}"), Direction.Forward, true, "" },
        { "record renamed, backward", Person(Name), Person(Name).Replace("\"Person\"", "\"Human\"", StringComparison.Ordinal), Direction.Backward, false, "/: name changed from 'com.acme.Person' (writer) to 'com.acme.Human' (reader)" },
        { "record renamed, forward", Person(Name), Person(Name).Replace("\"Person\"", "\"Human\"", StringComparison.Ordinal), Direction.Forward, false, "name changed from 'com.acme.Human' (writer) to 'com.acme.Person' (reader)" },
        { "record renamed with alias, backward", Person(Name), Person(Name).Replace("\"Person\"", "\"Human\",\"aliases\":[\"Person\"]", StringComparison.Ordinal), Direction.Backward, true, "" },
        { "record renamed with alias, forward", Person(Name), Person(Name).Replace("\"Person\"", "\"Human\",\"aliases\":[\"Person\"]", StringComparison.Ordinal), Direction.Forward, false, "name changed from 'com.acme.Human' (writer) to 'com.acme.Person' (reader)" },
        // As Avro's SchemaCompatibility compares names since 1.9 (and Confluent with it): unqualified (a review found this refused).
        { "namespace changed", Person(Name), Person(Name).Replace("com.acme", "com.other", StringComparison.Ordinal), Direction.Backward, true, "" },
        { "namespace changed, read by a union", Person(Name), "[\"null\"," + Person(Name).Replace("com.acme", "com.other", StringComparison.Ordinal) + "]", Direction.Backward, true, "" },
        { "namespace changed and renamed", Person(Name), Person(Name).Replace("com.acme", "com.other", StringComparison.Ordinal).Replace("\"Person\"", "\"Human\"", StringComparison.Ordinal), Direction.Backward, false, "name changed from 'com.acme.Person' (writer) to 'com.other.Human' (reader)" },
        // Unions of records: a writer record is read by the reader's branch of its name or alias, wherever it stands.
        { "union of records reordered, alias in the reader", Person(Field("e", "[{\"type\":\"record\",\"name\":\"Old\",\"fields\":[]},{\"type\":\"record\",\"name\":\"B\",\"fields\":[]}]")), Person(Field("e", "[{\"type\":\"record\",\"name\":\"B\",\"fields\":[]},{\"type\":\"record\",\"name\":\"A\",\"aliases\":[\"Old\"],\"fields\":[]}]")), Direction.Backward, true, "" },
        { "union of records, a writer record the reader lacks", Person(Field("e", "[{\"type\":\"record\",\"name\":\"C\",\"fields\":[]},{\"type\":\"record\",\"name\":\"B\",\"fields\":[]}]")), Person(Field("e", "[{\"type\":\"record\",\"name\":\"B\",\"fields\":[]},\"string\"]")), Direction.Backward, false, "/fields/e/union[0]: writer type record 'com.acme.C' is not readable by any branch of reader union" },
        { "union of records, the named branch itself incompatible", Person(Field("e", "[\"null\",{\"type\":\"record\",\"name\":\"B\",\"fields\":[]}]")), Person(Field("e", "[\"null\",{\"type\":\"record\",\"name\":\"B\",\"fields\":[{\"name\":\"x\",\"type\":\"int\"}]}]")), Direction.Backward, false, "/fields/e/union[1]/fields/x: reader field 'x' has no default" },
        { "union: a writer record read by the reader's error of its name", Person(Field("e", "[\"null\",{\"type\":\"record\",\"name\":\"Failure\",\"fields\":[]}]")), Person(Field("e", "[\"null\",{\"type\":\"error\",\"name\":\"Failure\",\"fields\":[]}]")), Direction.Backward, true, "" },
        { "logical type over int promoted", Person(Field("d", "{\"type\":\"int\",\"logicalType\":\"date\"}")), Person(Field("d", "\"long\"")), Direction.Backward, true, "" },
    };

    [Theory]
    [MemberData(nameof(CompatibilityCases))]
    public void Compatibility(string description, string oldSchema, string newSchema, Direction direction, bool compatible, string expectedFragment)
    {
        var oldParsed = Format.Parse(oldSchema, [], normalize: false);
        var newParsed = Format.Parse(newSchema, [], normalize: false);
        var problems = direction == Direction.Backward
            ? Format.CheckCompatibility(reader: newParsed, writer: oldParsed)
            : Format.CheckCompatibility(reader: oldParsed, writer: newParsed);

        Assert.True(compatible == (problems.Count == 0), $"{description}: expected compatible={compatible}, got [{string.Join(" | ", problems)}]");
        if (!compatible)
        {
            Assert.Contains(problems, problem => problem.Contains(expectedFragment, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void NestedUnionsOfRecordsSharingANameAreTooComplexRatherThanExponential()
    {
        // Each level's reader union holds four records named X (namespaces a-d): the writer's X matches all by name, the
        // first three fail on w only after their v (the level below) was compared, and the fourth compares v again:
        // 4^depth comparisons. The first record defines the level below; the others name it (the text stays small).
        static string Below(int depth) => depth == 0 ? "\"int\"" : $"[\"a{depth}.X\",\"b{depth}.X\",\"c{depth}.X\",\"d{depth}.X\"]";
        static string Record(string space, int depth, string v, string w) =>
            $$$"""{"type":"record","name":"X","namespace":"{{{space}}}{{{depth}}}","fields":[{"name":"v","type":{{{v}}}},{"name":"w","type":"{{{w}}}"}]}""";
        static string Reader(int depth) => depth == 0 ? "\"int\"" :
            $"[{Record("a", depth, Reader(depth - 1), "int")},{Record("b", depth, Below(depth - 1), "int")},{Record("c", depth, Below(depth - 1), "int")},{Record("d", depth, Below(depth - 1), "string")}]";
        static string Writer(int depth) => depth == 0 ? "\"int\"" : Record("w", depth, Writer(depth - 1), "string");

        var problems = Format.CheckCompatibility(reader: Format.Parse(Reader(11), [], normalize: false), writer: Format.Parse(Writer(11), [], normalize: false));

        Assert.Equal(["/: the schemas are too complex to compare within 500000 steps (nested unions of records sharing a name); taken as incompatible"], problems);
        // A few levels are compared in full, and are compatible through the d branches.
        Assert.Empty(Format.CheckCompatibility(reader: Format.Parse(Reader(3), [], normalize: false), writer: Format.Parse(Writer(3), [], normalize: false)));
    }

    [Fact]
    public void WhatAFailedUnionBranchConcludedIsNotReusedLater()
    {
        // From a review: while (P, P) was in progress it was assumed compatible, so (Q, Q) under it was remembered as
        // compatible; P then failed, but only as a trial branch of a union (P2 read it instead), and f2 reused (Q, Q):
        // a writer's Q.back holding a P with a string x would reach the reader's P, whose x is an int.
        const string writer = """
            {"type":"record","name":"W","fields":[
              {"name":"f1","type":{"type":"record","name":"P","fields":[{"name":"q","type":{"type":"record","name":"Q","fields":[{"name":"back","type":["null","P"]}]}},{"name":"x","type":"string"}]}},
              {"name":"f2","type":"Q"}]}
            """;
        const string reader = """
            {"type":"record","name":"W","fields":[
              {"name":"f1","type":[
                {"type":"record","name":"P","fields":[{"name":"q","type":{"type":"record","name":"Q","fields":[{"name":"back","type":["null","P"]}]}},{"name":"x","type":"int"}]},
                {"type":"record","name":"P2","aliases":["P"],"fields":[{"name":"q","type":"Q"},{"name":"x","type":"string"}]}]},
              {"name":"f2","type":"Q"}]}
            """;
        var problems = Format.CheckCompatibility(reader: Format.Parse(reader, [], normalize: false), writer: Format.Parse(writer, [], normalize: false));
        Assert.Contains(problems, p => p.Contains("/fields/f2", StringComparison.Ordinal));
    }

    [Fact]
    public void RecursiveTypesAgainstThemselvesTerminate()
    {
        var tree = """{"type":"record","name":"Tree","fields":[{"name":"children","type":{"type":"array","items":"Tree"}},{"name":"meta","type":{"type":"map","values":["null","Tree"]}}]}""";
        var parsed = Format.Parse(tree, [], normalize: false);
        Assert.Empty(Format.CheckCompatibility(parsed, parsed));
    }

    [Fact]
    public void SharedTypeReportedAtEveryPathItBreaks()
    {
        var v1 = Person(Field("home", Address(Field("street", "\"string\""))), Field("work", "\"Address\""));
        var v2 = Person(Field("home", Address(Field("street", "\"string\""), Field("zip", "\"string\""))), Field("work", "\"Address\""));
        var problems = Format.CheckCompatibility(Format.Parse(v2, [], false), Format.Parse(v1, [], false));
        Assert.Contains(problems, problem => problem.StartsWith("/fields/home/fields/zip:", StringComparison.Ordinal));
        Assert.Contains(problems, problem => problem.StartsWith("/fields/work:", StringComparison.Ordinal));
    }

    [Fact]
    public void SharedTypesAreCheckedOncePerPair()
    {
        // Each level holds the previous level twice: walking every path would visit 2^30 leaves.
        static string Levels(string leafType)
        {
            var fields = new List<string> { $$$"""{"name":"leaf","type":{"type":"record","name":"L0","fields":[{"name":"v","type":"{{{leafType}}}"}]}}""" };
            for (var level = 1; level <= 30; level++)
            {
                var inner = $"L{level - 1}";
                fields.Add($$$"""{"name":"f{{{level}}}","type":{"type":"record","name":"L{{{level}}}","fields":[{"name":"a","type":"{{{inner}}}"},{"name":"b","type":"{{{inner}}}"}]}}""");
            }

            return Person([.. fields]);
        }

        var intLeaves = Format.Parse(Levels("int"), [], false);
        var longLeaves = Format.Parse(Levels("long"), [], false);

        Assert.Empty(Format.CheckCompatibility(reader: longLeaves, writer: intLeaves));
        var problems = Format.CheckCompatibility(reader: intLeaves, writer: longLeaves);
        Assert.Contains(problems, problem => problem.StartsWith("/fields/leaf/fields/v: type changed from long (writer) to int (reader)", StringComparison.Ordinal));
        Assert.True(problems.Count < 100, string.Join(" | ", problems));
    }

    public static TheoryData<string, string, string> InvalidSchemas => new()
    {
        { "invalid JSON", """{"type":"record","name":""", "not valid JSON" },
        { "trailing garbage", "\"int\" garbage", "not valid JSON" },
        { "JSON number", "42", "must be a JSON string, object or array" },
        { "unknown field type", Person(Field("a", "\"com.acme.Missing\"")), "unknown type 'com.acme.Missing'" },
        { "unknown bare type", "\"Missing\"", "unknown type 'Missing'" },
        { "record without name", """{"type":"record","fields":[{"name":"a","type":"int"}]}""", "name" },
        { "record without fields", """{"type":"record","name":"R"}""", "fields" },
        { "duplicate field names", Person(Field("a", "\"int\""), Field("a", "\"long\"")), "duplicate" },
        { "int default is a string", Person(Field("a", "\"int\"", ",\"default\":\"x\"")), "invalid default for field 'a' of record 'com.acme.Person': \"x\" is not a valid int" },
        { "int default out of range", Person(Field("a", "\"int\"", ",\"default\":3000000000")), "invalid default for field 'a'" },
        { "enum default not a symbol", Person(Field("c", ColorRb, ",\"default\":\"GREEN\"")), "invalid default for field 'c'" },
        { "record default misses a field", Person(Field("address", Address(Field("street", "\"string\"")), ",\"default\":{}")), "invalid default for field 'address'" },
        { "array default of wrong items", Person(Field("tags", "{\"type\":\"array\",\"items\":\"int\"}", ",\"default\":[\"a\"]")), "invalid default for field 'tags'" },
        { "null default for non-null union", Person(Field("s", "[\"string\",\"int\"]", ",\"default\":null")), "invalid default for field 's'" },
        { "duplicate type in union", "[\"int\",\"int\"]", "Duplicate type in union" },
        { "duplicate enum symbol", """{"type":"enum","name":"E","symbols":["A","A"]}""", "Duplicate symbol" },
        { "fixed without size", """{"type":"fixed","name":"F"}""", "size" },
        { "invalid name", """{"type":"record","name":"9lives","fields":[]}""", "Invalid schema name" },
        { "object with an unknown type", """{"type": "recrod"}""", "unknown type" },
        { "field of an unknown object type", """{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"recrod"}}]}""", "" },
        { "array of an unknown object type", """{"type":"array","items":{"type":"nope"}}""", "" },
        { "map of an unknown object type", """{"type":"map","values":{"type":"nope"}}""", "" },
        { "union of an unknown object type", """[{"type":"nope"}]""", "" },
        { "type redefined", Person(Field("a", """{"type":"fixed","name":"Person","size":2}""")), "Duplicate schema name" },
    };

    [Theory]
    [InlineData("""{"type":"fixed","name":"U","size":8,"logicalType":"uuid"}""", "0102030405060708")]
    [InlineData("""{"type":"string","logicalType":"timestamp-millis"}""", "0261")]
    [InlineData("""{"type":"bytes","logicalType":"decimal","precision":4,"scale":6}""", "020F")]
    [InlineData("""{"type":"bytes","logicalType":"decimal"}""", "020F")]
    [InlineData("""{"type":"int","logicalType":"time-micros"}""", "02")]
    public void LogicalTypesJavaIgnoresAreRegisteredAndReadAsTheirBaseType(string fieldType, string valueHex)
    {
        // Confluent's registry (Java's parser) takes these: a logical type on the wrong base type, or a decimal without
        // precision or with a scale above it, reads as the base type (uuid on a fixed other than 16 bytes too). Apache.Avro
        // refused them all. A record type named before the field must not count as defined twice on the second parse.
        string schema = """{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"Inner","fields":[]}},{"name":"f","type":""" + fieldType + "}]}";
        IParsedSchema parsed = Format.Parse(schema, [], normalize: false);
        Assert.Contains("logicalType", parsed.Canonical, StringComparison.Ordinal);

        var value = (Dictionary<string, object?>)new AvroPayloadCodec().Decode(parsed, Convert.FromHexString(valueHex)).Value!;
        object? field = value["f"];
        Assert.True(field is byte[] or string or long, $"{fieldType} read as {field?.GetType().Name}");
    }

    [Theory]
    [MemberData(nameof(InvalidSchemas))]
    public void InvalidSchemaIsRejected(string description, string schema, string expectedFragment)
    {
        var error = Assert.Throws<InvalidSchemaException>(() => Format.Parse(schema, [], normalize: false));
        Assert.True(error.Message.Contains(expectedFragment, StringComparison.OrdinalIgnoreCase), $"{description}: {error.Message}");
    }

    [Theory]
    [InlineData("union default matching the first branch", "[\"null\",\"string\"]", "null")]
    [InlineData("union default matching a later branch", "[\"string\",\"null\"]", "null")]
    [InlineData("long default", "\"long\"", "3000000000")]
    [InlineData("double default given as an integer", "\"double\"", "1")]
    [InlineData("bytes default", "\"bytes\"", "\"\\u00ff\"")]
    [InlineData("map default", "{\"type\":\"map\",\"values\":\"int\"}", "{\"a\":1}")]
    [InlineData("record default with a defaulted field omitted", "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"x\",\"type\":\"int\",\"default\":0}]}", "{}")]
    public void ValidDefaultsAreAccepted(string description, string type, string defaultJson)
    {
        var parsed = Format.Parse(Person(Field("f", type, ",\"default\":" + defaultJson)), [], normalize: false);
        Assert.False(string.IsNullOrEmpty(parsed.Canonical), description);
    }

    [Fact]
    public void DepthBombOfNestedArrayTypesIsRejected()
    {
        const int levels = 10_000;
        var schema = string.Concat(Enumerable.Repeat("{\"type\":\"array\",\"items\":", levels)) + "\"int\"" + new string('}', levels);
        var error = Assert.Throws<InvalidSchemaException>(() => Format.Parse(schema, [], normalize: false));
        Assert.Contains($"deeper than {SchemaLimits.MaxDepth}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DepthBombOfNestedUnionsIsRejected()
    {
        var schema = new string('[', 10_000) + new string(']', 10_000);
        Assert.Throws<InvalidSchemaException>(() => Format.Parse(schema, [], normalize: false));
    }

    [Fact]
    public void ModeratelyNestedSchemaIsAccepted()
    {
        const int levels = 20;
        var schema = string.Concat(Enumerable.Repeat("{\"type\":\"array\",\"items\":", levels)) + "\"int\"" + new string('}', levels);
        Assert.NotNull(Format.Parse(schema, [], normalize: false));
    }

    [Fact]
    public void OversizedSchemaIsRejected()
    {
        var schema = "\"int\"" + new string(' ', SchemaLimits.MaxSchemaChars);
        var error = Assert.Throws<InvalidSchemaException>(() => Format.Parse(schema, [], normalize: false));
        Assert.Contains("limit", error.Message, StringComparison.Ordinal);
    }

    private const string AddressReferenceText = """{"type":"record","name":"Address","namespace":"com.acme.common","fields":[{"name":"street","type":"string"},{"name":"country","type":"com.acme.common.Country"}]}""";
    private const string CountryReferenceText = """{"type":"enum","name":"Country","namespace":"com.acme.common","symbols":["NL","DE"]}""";

    private static ResolvedReference CountryReference => new("com.acme.common.Country", "country-value", 1, CountryReferenceText, []);

    private static ResolvedReference AddressReference => new("com.acme.common.Address", "address-value", 3, AddressReferenceText, [CountryReference]);

    [Fact]
    public void ReferencesSupplyNamedTypesTransitively()
    {
        var schema = Person(Field("home", "\"com.acme.common.Address\""), Field("citizenship", "\"com.acme.common.Country\""));
        var parsed = Format.Parse(schema, [AddressReference], normalize: true);

        Assert.Same(parsed.Text, parsed.Canonical);
        Assert.Equal(
            """{"name":"com.acme.Person","type":"record","fields":[{"name":"home","type":"com.acme.common.Address"},{"name":"citizenship","type":"com.acme.common.Country"}]}""",
            parsed.Canonical);

        // The normalized text names referenced types only, so it parses again with the same references.
        var reparsed = Format.Parse(parsed.Text, [AddressReference], normalize: true);
        Assert.Equal(parsed.Canonical, reparsed.Canonical);
        Assert.Single(parsed.References);
    }

    [Fact]
    public void MissingReferenceNamesTheUnknownType()
    {
        var schema = Person(Field("home", "\"com.acme.common.Address\""));
        var error = Assert.Throws<InvalidSchemaException>(() => Format.Parse(schema, [], normalize: false));
        Assert.Contains("unknown type 'com.acme.common.Address'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReferenceMissingItsOwnReferenceIsReported()
    {
        var addressWithoutCountry = AddressReference with { References = [] };
        var schema = Person(Field("home", "\"com.acme.common.Address\""));
        var error = Assert.Throws<InvalidSchemaException>(() => Format.Parse(schema, [addressWithoutCountry], normalize: false));
        Assert.Contains("reference 'com.acme.common.Address'", error.Message, StringComparison.Ordinal);
        Assert.Contains("unknown type 'com.acme.common.Country'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SchemaMayBeJustAReferencedName()
    {
        var parsed = Format.Parse("\"com.acme.common.Country\"", [CountryReference], normalize: false);
        Assert.Equal("\"com.acme.common.Country\"", parsed.Canonical);
    }

    [Fact]
    public void CompatibilityLooksThroughReferences()
    {
        var countryV2 = CountryReference with { Version = 2, SchemaText = CountryReferenceText.Replace("\"DE\"", "\"DE\",\"FR\"", StringComparison.Ordinal) };
        var schema = Person(Field("citizenship", "\"com.acme.common.Country\""));
        var oldParsed = Format.Parse(schema, [CountryReference], normalize: false);
        var newParsed = Format.Parse(schema, [countryV2], normalize: false);

        Assert.Empty(Format.CheckCompatibility(reader: newParsed, writer: oldParsed));
        var problems = Format.CheckCompatibility(reader: oldParsed, writer: newParsed);
        Assert.Contains("/fields/citizenship: enum symbol 'FR' written but unknown to reader", Assert.Single(problems), StringComparison.Ordinal);
    }

    [Fact]
    public void CanonicalIgnoresWhitespaceAndAttributeOrder()
    {
        var compact = """{"type":"record","name":"Person","namespace":"com.acme","doc":"a person","fields":[{"name":"age","type":"int","doc":"years","default":0}]}""";
        var reordered = """
            {
              "doc" : "a person",
              "fields" : [ { "default" : 0, "doc" : "years", "type" : { "type" : "int" }, "name" : "age", "order" : "ascending" } ],
              "namespace" : "com.acme",
              "name" : "Person",
              "type" : "record"
            }
            """;
        var first = Format.Parse(compact, [], normalize: false);
        var second = Format.Parse(reordered, [], normalize: false);

        Assert.Equal(first.Canonical, second.Canonical);
        Assert.Equal(compact, first.Text);
        Assert.Equal(reordered, second.Text);
    }

    [Fact]
    public void CanonicalKeepsWhatChangesResolution()
    {
        var withoutDefault = Format.Parse(Person(Field("age", "\"int\"")), [], normalize: false);
        var withDefault = Format.Parse(Person(Field("age", "\"int\"", ",\"default\":0")), [], normalize: false);
        var withAlias = Format.Parse(Person(Field("age", "\"int\"", ",\"aliases\":[\"years\"]")), [], normalize: false);

        Assert.NotEqual(withoutDefault.Canonical, withDefault.Canonical);
        Assert.NotEqual(withoutDefault.Canonical, withAlias.Canonical);
    }

    [Fact]
    public void CanonicalKeepsCustomPropertiesWhereverTheyAreWrittenAndNormalizingKeepsThem()
    {
        string plain = Person(Field("ssn", "\"string\""), Field("tags", """{"type":"array","items":"string"}"""), Field("at", """{"type":"long","logicalType":"timestamp-millis"}"""), Field("maybe", """["null","int"]"""));
        string[] variants =
        [
            Person(Field("ssn", "\"string\"", ",\"confluent:tags\":[\"PII\"]"), Field("tags", """{"type":"array","items":"string"}"""), Field("at", """{"type":"long","logicalType":"timestamp-millis"}"""), Field("maybe", """["null","int"]""")),
            Person(Field("ssn", """{"type":"string","avro.java.string":"String"}"""), Field("tags", """{"type":"array","items":"string"}"""), Field("at", """{"type":"long","logicalType":"timestamp-millis"}"""), Field("maybe", """["null","int"]""")),
            Person(Field("ssn", "\"string\""), Field("tags", """{"type":"array","items":"string","connect.name":"tags"}"""), Field("at", """{"type":"long","logicalType":"timestamp-millis"}"""), Field("maybe", """["null","int"]""")),
            Person(Field("ssn", "\"string\""), Field("tags", """{"type":"array","items":"string"}"""), Field("at", """{"type":"long","logicalType":"timestamp-millis","connect.version":1}"""), Field("maybe", """["null","int"]""")),
            Person(Field("ssn", "\"string\""), Field("tags", """{"type":"array","items":"string"}"""), Field("at", """{"type":"long","logicalType":"timestamp-millis"}"""), Field("maybe", """["null",{"type":"int","connect.type":"int8"}]""")),
            plain.Replace("\"namespace\":\"com.acme\",", "\"namespace\":\"com.acme\",\"connect.name\":\"com.acme.Person\",", StringComparison.Ordinal),
        ];

        var canonicals = new HashSet<string>(StringComparer.Ordinal) { Format.Parse(plain, [], normalize: false).Canonical };
        foreach (string variant in variants)
        {
            IParsedSchema parsed = Format.Parse(variant, [], normalize: true);
            Assert.True(canonicals.Add(parsed.Canonical), $"custom property lost from the identity of {variant}: {parsed.Canonical}");

            // The normalized text keeps the property and parses back to the same identity.
            Assert.Equal(parsed.Canonical, parsed.Text);
            Assert.Equal(parsed.Canonical, Format.Parse(parsed.Text, [], normalize: true).Canonical);
        }

        // Properties are compared by name and value, not by the order they were written in.
        var twoProperties = Format.Parse(Person(Field("ssn", "\"string\"", ",\"confluent:tags\":[\"PII\"],\"x-owner\":\"hr\"")), [], normalize: false);
        var swapped = Format.Parse(Person(Field("ssn", "\"string\"", ",\"x-owner\":\"hr\",\"confluent:tags\":[\"PII\"]")), [], normalize: false);
        Assert.Equal(twoProperties.Canonical, swapped.Canonical);
        Assert.Contains("\"confluent:tags\":[\"PII\"]", twoProperties.Canonical, StringComparison.Ordinal);
    }

    [Fact]
    public void ParsingCanonicalFormFollowsTheSpecification()
    {
        var documented = (AvroParsedSchema)Format.Parse("""{"type":"record","name":"P","namespace":"a.b","doc":"x","fields":[{"name":"f","type":{"type":"fixed","name":"F","size":4},"doc":"y"}]}""", [], false);
        var plain = (AvroParsedSchema)Format.Parse("""{"name":"a.b.P","type":"record","fields":[{"type":{"size":4,"type":"fixed","name":"F"},"name":"f"}]}""", [], false);

        Assert.Equal("""{"name":"a.b.P","type":"record","fields":[{"name":"f","type":{"name":"a.b.F","type":"fixed","size":4}}]}""", plain.ParsingCanonicalForm);
        Assert.Equal(plain.ParsingCanonicalForm, documented.ParsingCanonicalForm);
        Assert.NotEqual(plain.Canonical, documented.Canonical);
    }

    [Fact]
    public void NormalizedTextParsesBackToTheSameCanonical()
    {
        var schema = Person(
            Field("c", ColorRbWithDefault, ",\"default\":\"BLUE\",\"doc\":\"favourite\""),
            Field("d", "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":9,\"scale\":2}"),
            Field("id", "{\"type\":\"fixed\",\"name\":\"Id\",\"size\":16,\"aliases\":[\"Uuid\"]}", ",\"order\":\"descending\""),
            Field("next", "[\"null\",\"Person\"]", ",\"default\":null"));
        var normalized = Format.Parse(schema, [], normalize: true);
        var again = Format.Parse(normalized.Text, [], normalize: true);

        Assert.Equal(normalized.Canonical, again.Canonical);
        Assert.Contains("\"aliases\":[\"com.acme.Uuid\"]", normalized.Canonical, StringComparison.Ordinal);
        Assert.Contains("\"logicalType\":\"decimal\",\"precision\":9,\"scale\":2", normalized.Canonical, StringComparison.Ordinal);
    }

    [Fact]
    public void SchemasFromAnotherFormatAreRefused()
    {
        var parsed = Format.Parse("\"int\"", [], false);
        Assert.Throws<ArgumentException>(() => Format.CheckCompatibility(parsed, new ForeignSchema()));
    }

    private sealed class ForeignSchema : IParsedSchema
    {
        public SchemaType Type => SchemaType.Json;

        public string Text => "{}";

        public string Canonical => "{}";

        public IReadOnlyList<ResolvedReference> References => [];
    }
}
