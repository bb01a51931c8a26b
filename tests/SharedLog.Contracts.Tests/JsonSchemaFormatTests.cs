using System.Text;
using SharedLog.Contracts.Formats.Json;
using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Tests;

public class JsonSchemaFormatTests
{
    private static readonly JsonSchemaFormat Format = new();

    /// <summary>Test schemas are written with single quotes to stay readable.</summary>
    private static string Json(string text) => text.Replace('\'', '"');

    private static IParsedSchema Parse(string text, params ResolvedReference[] references) => Format.Parse(Json(text), references, normalize: false);

    private static InvalidSchemaException ParseFails(string text, params ResolvedReference[] references) =>
        Assert.Throws<InvalidSchemaException>(() => Format.Parse(text, references, normalize: false));

    private const string Obj = "'type':'object'";

    // (description, old schema, new schema, BACKWARD compatible?, FORWARD compatible?, fragment expected in the messages of the failing direction)
    public static TheoryData<string, string, string, bool, bool, string?> CompatibilityCases => new()
    {
        { "identical", "{" + Obj + ",'properties':{'a':{'type':'string'}},'required':['a']}", "{'required':['a'],'properties':{'a':{'type':'string'}}," + Obj + "}", true, true, null },
        { "type number narrowed to integer", "{'type':'number'}", "{'type':'integer'}", false, true, "#: type narrowed from number to integer" },
        { "type widened with null", "{'type':'string'}", "{'type':['string','null']}", true, false, "#: type narrowed from [null, string] to string" },
        { "type changed", "{'type':'string'}", "{'type':'number'}", false, false, "type narrowed from string to number" },
        { "nullable integer widened to number", "{'type':['integer','null']}", "{'type':['number','null']}", true, false, "type narrowed from [null, number] to [null, integer]" },
        { "nested property narrowed", "{" + Obj + ",'properties':{'age':{'type':'number'}}}", "{" + Obj + ",'properties':{'age':{'type':'integer'}}}", false, true, "#/properties/age: type narrowed from number to integer" },

        // Open content models: a property the writer does not name can hold anything.
        { "open: constrained property added", "{" + Obj + ",'properties':{'a':{'type':'string'}}}", "{" + Obj + ",'properties':{'a':{'type':'string'},'b':{'type':'integer'}}}", false, true, "#/properties/b: property 'b' is constrained by the reader but the writer's open content model allows any value" },
        { "open: unconstrained property added", "{" + Obj + ",'properties':{'a':{'type':'string'}}}", "{" + Obj + ",'properties':{'a':{'type':'string'},'b':{'description':'free'}}}", true, true, null },
        // A pattern that backtracks catastrophically on the name is still matched exactly (it does not apply here): the
        // comparison matches patterns in linear time instead of giving up on a timeout and assuming the pattern applies.
        { "pattern property that does not match a catastrophic name", "{" + Obj + ",'properties':{'" + new string('a', 40) + "b':{'type':'string'}},'additionalProperties':false}", "{" + Obj + ",'patternProperties':{'^(a+)+$':{'type':'integer'}}}", true, false, null },
        { "open: property removed", "{" + Obj + ",'properties':{'a':{'type':'string'},'b':{'type':'integer'}}}", "{" + Obj + ",'properties':{'a':{'type':'string'}}}", true, false, "property 'b' is constrained by the reader" },

        // Closed content models: additionalProperties false.
        { "closed: property added", "{" + Obj + ",'properties':{'a':{'type':'string'}},'additionalProperties':false}", "{" + Obj + ",'properties':{'a':{'type':'string'},'b':{'type':'integer'}},'additionalProperties':false}", true, false, "#/properties/b: property 'b' produced by the writer is not allowed by the reader (additionalProperties is false)" },
        { "closed: property removed", "{" + Obj + ",'properties':{'a':{'type':'string'},'b':{'type':'integer'}},'additionalProperties':false}", "{" + Obj + ",'properties':{'a':{'type':'string'}},'additionalProperties':false}", false, true, "property 'b' produced by the writer is not allowed by the reader" },
        { "closed writer, reader open with new property", "{" + Obj + ",'properties':{'a':{'type':'string'}},'additionalProperties':false}", "{" + Obj + ",'properties':{'a':{'type':'string'},'b':{'type':'integer'}}}", true, false, "#/additionalProperties: the reader closes the content model" },

        { "required added", "{" + Obj + ",'properties':{'a':{},'b':{}},'required':['a']}", "{" + Obj + ",'properties':{'a':{},'b':{}},'required':['a','b']}", false, true, "#/required: property 'b' newly required" },
        { "required removed", "{" + Obj + ",'properties':{'a':{}},'required':['a']}", "{" + Obj + ",'properties':{'a':{}}}", true, false, "#/required: property 'a' newly required" },
        { "additionalProperties closed", "{" + Obj + ",'properties':{'a':{}},'additionalProperties':true}", "{" + Obj + ",'properties':{'a':{}},'additionalProperties':false}", false, true, "#/additionalProperties: the reader closes the content model" },
        { "additionalProperties false to schema", "{" + Obj + ",'additionalProperties':false}", "{" + Obj + ",'additionalProperties':{'type':'string'}}", true, false, "#/additionalProperties: the reader closes the content model" },
        { "additionalProperties schema changed", "{" + Obj + ",'additionalProperties':{'type':'string'}}", "{" + Obj + ",'additionalProperties':{'type':'integer'}}", false, false, "#/additionalProperties: type narrowed from string to integer" },
        { "patternProperties replace a named property in a closed model", "{" + Obj + ",'properties':{'s_name':{'type':'string'}},'additionalProperties':false}", "{" + Obj + ",'patternProperties':{'^s_':{'type':'string'}},'additionalProperties':false}", true, false, "properties matching '^s_' produced by the writer are not allowed" },
        { "patternProperties narrowed", "{" + Obj + ",'patternProperties':{'^n_':{'type':'number'}}}", "{" + Obj + ",'patternProperties':{'^n_':{'type':'integer'}}}", false, true, "#/patternProperties/^n_: type narrowed from number to integer" },

        { "enum extended", "{'type':'string','enum':['a','b']}", "{'type':'string','enum':['a','b','c']}", true, false, "#/enum: value \"c\" allowed by the writer is missing" },
        { "const widened to enum", "{'const':'a'}", "{'enum':['a','b']}", true, false, "value \"b\" allowed by the writer is missing" },
        { "enum added", "{'type':'string'}", "{'type':'string','enum':['a']}", false, true, "#/enum: the reader restricts values to [\"a\"]" },
        { "enum numbers compare by value", "{'enum':[1,2]}", "{'enum':[1.0,2,3]}", true, false, "value 3 allowed" },

        { "minimum raised", "{'type':'number','minimum':0}", "{'type':'number','minimum':5}", false, true, "#/minimum: lower bound tightened from >= 0 to >= 5" },
        { "maximum added", "{'type':'number'}", "{'type':'number','maximum':100}", false, true, "#/maximum: maximum added (<= 100)" },
        { "exclusiveMinimum relaxed to minimum", "{'type':'number','exclusiveMinimum':0}", "{'type':'number','minimum':0}", true, false, "#/exclusiveMinimum: lower bound tightened from >= 0 to > 0" },
        { "draft 4 boolean exclusiveMaximum added", "{'type':'number','maximum':10}", "{'type':'number','maximum':10,'exclusiveMaximum':true}", false, true, "#/maximum: upper bound tightened from <= 10 to < 10" },
        { "integer bounds: > 0 equals >= 1", "{'type':'integer','exclusiveMinimum':0}", "{'type':'integer','minimum':1}", true, true, null },
        { "multipleOf changed", "{'type':'number','multipleOf':2}", "{'type':'number','multipleOf':4}", false, true, "#/multipleOf: multipleOf changed from 2 to 4" },
        { "maxLength lowered", "{'type':'string','maxLength':10}", "{'type':'string','maxLength':5}", false, true, "#/maxLength: maxLength decreased from 10 to 5" },
        { "minLength added", "{'type':'string'}", "{'type':'string','minLength':1}", false, true, "#/minLength: minLength 1 added" },
        { "minItems added", "{'type':'array'}", "{'type':'array','minItems':1}", false, true, "#/minItems: minItems 1 added" },
        { "maxProperties lowered", "{" + Obj + ",'maxProperties':5}", "{" + Obj + ",'maxProperties':3}", false, true, "#/maxProperties: maxProperties decreased from 5 to 3" },
        { "pattern added", "{'type':'string'}", "{'type':'string','pattern':'^[a-z]+$'}", false, true, "#/pattern: pattern '^[a-z]+$' added" },
        { "pattern changed", "{'type':'string','pattern':'^a'}", "{'type':'string','pattern':'^b'}", false, false, "#/pattern: pattern changed from" },
        { "format added", "{'type':'string'}", "{'type':'string','format':'email'}", false, true, "#/format: format 'email' added" },
        { "bounds of a type the writer cannot produce are ignored", "{'type':'string'}", "{'type':['string','number'],'minimum':3}", true, false, "type narrowed from [string, number] to string" },

        { "items narrowed", "{'type':'array','items':{'type':'number'}}", "{'type':'array','items':{'type':'integer'}}", false, true, "#/items: type narrowed from number to integer" },
        { "closed tuple extended (draft 7)", "{'type':'array','items':[{'type':'string'},{'type':'number'}],'additionalItems':false}", "{'type':'array','items':[{'type':'string'},{'type':'number'},{'type':'boolean'}],'additionalItems':false}", true, false, "#/additionalItems: the reader schema is false" },
        { "prefixItems changed (2020-12)", "{'type':'array','prefixItems':[{'type':'string'}],'items':false}", "{'type':'array','prefixItems':[{'type':'integer'}],'items':false}", false, false, "#/prefixItems/0: type narrowed" },
        { "uniqueItems added", "{'type':'array'}", "{'type':'array','uniqueItems':true}", false, true, "#/uniqueItems: uniqueItems added" },

        { "oneOf branch added", "{'oneOf':[{'type':'string'},{'type':'number'}]}", "{'oneOf':[{'type':'string'},{'type':'number'},{'type':'boolean'}]}", true, false, "#/oneOf: no reader branch accepts writer branch #/oneOf/2" },
        { "anyOf branch removed", "{'anyOf':[{'type':'string'},{'type':'number'},{'type':'boolean'}]}", "{'anyOf':[{'type':'string'},{'type':'number'}]}", false, true, "#/anyOf: no reader branch accepts writer branch #/anyOf/2" },
        { "type widened to a union", "{'type':'string'}", "{'oneOf':[{'type':'string'},{'type':'null'}]}", true, false, "type narrowed from null to string" },
        { "oneOf relaxed to anyOf", "{'oneOf':[{'type':'string'},{'type':'number'}]}", "{'anyOf':[{'type':'string'},{'type':'number'}]}", true, false, "combined type changed from anyOf to oneOf" },
        { "union branches with shared base keywords", "{" + Obj + ",'oneOf':[{'required':['a']},{'required':['b']}]}", "{" + Obj + ",'oneOf':[{'required':['a']},{'required':['b']},{'required':['c']}]}", true, false, "no reader branch accepts writer branch #/oneOf/2" },
        { "allOf subschema added", "{'allOf':[{" + Obj + ",'properties':{'x':{'type':'string'}}}]}", "{'allOf':[{" + Obj + ",'properties':{'x':{'type':'string'}}},{'required':['x']}]}", false, true, "#/allOf/1/required: property 'x' newly required" },
        { "allOf trivially true subschema added", "{'allOf':[{'type':'string'}]}", "{'allOf':[{'type':'string'},{'description':'no constraint'}]}", true, true, null },
        { "not added", "{'type':'string'}", "{'type':'string','not':{'const':''}}", false, true, "#/not: 'not' added or changed" },

        { "local $ref definition narrowed", "{" + Obj + ",'properties':{'v':{'$ref':'#/definitions/n'}},'definitions':{'n':{'type':'number'}}}", "{" + Obj + ",'properties':{'v':{'$ref':'#/definitions/n'}},'definitions':{'n':{'type':'integer'}}}", false, true, "#/properties/v: type narrowed from number to integer" },
        { "$defs target moved but equal", "{" + Obj + ",'properties':{'v':{'$ref':'#/$defs/a'}},'$defs':{'a':{'type':'string'}}}", "{" + Obj + ",'properties':{'v':{'$ref':'#/$defs/b'}},'$defs':{'b':{'type':'string'}}}", true, true, null },
        { "$ref replaced by inline schema", "{" + Obj + ",'properties':{'v':{'$ref':'#/$defs/a'}},'$defs':{'a':{'type':'string','maxLength':3}}}", "{" + Obj + ",'properties':{'v':{'type':'string','maxLength':5}}}", true, false, "#/properties/v/maxLength: maxLength decreased from 5 to 3" },
        { "recursive tree", "{" + Obj + ",'properties':{'value':{'type':'number'},'children':{'type':'array','items':{'$ref':'#'}}}}", "{" + Obj + ",'properties':{'value':{'type':'integer'},'children':{'type':'array','items':{'$ref':'#'}}}}", false, true, "#/properties/value: type narrowed from number to integer" },
        { "nested object gains a required property", "{" + Obj + ",'properties':{'address':{" + Obj + ",'properties':{'zip':{'type':'string'}},'required':['zip']}}}", "{" + Obj + ",'properties':{'address':{" + Obj + ",'properties':{'zip':{'type':'string'},'city':{'type':'string'}},'required':['zip','city']}}}", false, true, "#/properties/address/required: property 'city' newly required" },

        { "draft-07: $ref overrides its siblings", "{'$schema':'http://json-schema.org/draft-07/schema#','definitions':{'a':{'type':['string','number']}},'$ref':'#/definitions/a','type':'string'}", "{'$schema':'http://json-schema.org/draft-07/schema#','type':'string'}", false, true, "#: type narrowed from [string, number] to string" },
        { "2020-12: $ref applies with its siblings", "{'$schema':'https://json-schema.org/draft/2020-12/schema','$defs':{'a':{'type':['string','number']}},'$ref':'#/$defs/a','type':'string'}", "{'$schema':'https://json-schema.org/draft/2020-12/schema','type':'string'}", true, true, null },
        { "embedded resource by $id", "{'$id':'http://example.com/root.json','properties':{'n':{'$ref':'node.json'}},'$defs':{'x':{'$id':'node.json','type':'number'}}}", "{'$id':'http://example.com/root.json','properties':{'n':{'$ref':'node.json'}},'$defs':{'x':{'$id':'node.json','type':'integer'}}}", false, true, "#/properties/n: type narrowed from number to integer" },
        { "draft-07 plain-name $id anchor", "{'$schema':'http://json-schema.org/draft-07/schema#','properties':{'n':{'$ref':'#num'}},'definitions':{'x':{'$id':'#num','type':'number'}}}", "{'$schema':'http://json-schema.org/draft-07/schema#','properties':{'n':{'$ref':'#num'}},'definitions':{'x':{'$id':'#num','type':'integer'}}}", false, true, "#/properties/n: type narrowed from number to integer" },
        { "boolean type equals enum of both booleans", "{'type':'boolean'}", "{'enum':[true,false]}", true, true, null },
        { "nullable boolean loses null", "{'type':['boolean','null']}", "{'enum':[true,false]}", false, true, "type narrowed from [null, boolean] to boolean" },
        { "boolean schema true to false", "true", "false", false, true, "#: the reader schema is false" },
        { "empty object equals true", "{}", "true", true, true, null },
        { "true to typed", "true", "{'type':'string'}", false, true, "#: type narrowed from any to string" },
    };

    [Fact]
    public void A_backtracking_pattern_ends_the_comparison_at_its_first_timeout()
    {
        // From a hostile-schema review: each of 40 property names paid the pattern's timeout (16 s for a 3 KB schema), and a
        // timed-out match counted as a match, so the answer was compatible.
        string names = string.Join(",", Enumerable.Range(0, 40).Select(i => $"'{new string('a', 30)}!{i}':{{'type':'string'}}"));
        string body = "'properties':{" + names + "},'patternProperties':{'^(a+)+\\\\1$':{'type':'string'}}";
        var writer = Parse("{'type':'object'," + body + "}");
        var reader = Parse("{'title':'R','type':'object'," + body + "}");
        var messages = Format.CheckCompatibility(reader: reader, writer: writer);
        Assert.Contains(messages, m => m.Contains("too large or too recursive to compare", StringComparison.Ordinal));
    }

    [Fact]
    public void Backtracking_matches_of_one_comparison_are_bounded_together()
    {
        // From a review: each name matched within the timeout, but 1,000 of them held one registration for 10 s. The lookahead
        // keeps the pattern on the backtracking engine.
        const string pattern = "^(?=a)(a+)+$";
        string slow = SlowPatternInput.For(pattern);
        string names = string.Join(",", Enumerable.Range(0, 400).Select(i => $"'{slow}{i}':{{'type':'string'}}"));
        var writer = Parse("{'type':'object','properties':{" + names + "}}");
        var reader = Parse("{'type':'object','properties':{" + names + "},'patternProperties':{'" + pattern + "':{'type':'integer'}}}");

        var messages = Format.CheckCompatibility(reader: reader, writer: writer);

        Assert.Contains(messages, m => m.Contains("too large or too recursive to compare", StringComparison.Ordinal));
    }

    [Fact]
    public void Linear_time_matches_of_one_comparison_are_bounded_by_their_work()
    {
        // Linear in the name, but microseconds a character for a pattern of large counted repeats.
        string name = string.Concat(Enumerable.Repeat("ab", 150_000));
        var writer = Parse("{'type':'object','properties':{'" + name + "':{'type':'string'}}}");
        var reader = Parse("{'type':'object','properties':{'" + name + "':{'type':'string'}},'patternProperties':{'[ab]*a[ab]{1000}c':{'type':'integer'}}}");

        var messages = Format.CheckCompatibility(reader: reader, writer: writer);

        Assert.Contains(messages, m => m.Contains("too large or too recursive to compare", StringComparison.Ordinal));
    }

    [Fact]
    public void Compatibility_messages_are_gathered_and_bounded()
    {
        // From the same review: a message per missing enum value or newly required name, each repeating a long path, made
        // answers of 100-200 MB and ran the broker out of memory.
        string name = new('n', 100_000);
        string required = string.Join(",", Enumerable.Range(0, 2000).Select(i => $"'r{i}'"));
        var writer = Parse("{'type':'object','properties':{'" + name + "':{'type':'object'}}}");
        var reader = Parse("{'type':'object','properties':{'" + name + "':{'type':'object','required':[" + required + "]}}}");
        string only = Assert.Single(Format.CheckCompatibility(reader: reader, writer: writer));
        Assert.Contains("newly required", only, StringComparison.Ordinal);
        Assert.True(only.Length <= 1_000, $"{only.Length} characters");

        string values = string.Join(",", Enumerable.Range(0, 300));
        var enumWriter = Parse("{'type':'object','properties':{" + string.Join(",", Enumerable.Range(0, 300).Select(i => $"'p{i}':{{'enum':[{values}]}}")) + "}}");
        var enumReader = Parse("{'type':'object','properties':{" + string.Join(",", Enumerable.Range(0, 300).Select(i => $"'p{i}':{{'enum':[-1]}}")) + "}}");
        var enumMessages = Format.CheckCompatibility(reader: enumReader, writer: enumWriter);
        Assert.Equal(101, enumMessages.Count);
        Assert.Equal("#: and 200 more differences", enumMessages[^1]);
        Assert.Contains("values 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 290 more allowed by the writer are missing", enumMessages[0], StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(CompatibilityCases))]
    public void Compatibility(string description, string oldSchema, string newSchema, bool backward, bool forward, string? fragment)
    {
        var old = Parse(oldSchema);
        var @new = Parse(newSchema);
        var backwardMessages = Format.CheckCompatibility(reader: @new, writer: old);
        var forwardMessages = Format.CheckCompatibility(reader: old, writer: @new);

        Assert.True(backward == (backwardMessages.Count == 0), $"{description}: BACKWARD expected {(backward ? "compatible" : "incompatible")}, got [{string.Join(" | ", backwardMessages)}]");
        Assert.True(forward == (forwardMessages.Count == 0), $"{description}: FORWARD expected {(forward ? "compatible" : "incompatible")}, got [{string.Join(" | ", forwardMessages)}]");
        if (fragment is not null)
        {
            var failing = backward ? forwardMessages : backwardMessages;
            Assert.True(failing.Any(m => m.Contains(fragment, StringComparison.Ordinal)), $"{description}: expected a message containing '{fragment}', got [{string.Join(" | ", failing)}]");
        }
    }

    [Fact]
    public void Messages_name_path_and_rule()
    {
        var old = Parse("{" + Obj + ",'properties':{'age':{'type':'number'},'email':{'type':'string'}}}");
        var @new = Parse("{" + Obj + ",'properties':{'age':{'type':'integer'},'email':{'type':'string'}},'required':['email']}");
        var messages = Format.CheckCompatibility(reader: @new, writer: old);
        Assert.Contains("#/properties/age: type narrowed from number to integer", messages);
        Assert.Contains("#/required: property 'email' newly required", messages);
        Assert.Equal(2, messages.Count);
    }

    private static ResolvedReference Reference(string name, string text, int version = 1, params ResolvedReference[] nested) =>
        new(name, name.Replace(".json", string.Empty, StringComparison.Ordinal), version, Json(text), nested);

    [Fact]
    public void Compatibility_follows_refs_into_referenced_documents()
    {
        var addressV1 = Reference("address.json", "{" + Obj + ",'properties':{'zip':{'type':'string'}}}", 1);
        var addressV2 = Reference("address.json", "{" + Obj + ",'properties':{'zip':{'type':'string','maxLength':5}}}", 2);
        const string customer = "{" + Obj + ",'properties':{'address':{'$ref':'address.json'}}}";
        var old = Parse(customer, addressV1);
        var @new = Parse(customer, addressV2);

        var backward = Format.CheckCompatibility(reader: @new, writer: old);
        Assert.Contains("#/properties/address/properties/zip/maxLength: maxLength 5 added", backward);
        Assert.Empty(Format.CheckCompatibility(reader: old, writer: @new));
    }

    [Fact]
    public void Refs_with_fragments_anchors_and_transitive_references_resolve()
    {
        var country = Reference("country.json", "{'type':'string','enum':['NL','DE']}");
        var address = Reference("address.json", "{'definitions':{'zip':{'type':'string'}},'properties':{'country':{'$ref':'country.json'}}}", 1, country);
        var schema = Parse("{'properties':{'zip':{'$ref':'address.json#/definitions/zip'},'a':{'$ref':'address.json'},'b':{'$ref':'#item'}},'$defs':{'i':{'$anchor':'item','type':'integer'}}}", address);
        Assert.Empty(Format.CheckCompatibility(schema, schema));

        var narrowed = Parse("{'properties':{'zip':{'$ref':'address.json#/definitions/zip'},'a':{'$ref':'address.json'},'b':{'$ref':'#item'}},'$defs':{'i':{'$anchor':'item','type':'integer','minimum':0}}}", address);
        Assert.Contains(Format.CheckCompatibility(reader: narrowed, writer: schema), m => m.StartsWith("#/properties/b/minimum:", StringComparison.Ordinal));
    }

    [Fact]
    public void Absolute_ids_resolve_relative_refs()
    {
        var address = Reference("address.json", "{'type':'string'}");
        var schema = Parse("{'$id':'https://example.com/schemas/customer.json','properties':{'a':{'$ref':'https://example.com/schemas/address.json'},'b':{'$ref':'address.json'}}}", address);
        Assert.Empty(Format.CheckCompatibility(schema, schema));
    }

    [Theory]
    [InlineData("{'$ref':'#/definitions/missing'}", "#/definitions/missing")]
    [InlineData("{'properties':{'a':{'$ref':'other.json'}}}", "other.json")]
    [InlineData("{'$ref':'address.json#/definitions/nope'}", "address.json#/definitions/nope")]
    [InlineData("{'$ref':'#nowhere'}", "#nowhere")]
    public void Unresolvable_ref_is_invalid(string schema, string reference)
    {
        var address = Reference("address.json", "{'definitions':{'zip':{'type':'string'}}}");
        var ex = ParseFails(Json(schema), address);
        Assert.Contains($"cannot resolve '{reference}'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Long_chains_of_refs_are_checked_once_per_link(bool endsInASchema)
    {
        // d0 -> d1 -> ... -> d1999, then a real schema or back to d0. Each link is a $ref of its own that the check starts
        // from: walking the rest of the chain from every one of them was quadratic in the chain's length.
        const int Links = 2_000;
        var defs = new StringBuilder();
        for (int i = 0; i < Links - 1; i++)
        {
            defs.Append("'d").Append(i).Append("':{'$ref':'#/$defs/d").Append(i + 1).Append("'},");
        }

        defs.Append("'d").Append(Links - 1).Append("':").Append(endsInASchema ? "{'type':'string'}" : "{'$ref':'#/$defs/d0'}");
        string schema = "{'$defs':{" + defs + "},'properties':{'a':{'$ref':'#/$defs/d0'},'b':{'$ref':'#/$defs/d1000'}}}";
        if (endsInASchema)
        {
            // Walked once per link, then refused for its depth: each $ref to a $ref counts four levels.
            Assert.Contains("levels deep", ParseFails(Json(schema)).Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("cycle", ParseFails(Json(schema)).Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Ref_cycle_without_schema_is_invalid()
    {
        var ex = ParseFails(Json("{'$ref':'#/definitions/a','definitions':{'a':{'$ref':'#/definitions/b'},'b':{'$ref':'#/definitions/a'}}}"));
        Assert.Contains("cycle", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A chain of <paramref name="links"/> definitions, each <paramref name="link"/> with <c>NEXT</c> for the next one's $ref; the last a string.</summary>
    private static string RefChain(int links, string link)
    {
        var text = new StringBuilder("{'$defs':{");
        for (var i = 0; i < links; i++)
        {
            text.Append('\'').Append(i).Append("':").Append(link.Replace("NEXT", $"{{'$ref':'#/$defs/{i + 1}'}}", StringComparison.Ordinal)).Append(',');
        }

        return Json(text.Append('\'').Append(links).Append("':{'type':'string'}},'$ref':'#/$defs/0'}").ToString());
    }

    /// <summary>
    /// From a hostile-input review: a 20,000-link chain of $refs (within the 1 MiB limit) was registered, and the first record
    /// validated with it overflowed the broker's stack (the validator library recurses per $ref) and killed the process.
    /// </summary>
    [Fact]
    public void References_that_lead_deeper_than_validation_can_follow_are_invalid()
    {
        var chain = RefChain(20_000, "NEXT");
        Assert.True(chain.Length < SchemaLimits.MaxSchemaChars);
        var ex = ParseFails(chain);
        Assert.Contains("its references lead more than 1000 levels deep", ex.Message, StringComparison.Ordinal);

        // Levels inside each link count too: two pointer steps and the $ref per link here, so 400 links go 1,200 levels deep.
        Assert.Contains("levels deep", ParseFails(RefChain(400, "{'type':'object','properties':{'a':NEXT}}")).Message, StringComparison.Ordinal);

        // A shorter chain validates (a $ref to a $ref counts four levels), and so does a recursive schema, however deep its
        // data (bounded elsewhere) nests.
        Assert.Contains("levels deep", ParseFails(RefChain(260, "NEXT")).Message, StringComparison.Ordinal);
        var validator = JsonPayloadValidator.Create(Parse(RefChain(240, "NEXT").Replace('"', '\'')));
        Assert.Empty(validator.Validate(System.Text.Json.JsonDocument.Parse("\"abc\"").RootElement));
        Assert.NotEmpty(validator.Validate(System.Text.Json.JsonDocument.Parse("5").RootElement));
        Parse("{'$defs':{'node':{'type':'object','properties':{'children':{'type':'array','items':{'$ref':'#/$defs/node'}}}}},'$ref':'#/$defs/node'}");
    }

    [Fact]
    public void Unresolvable_ref_inside_a_reference_is_invalid()
    {
        var broken = Reference("broken.json", "{'$ref':'#/definitions/none'}");
        var ex = ParseFails(Json("{'$ref':'broken.json'}"), broken);
        Assert.Contains("broken.json", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"type\": \"string\",}", "line 1")]
    [InlineData("{\n  \"type\": \"string\"\n  \"x\": 1\n}", "line 3")]
    [InlineData("", "line 1")]
    [InlineData("{\"type\": \"string\"} trailing", "line 1")]
    [InlineData("{'type': 'string'}", "line 1")]
    public void Malformed_json_is_invalid_with_position(string text, string where)
    {
        var ex = ParseFails(text);
        Assert.Contains(where, ex.Message, StringComparison.Ordinal);
        Assert.Contains("position", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{'type':5}", "#/type")]
    [InlineData("{'type':'strin'}", "unknown type 'strin'")]
    [InlineData("{'type':['string','string']}", "twice")]
    [InlineData("{'type':[]}", "#/type")]
    [InlineData("{'required':'a'}", "'required' must be an array of strings")]
    [InlineData("{'required':[1]}", "'required' must contain only strings")]
    [InlineData("{'properties':[]}", "'properties' must be an object")]
    [InlineData("{'properties':{'a':5}}", "#/properties/a: a schema must be a JSON object or a boolean")]
    [InlineData("{'minimum':'1'}", "'minimum' must be a number")]
    [InlineData("{'exclusiveMinimum':'1'}", "'exclusiveMinimum' must be a number")]
    [InlineData("{'multipleOf':0}", "'multipleOf' must be greater than 0")]
    [InlineData("{'multipleOf':1e-30}", "'multipleOf' below 1e-28 is not supported")] // was "must be greater than 0"
    [InlineData("{'maxLength':-1}", "'maxLength' must be a non-negative integer")]
    [InlineData("{'minItems':1.5}", "'minItems' must be a non-negative integer")]
    [InlineData("{'pattern':'('}", "invalid regular expression")]
    [InlineData("{'pattern':5}", "'pattern' must be a string")]
    [InlineData("{'patternProperties':{'[':{}}}", "invalid regular expression")]
    [InlineData("{'enum':3}", "'enum' must be an array")]
    [InlineData("{'anyOf':[]}", "'anyOf' must be a non-empty array")]
    [InlineData("{'items':'x'}", "#/items: a schema must be")]
    [InlineData("{'additionalProperties':'no'}", "#/additionalProperties: a schema must be")]
    [InlineData("{'uniqueItems':'yes'}", "'uniqueItems' must be a boolean")]
    [InlineData("{'$ref':5}", "'$ref' must be a string")]
    [InlineData("{'definitions':{'a':{'type':'nope'}}}", "#/definitions/a/type")]
    [InlineData("{'type':'string','type':'number'}", "duplicate key 'type'")]
    [InlineData("[]", "a schema must be a JSON object or a boolean, found an array")]
    [InlineData("5", "found a number")]
    [InlineData("null", "found null")]
    public void Wrong_keyword_types_are_invalid(string schema, string expected)
    {
        var ex = ParseFails(Json(schema));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deep_array_nesting_is_invalid()
    {
        var text = new string('[', 10_000) + new string(']', 10_000);
        var ex = ParseFails(text);
        Assert.Contains("depth", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Deep_schema_nesting_is_invalid()
    {
        var text = new StringBuilder();
        for (var i = 0; i < 10_000; i++)
        {
            text.Append("{\"properties\":{\"a\":");
        }

        text.Append("true");
        for (var i = 0; i < 10_000; i++)
        {
            text.Append("}}");
        }

        ParseFails(text.ToString());
    }

    [Fact]
    public void Schema_at_the_depth_limit_parses()
    {
        // Each property level is two JSON levels; 30 levels stay inside MaxDepth = 64.
        var text = string.Concat(Enumerable.Repeat("{\"properties\":{\"a\":", 30)) + "{\"type\":\"string\"}" + new string('}', 60);
        var parsed = Format.Parse(text, [], normalize: false);
        Assert.Empty(Format.CheckCompatibility(parsed, parsed));
    }

    [Fact]
    public void Oversized_text_is_invalid()
    {
        var text = "{\"description\":\"" + new string('x', SchemaLimits.MaxSchemaChars) + "\"}";
        var ex = ParseFails(text);
        Assert.Contains("limit", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Canonical_ignores_key_order_and_whitespace()
    {
        var a = Format.Parse("{ \"type\": \"object\",\n  \"properties\": { \"b\": {\"type\": \"string\"}, \"a\": {\"minimum\": 1.50} } }", [], normalize: false);
        var b = Format.Parse("{\"properties\":{\"a\":{\"minimum\":1.50},\"b\":{\"type\":\"string\"}},\"type\":\"object\"}", [], normalize: false);
        var c = Format.Parse("{\"properties\":{\"a\":{\"minimum\":2},\"b\":{\"type\":\"string\"}},\"type\":\"object\"}", [], normalize: false);
        Assert.Equal(a.Canonical, b.Canonical);
        Assert.NotEqual(a.Canonical, c.Canonical);
        Assert.Equal("{\"properties\":{\"a\":{\"minimum\":1.50},\"b\":{\"type\":\"string\"}},\"type\":\"object\"}", a.Canonical);
        Assert.Equal(SchemaType.Json, a.Type);
    }

    [Fact]
    public void Normalize_stores_the_canonical_text()
    {
        const string text = "{ \"type\" : \"string\", \"$comment\": \"é\" }";
        var original = Format.Parse(text, [], normalize: false);
        var normalized = Format.Parse(text, [], normalize: true);
        Assert.Equal(text, original.Text);
        Assert.Equal(normalized.Canonical, normalized.Text);
        Assert.Equal("{\"$comment\":\"é\",\"type\":\"string\"}", normalized.Text);
    }

    [Fact]
    public void Parsed_schema_keeps_its_references()
    {
        var address = Reference("address.json", "{'type':'string'}");
        var parsed = Parse("{'$ref':'address.json'}", address);
        Assert.Same(address, Assert.Single(parsed.References));
    }

    [Fact]
    public void Mutually_recursive_schemas_terminate()
    {
        const string schema = "{'$ref':'#/$defs/a','$defs':{'a':{" + Obj + ",'properties':{'b':{'$ref':'#/$defs/b'}}},'b':{" + Obj + ",'properties':{'a':{'$ref':'#/$defs/a'},'n':{'type':'number'}}}}}";
        var old = Parse(schema);
        var @new = Parse(schema.Replace("'number'", "'integer'", StringComparison.Ordinal));
        Assert.Empty(Format.CheckCompatibility(old, old));
        Assert.Contains("#/properties/b/properties/n: type narrowed from number to integer", Format.CheckCompatibility(reader: @new, writer: old));
        Assert.Empty(Format.CheckCompatibility(reader: old, writer: @new));
    }

    [Theory]
    [InlineData(20, true)]
    [InlineData(330, false)]
    public void Long_ref_chains_end_without_exhausting_the_stack(int length, bool expectCompatible)
    {
        var definitions = string.Join(",", Enumerable.Range(0, length).Select(i => $"'d{i}':{{'type':'object','properties':{{'v':{{'type':'number'}},'next':{{'$ref':'#/$defs/d{i + 1}'}}}}}}"));
        var schema = Parse($"{{'$ref':'#/$defs/d0','$defs':{{{definitions},'d{length}':{{'type':'string'}}}}}}");
        IReadOnlyList<string>? messages = null;

        // A 1 MB stack, like a thread-pool thread; the comparer must stop on its own before the stack does.
        var thread = new Thread(() => messages = Format.CheckCompatibility(schema, schema), 1024 * 1024);
        thread.Start();
        thread.Join();
        Assert.NotNull(messages);
        Assert.Equal(expectCompatible, messages.Count == 0);
    }

    [Fact]
    public void Combinatorial_unions_stay_bounded()
    {
        // 8 unions of 4 branches each: 65,536 writer alternatives. The check must end quickly either way.
        var parts = Enumerable.Range(0, 8).Select(i => "{'oneOf':[{'required':['a" + i + "']},{'required':['b" + i + "']},{'required':['c" + i + "']},{'required':['d" + i + "']}]}");
        var schema = Parse("{'allOf':[" + string.Join(",", parts) + "]}");
        Assert.Empty(Format.CheckCompatibility(schema, schema));

        // A reader that forces the writer's alternatives to be multiplied out runs into the step budget (the bound
        // is a count of steps, so this is checked by its message, not by a wall-clock limit).
        var reader = Parse("{'required':['x']}");
        var messages = Format.CheckCompatibility(reader, schema);
        Assert.Contains(messages, m => m.Contains("too large or too recursive to compare within limits", StringComparison.Ordinal));
    }
}
