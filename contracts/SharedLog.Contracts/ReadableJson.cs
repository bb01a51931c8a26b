using System.Text.Encodings.Web;
using System.Text.Json;

namespace SharedLog.Contracts;

/// <summary>
/// How JSON meant for people and tools is written (audit records, the HTTP APIs' answers and errors): quotes, '+', '&lt;',
/// '>' and non-ASCII text as themselves rather than \u escapes (<c>"\u002B audit"</c>, <c>\u0027EUR\u0027</c> were hard
/// to read with kcat or grep). Still escaped: what JSON requires (quotation marks, backslashes, control characters).
/// None of it is embedded in HTML, where the default encoder's escapes would matter, and the HTTP answers carry
/// <c>X-Content-Type-Options: nosniff</c> (BrowserRequestGuard), so a browser never reads one as a page.
/// </summary>
public static class ReadableJson
{
    public static JavaScriptEncoder Encoder => JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    /// <summary>For <c>JsonNode.ToJsonString</c> and plain serialization.</summary>
    public static readonly JsonSerializerOptions Options = new() { Encoder = Encoder };

    /// <summary>Web defaults (camelCase names), written readably.</summary>
    public static JsonSerializerOptions Web() => new(JsonSerializerDefaults.Web) { Encoder = Encoder };
}
