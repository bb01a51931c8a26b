using System.Text;
using System.Text.Json;

namespace SharedLog.Contracts.Formats.Json;

/// <summary>Keywords of a schema object that a view has already taken apart and must not apply again.</summary>
[Flags]
internal enum IgnoredKeywords
{
    None = 0,
    Ref = 1,
    AllOf = 2,
    AnyOf = 4,
    OneOf = 8,
}

/// <summary>Which reading of <c>$ref</c> and <c>id</c> a document's <c>$schema</c> asks for.</summary>
internal enum JsonSchemaDraft
{
    Unknown,
    Draft4OrOlder,
    Draft6Or7,
    Draft2019OrNewer,
}

/// <summary>One schema document: the root schema or one referenced schema.</summary>
internal sealed class JsonSchemaDocument(JsonSchemaSet set, string key, JsonElement root, Uri retrievalUri, JsonSchemaDraft draft)
{
    public JsonSchemaSet Set { get; } = set;

    /// <summary>Identity inside its set: empty for the root document, else the reference name.</summary>
    public string Key { get; } = key;

    public JsonElement Root { get; } = root;

    /// <summary>The URI the document is known by before its own <c>$id</c> applies (synthetic, from the reference name).</summary>
    public Uri RetrievalUri { get; } = retrievalUri;

    public JsonSchemaDraft Draft { get; } = draft;

    /// <summary>Up to draft 7 a <c>$ref</c> replaces its sibling keywords; from 2019-09 they apply together.</summary>
    public bool RefOverridesSiblings => Draft is JsonSchemaDraft.Draft4OrOlder or JsonSchemaDraft.Draft6Or7;

    /// <summary>Draft 4 and older name the identifier <c>id</c>.</summary>
    public bool UsesLegacyId => Draft is JsonSchemaDraft.Draft4OrOlder or JsonSchemaDraft.Unknown;

    /// <summary>Every <c>$ref</c> in the document: the pointer of the schema holding it and the reference text.</summary>
    public List<(string Pointer, string Reference)> Refs { get; } = [];

    /// <summary>The base URI in scope at each schema holding a <c>$ref</c>, by pointer.</summary>
    public Dictionary<string, Uri> RefBases { get; } = new(StringComparer.Ordinal);

    public bool IsRoot => Key.Length == 0;

    public SchemaNode RootNode => new(this, string.Empty, Root, IgnoredKeywords.None);

    /// <summary>A JSON-pointer-like label for messages, with the document name when it is a referenced one.</summary>
    public string Label(string pointer) => (IsRoot ? string.Empty : Key) + "#" + pointer;

    /// <summary>Members of objects looked up by name (pointer steps, the comparer's <c>properties</c>), by the object's pointer: JsonElement finds a member by walking its object.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Dictionary<string, JsonElement>> _members = new(StringComparer.Ordinal);

    /// <summary>
    /// A member of the object at <paramref name="objectPointer"/>, through a dictionary built once per object: a chain of
    /// <c>$ref</c>s into a <c>$defs</c> of thousands of entries otherwise walks it once per step.
    /// </summary>
    public bool TryGetMember(string objectPointer, JsonElement element, string name, out JsonElement member)
    {
        Dictionary<string, JsonElement> members = _members.GetOrAdd(objectPointer, static (_, objectElement) =>
        {
            var byName = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (JsonProperty property in objectElement.EnumerateObject())
            {
                byName[property.Name] = property.Value; // the last of a repeated name, as TryGetProperty finds it
            }

            return byName;
        }, element);
        return members.TryGetValue(name, out member);
    }
}

/// <summary>
/// A schema together with the documents its <c>$ref</c>s can reach. Resources are registered by
/// absolute URI (from <c>$id</c>, or a synthetic URI built from the reference name) so that relative
/// references, embedded resources and anchors resolve as the specification describes.
/// </summary>
internal sealed class JsonSchemaSet
{
    private static readonly Uri SyntheticRoot = new("sharedlog-schema:/");

    private readonly List<JsonSchemaDocument> _documents = [];
    private readonly Dictionary<string, JsonSchemaDocument> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (JsonSchemaDocument Document, string Pointer)> _resources = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (JsonSchemaDocument Document, string Pointer)> _anchors = new(StringComparer.Ordinal);

    public IReadOnlyList<JsonSchemaDocument> Documents => _documents;

    /// <summary>Which schema each reference name stands for, and the references that named another one (see <see cref="ShadowedReference"/>).</summary>
    public Registry.ShadowedReferences Bindings { get; } = new();

    /// <summary>
    /// The distinct regular expressions of all documents (<c>pattern</c> values and <c>patternProperties</c> names), as
    /// <see cref="JsonSchemaKeywords.Validate"/> found them: each costs a validator 0.1-0.5 MB and 1-12 ms to build.
    /// </summary>
    public HashSet<string> Patterns { get; } = new(StringComparer.Ordinal);

    public JsonSchemaDocument Root => _documents[0];

    public int Count => _documents.Count;

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Adds a document, reachable by its name, its root <c>$id</c>, and its name resolved against the root's base URI.</summary>
    public JsonSchemaDocument Add(string key, JsonElement root)
    {
        var draft = DraftOf(root);
        if (draft == JsonSchemaDraft.Unknown && _documents.Count > 0)
        {
            draft = _documents[0].Draft;
        }

        var retrievalUri = key.Length > 0 && Uri.TryCreate(SyntheticRoot, key, out var named) ? named : SyntheticRoot;
        var document = new JsonSchemaDocument(this, key, root, retrievalUri, draft);
        _documents.Add(document);
        _byName.TryAdd(key, document);
        RegisterResource(retrievalUri, document, string.Empty);
        if (key.Length > 0 && _documents[0].Root.ValueKind == JsonValueKind.Object && BaseOf(_documents[0]) is { } rootBase && Uri.TryCreate(rootBase, key, out var resolved))
        {
            RegisterResource(resolved, document, string.Empty);
        }

        return document;
    }

    public void RegisterResource(Uri uri, JsonSchemaDocument document, string pointer)
    {
        string resource = Split(uri).Resource;
        if (!_resources.TryAdd(resource, (document, pointer)) && _resources[resource].Document is var owner && owner != document)
        {
            // Two documents claim one URI (two names that resolve alike, "address.json" and "./address.json", or one $id): a
            // $ref to it reads the first, which the tag check must know as it knows a name bound twice.
            Bindings.Hide(owner.Key, document.Key);
        }
    }

    public void RegisterAnchor(Uri resource, string name, JsonSchemaDocument document, string pointer) =>
        _anchors.TryAdd(Split(resource).Resource + "#" + name, (document, pointer));

    /// <summary>Resolves the <c>$ref</c> of the schema at <paramref name="pointer"/> in <paramref name="from"/>; null when it points nowhere known.</summary>
    public SchemaNode? Resolve(JsonSchemaDocument from, string pointer, string reference)
    {
        var baseUri = from.RefBases.GetValueOrDefault(pointer) ?? from.RetrievalUri;
        if (Uri.TryCreate(baseUri, reference, out var absolute))
        {
            var (resource, fragment) = Split(absolute);
            if (_resources.TryGetValue(resource, out var target))
            {
                return Locate(resource, target.Document, target.Pointer, fragment);
            }
        }

        // Reference names that are not URI-friendly still match as written.
        var hash = reference.IndexOf('#', StringComparison.Ordinal);
        var name = hash < 0 ? reference : reference[..hash];
        if (name.Length > 0 && _byName.TryGetValue(name, out var document))
        {
            return Locate(Split(document.RetrievalUri).Resource, document, string.Empty, hash < 0 ? string.Empty : reference[(hash + 1)..]);
        }

        return null;
    }

    private SchemaNode? Locate(string resource, JsonSchemaDocument document, string resourcePointer, string escapedFragment)
    {
        string fragment;
        try
        {
            fragment = Uri.UnescapeDataString(escapedFragment);
        }
        catch (UriFormatException)
        {
            return null;
        }

        if (fragment.Length == 0 || fragment[0] == '/')
        {
            return JsonPointer.Navigate(document, resourcePointer + fragment);
        }

        return _anchors.TryGetValue(resource + "#" + fragment, out var anchor) ? JsonPointer.Navigate(anchor.Document, anchor.Pointer) : null;
    }

    /// <summary>The absolute base URI a document's root <c>$id</c> sets, if any.</summary>
    public static Uri? BaseOf(JsonSchemaDocument document)
    {
        var id = IdOf(document, document.Root);
        return id is not null && Uri.TryCreate(document.RetrievalUri, id, out var resolved) && resolved.IsAbsoluteUri ? resolved : null;
    }

    /// <summary>The identifier keyword of a schema object as its draft reads it, or null.</summary>
    public static string? IdOf(JsonSchemaDocument document, JsonElement schema)
    {
        if (schema.ValueKind != JsonValueKind.Object || (document.RefOverridesSiblings && schema.TryGetProperty("$ref", out _)))
        {
            return null;
        }

        if (schema.TryGetProperty("$id", out var id) && id.ValueKind == JsonValueKind.String)
        {
            return id.GetString();
        }

        return document.UsesLegacyId && schema.TryGetProperty("id", out id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
    }

    public static (string Resource, string Fragment) Split(Uri uri)
    {
        var text = uri.IsAbsoluteUri ? uri.AbsoluteUri : uri.OriginalString;
        var hash = text.IndexOf('#', StringComparison.Ordinal);
        return hash < 0 ? (text, string.Empty) : (text[..hash], text[(hash + 1)..]);
    }

    private static JsonSchemaDraft DraftOf(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("$schema", out var schema) || schema.ValueKind != JsonValueKind.String)
        {
            return JsonSchemaDraft.Unknown;
        }

        var text = schema.GetString()!;
        return text.Contains("draft-03", StringComparison.Ordinal) || text.Contains("draft-04", StringComparison.Ordinal) ? JsonSchemaDraft.Draft4OrOlder
            : text.Contains("draft-06", StringComparison.Ordinal) || text.Contains("draft-07", StringComparison.Ordinal) ? JsonSchemaDraft.Draft6Or7
            : text.Contains("2019-09", StringComparison.Ordinal) || text.Contains("2020-12", StringComparison.Ordinal) ? JsonSchemaDraft.Draft2019OrNewer
            : JsonSchemaDraft.Unknown;
    }
}

/// <summary>A schema at a place in a document, with the keywords this view ignores.</summary>
internal readonly record struct SchemaNode(JsonSchemaDocument Document, string Pointer, JsonElement Element, IgnoredKeywords Ignored)
{
    /// <summary>Identity of the view, for cycle detection and de-duplication.</summary>
    public string Location => Document.Key + "#" + Pointer + "|" + ((int)Ignored).ToString(System.Globalization.CultureInfo.InvariantCulture);

    public bool IsTrue => Element.ValueKind == JsonValueKind.True || (Element.ValueKind == JsonValueKind.Object && !HasAnyKeyword());

    public bool IsFalse => Element.ValueKind == JsonValueKind.False;

    public bool IsObject => Element.ValueKind == JsonValueKind.Object;

    public SchemaNode Without(IgnoredKeywords keywords) => this with { Ignored = Ignored | keywords };

    public bool TryGet(string keyword, out JsonElement value)
    {
        value = default;
        if (Element.ValueKind != JsonValueKind.Object || IsIgnored(keyword))
        {
            return false;
        }

        return Element.TryGetProperty(keyword, out value);
    }

    public SchemaNode Child(JsonElement element, params string[] segments)
    {
        var pointer = new StringBuilder(Pointer);
        foreach (var segment in segments)
        {
            pointer.Append('/').Append(JsonPointer.Escape(segment));
        }

        return new SchemaNode(Document, pointer.ToString(), element, IgnoredKeywords.None);
    }

    private bool IsIgnored(string keyword) => keyword switch
    {
        "$ref" => (Ignored & IgnoredKeywords.Ref) != 0,
        "allOf" => (Ignored & IgnoredKeywords.AllOf) != 0,
        "anyOf" => (Ignored & IgnoredKeywords.AnyOf) != 0,
        "oneOf" => (Ignored & IgnoredKeywords.OneOf) != 0,
        _ => false,
    };

    private bool HasAnyKeyword()
    {
        foreach (var property in Element.EnumerateObject())
        {
            if (!IsIgnored(property.Name) && JsonSchemaKeywords.IsConstraint(property.Name))
            {
                return true;
            }
        }

        return false;
    }
}

internal static class JsonPointer
{
    public static string Escape(string segment) => segment.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private static string Unescape(string segment) => segment.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);

    /// <summary>Follows a JSON pointer ("" or "/a/b") inside a document; null when it leads nowhere.</summary>
    public static SchemaNode? Navigate(JsonSchemaDocument document, string pointer)
    {
        var current = document.Root;
        if (pointer.Length == 0)
        {
            return document.RootNode;
        }

        var canonical = new StringBuilder();
        foreach (var raw in pointer[1..].Split('/'))
        {
            var token = Unescape(raw);
            if (current.ValueKind == JsonValueKind.Object && document.TryGetMember(canonical.ToString(), current, token, out var next))
            {
                current = next;
            }
            else if (current.ValueKind == JsonValueKind.Array && int.TryParse(token, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index) && index < current.GetArrayLength())
            {
                current = current[index];
            }
            else
            {
                return null;
            }

            canonical.Append('/').Append(Escape(token));
        }

        return new SchemaNode(document, canonical.ToString(), current, IgnoredKeywords.None);
    }
}
