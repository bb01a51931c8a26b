using System.Text;
using SharedLog.Contracts.Formats.Protobuf;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using Xunit;

namespace SharedLog.Contracts.Tests;

/// <summary>
/// The Protobuf privacy splice against the whole encoding it stands in for: random payloads of a message with every kind
/// of field (scalars, enum, bytes, optional, oneof, map, repeated, nested; numbers 1-13 and 200; fields sent twice), one to
/// three random hash, redact or drop rules on top-level fields, and the spliced record must read as the whole encoding
/// reads and hold no marker string the whole encoding dropped.
/// </summary>
public class ProtobufSpliceTests
{
    private static readonly ProtobufPayloadCodec Protobuf = new();

    private static ProtobufParsedSchema ParseProto(string text) => (ProtobufParsedSchema)new ProtobufSchemaFormat().Parse(text, [], normalize: false);

    private static void Tag(List<byte> bytes, int number, int wireType) => Varint(bytes, ((ulong)number << 3) | (uint)wireType);

    private static void Varint(List<byte> bytes, ulong value)
    {
        while (value >= 0x80)
        {
            bytes.Add((byte)(value | 0x80));
            value >>= 7;
        }

        bytes.Add((byte)value);
    }

    private static void Str(List<byte> bytes, int number, string text)
    {
        Tag(bytes, number, 2);
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        Varint(bytes, (ulong)utf8.Length);
        bytes.AddRange(utf8);
    }

    [Theory]
    [InlineData("proto3")]
    [InlineData("proto2")]
    public void Protobuf_rewrites_spliced_into_the_bytes_read_as_a_whole_encoding_does_and_keep_no_clear_value_it_drops(string syntax)
    {
        string opt = syntax == "proto2" ? "optional " : "";
        var proto = ParseProto($"syntax = \"{syntax}\";\npackage p;\nmessage M {{ {opt}string a = 1; {opt}int64 b = 2; optional string c = 3; {opt}Inner d = 4; repeated string e = 5; oneof o {{ string f = 6; int32 g = 7; }} map<string,string> h = 8; {opt}E i = 9; {opt}bytes j = 10; {opt}string k = 200; {opt}sint32 l = 11; {opt}fixed64 m = 12; {opt}bool n = 13; }}\nmessage Inner {{ {opt}string a = 1; }}\nenum E {{ E0 = 0; E1 = 1; E2 = 2; }}\n");
        var rnd = new Random(syntax.Length + 7);
        string[] top = ["a", "b", "c", "f", "i", "j", "k", "l", "m", "n"];
        int spliced = 0;
        for (int round = 0; round < 6000; round++)
        {
            var b = new List<byte> { 0 };
            int count = rnd.Next(0, 8);
            int marker = 0;
            for (int i = 0; i < count; i++)
            {
                int which = rnd.Next(0, 14);
                string s = "S" + (marker++) + "Z";
                switch (which)
                {
                    case 0: Str(b, 1, s); break;
                    case 1: Tag(b, 2, 0); Varint(b, (ulong)rnd.Next(0, 300)); break;
                    case 2: Str(b, 3, s); break;
                    case 3: { var inner = new List<byte>(); Str(inner, 1, s); Tag(b, 4, 2); Varint(b, (ulong)inner.Count); b.AddRange(inner); break; }
                    case 4: Str(b, 5, s); break;
                    case 5: Str(b, 6, s); break;
                    case 6: Tag(b, 7, 0); Varint(b, (ulong)rnd.Next(0, 5)); break;
                    case 7: { var e = new List<byte>(); Str(e, 1, "k" + rnd.Next(0, 2)); Str(e, 2, s); Tag(b, 8, 2); Varint(b, (ulong)e.Count); b.AddRange(e); break; }
                    case 8: Tag(b, 9, 0); Varint(b, (ulong)rnd.Next(0, 5)); break;
                    case 9: Str(b, 10, s); break;
                    case 10: Str(b, 200, s); break;
                    case 11: Tag(b, 11, 0); Varint(b, (ulong)rnd.Next(0, 300)); break;
                    case 12: Tag(b, 12, 1); b.AddRange(BitConverter.GetBytes((ulong)rnd.Next())); break;
                    case 13: Tag(b, 13, 0); Varint(b, (ulong)rnd.Next(0, 2)); break;
                }
            }

            byte[] payload = [.. b];
            DecodedPayload decoded;
            DecodedPayload reference;
            try
            {
                decoded = Protobuf.Decode(proto, payload.AsMemory());
                reference = Protobuf.Decode(proto, payload);
            }
            catch (PayloadDecodeException)
            {
                continue;
            }

            if (ProtobufPayloadCodec.HasUnknownFields(decoded.Value, heldOutToo: false))
            {
                continue;
            }

            var rewriter = new PrivacyRewriter("k"u8.ToArray());
            var paths = new List<string[]>();
            int rules = rnd.Next(1, 4);
            for (int r = 0; r < rules; r++)
            {
                string path = top[rnd.Next(top.Length)];
                var action = (PrivacyAction)rnd.Next(0, 3);
                bool isString = path is "a" or "c" or "f" or "j" or "k";
                if (action == PrivacyAction.Hash && !isString)
                {
                    action = PrivacyAction.Redact;
                }

                bool c1 = rewriter.Apply(decoded.Value, path, action, out string? p1);
                bool c2 = rewriter.Apply(reference.Value, path, action, out string? p2);
                Assert.Equal(c1, c2);
                if (c1)
                {
                    paths.Add([path]);
                }
            }

            if (paths.Count == 0 && !decoded.Superseded)
            {
                continue;
            }

            byte[] whole = Protobuf.Encode(proto, reference, [0xAB]);
            var output = new System.Buffers.ArrayBufferWriter<byte>();
            ((IPayloadCodec)Protobuf).EncodeRewrite(proto, decoded, payload, paths, [0xAB], output);
            byte[] got = output.WrittenSpan.ToArray();
            if (!got.AsSpan().SequenceEqual(whole))
            {
                spliced++;
            }

            var r1 = Protobuf.Decode(proto, got.AsSpan(1)).Value;
            var r2 = Protobuf.Decode(proto, whole.AsSpan(1)).Value;
            string d1 = Dump(r1) + Held(r1);
            string d2 = Dump(r2) + Held(r2);
            Assert.True(d1 == d2, $"round {round}: payload {Convert.ToHexString(payload)} paths {string.Join(",", paths.Select(x => x[0]))}\n splice {Convert.ToHexString(got)} -> {d1}\n whole  {Convert.ToHexString(whole)} -> {d2}");
            // No marker string absent from the whole encoding may be in the splice.
            for (int m = 0; m < marker; m++)
            {
                byte[] mk = Encoding.UTF8.GetBytes("S" + m + "Z");
                if (whole.AsSpan().IndexOf(mk) < 0)
                {
                    Assert.True(got.AsSpan().IndexOf(mk) < 0, $"round {round}: clear S{m}Z in splice {Convert.ToHexString(got)} of {Convert.ToHexString(payload)} paths {string.Join(",", paths.Select(x => x[0]))}");
                }
            }
        }

        Assert.True(spliced > 20, $"only {spliced} rewrites were spliced");
    }

    private static string Held(object? value) => ProtobufPayloadCodec.HasUnknownFields(value) ? "+held" : "";

    private static string Dump(object? value) => value switch
    {
        null => "null",
        Dictionary<string, object?> members => "{" + string.Join(",", members.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + ":" + Dump(p.Value))) + "}",
        List<object?> items => "[" + string.Join(",", items.Select(Dump)) + "]",
        byte[] bytes => "0x" + Convert.ToHexString(bytes),
        _ => value.ToString()!,
    };
}
