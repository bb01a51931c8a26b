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

/// <summary>One schema document: the root schema or one referenced schema.</summary>
internal sealed class JsonSchemaDocument(JsonSchemaSet set, string key, JsonElement root, Uri? baseUri)
{
    public JsonSchemaSet Set { get; } = set;

    /// <summary>Identity inside its set: empty for the root document, else the reference name.</summary>
    public string Key { get; } = key;

    public JsonElement Root { get; } = root;

    /// <summary>Absolute base URI from the document's <c>$id</c>, used to resolve relative <c>$ref</c>s.</summary>
    public Uri? BaseUri { get; } = baseUri;

    /// <summary>Plain-name fragments (<c>$anchor</c>, or draft 6/7 <c>$id: "#name"</c>) to JSON pointers.</summary>
    public Dictionary<string, string> Anchors { get; } = new(StringComparer.Ordinal);

    /// <summary>Every <c>$ref</c> in the document: the pointer of the schema holding it and the reference text.</summary>
    public List<(string Pointer, string Reference)> Refs { get; } = [];

    public bool IsRoot => Key.Length == 0;

    public SchemaNode RootNode => new(this, string.Empty, Root, IgnoredKeywords.None);

    /// <summary>A JSON-pointer-like label for messages, with the document name when it is a referenced one.</summary>
    public string Label(string pointer) => (IsRoot ? string.Empty : Key) + "#" + pointer;
}

/// <summary>A schema together with the documents its <c>$ref</c>s can reach.</summary>
internal sealed class JsonSchemaSet
{
    private readonly Dictionary<string, JsonSchemaDocument> _byName = new(StringComparer.Ordinal);
    private readonly List<JsonSchemaDocument> _documents = [];

    public IReadOnlyList<JsonSchemaDocument> Documents => _documents;

    public JsonSchemaDocument Root => _documents[0];

    public int Count => _documents.Count;

    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Adds a document, reachable by its name, its <c>$id</c>, and its name resolved against the root's base URI.</summary>
    public JsonSchemaDocument Add(string key, JsonElement root)
    {
        var id = ReadId(root);
        Uri? baseUri = id is not null && Uri.TryCreate(id, UriKind.Absolute, out var absolute) ? absolute : null;
        var document = new JsonSchemaDocument(this, key, root, baseUri);
        _documents.Add(document);
        if (key.Length > 0)
        {
            _byName.TryAdd(key, document);
            if (_documents[0].BaseUri is { } rootBase && Uri.TryCreate(rootBase, key, out var resolved))
            {
                _byName.TryAdd(resolved.ToString(), document);
            }
        }

        if (baseUri is not null)
        {
            _byName.TryAdd(baseUri.ToString(), document);
        }
        else if (id is not null && !id.StartsWith('#'))
        {
            _byName.TryAdd(id, document);
        }

        return document;
    }

    /// <summary>Resolves a <c>$ref</c> written in <paramref name="from"/>; null when it points nowhere known.</summary>
    public SchemaNode? Resolve(JsonSchemaDocument from, string reference)
    {
        var hash = reference.IndexOf('#', StringComparison.Ordinal);
        var documentPart = hash < 0 ? reference : reference[..hash];
        var fragment = hash < 0 ? string.Empty : reference[(hash + 1)..];

        var target = documentPart.Length == 0 ? from : FindDocument(from, documentPart);
        if (target is null)
        {
            return null;
        }

        string decoded;
        try
        {
            decoded = Uri.UnescapeDataString(fragment);
        }
        catch (UriFormatException)
        {
            return null;
        }

        if (decoded.Length > 0 && decoded[0] != '/')
        {
            if (!target.Anchors.TryGetValue(decoded, out var anchorPointer))
            {
                return null;
            }

            decoded = anchorPointer;
        }

        return JsonPointer.Navigate(target, decoded);
    }

    private JsonSchemaDocument? FindDocument(JsonSchemaDocument from, string documentPart)
    {
        if (_byName.TryGetValue(documentPart, out var document))
        {
            return document;
        }

        var baseUri = from.BaseUri ?? _documents[0].BaseUri;
        if (baseUri is not null && Uri.TryCreate(baseUri, documentPart, out var resolved))
        {
            if (_byName.TryGetValue(resolved.ToString(), out document))
            {
                return document;
            }

            if (from.BaseUri is not null && Uri.Compare(from.BaseUri, resolved, UriComponents.AbsoluteUri & ~UriComponents.Fragment, UriFormat.UriEscaped, StringComparison.Ordinal) == 0)
            {
                return from;
            }
        }

        return null;
    }

    private static string? ReadId(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        if (root.TryGetProperty("$id", out var id) && id.ValueKind == JsonValueKind.String)
        {
            return id.GetString();
        }

        return root.TryGetProperty("id", out id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
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
            if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(token, out var next))
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
