using System.Globalization;
using System.Text;

namespace SharedLog.Contracts.Tests.Cel;

/// <summary>A message of the protobuf text format: named fields, each a scalar or a nested message, in file order.</summary>
internal sealed class TextProtoMessage
{
    public List<KeyValuePair<string, object>> Fields { get; } = [];

    public IEnumerable<object> All(string name) =>
        Fields.Where(f => string.Equals(f.Key, name, StringComparison.Ordinal)).Select(f => f.Value);

    public TextProtoMessage? Message(string name) => All(name).OfType<TextProtoMessage>().FirstOrDefault();

    public IEnumerable<TextProtoMessage> Messages(string name) => All(name).OfType<TextProtoMessage>();

    public TextProtoScalar? Scalar(string name) => All(name).OfType<TextProtoScalar>().FirstOrDefault();

    public bool Has(string name) => Fields.Any(f => string.Equals(f.Key, name, StringComparison.Ordinal));
}

/// <summary>A scalar: either a bare token (number, enum, bool) or a quoted string as raw bytes.</summary>
internal sealed record TextProtoScalar(string? Token, byte[]? Bytes)
{
    public string Text => Bytes is not null ? Encoding.UTF8.GetString(Bytes) : Token!;
}

/// <summary>Just enough of a protobuf text-format reader for the CEL conformance files (SimpleTestFile).</summary>
internal sealed class TextProtoReader(string text)
{
    private int _position;

    public static TextProtoMessage Parse(string text)
    {
        var reader = new TextProtoReader(text);
        var message = reader.ReadFields(endChar: '\0');
        return message;
    }

    private InvalidDataException Error(string message)
    {
        var line = 1 + text.AsSpan(0, Math.Min(_position, text.Length)).Count('\n');
        return new InvalidDataException($"textproto line {line}: {message}");
    }

    private void Skip()
    {
        while (_position < text.Length)
        {
            var c = text[_position];
            if (char.IsWhiteSpace(c))
            {
                _position++;
            }
            else if (c == '#')
            {
                while (_position < text.Length && text[_position] != '\n')
                {
                    _position++;
                }
            }
            else
            {
                return;
            }
        }
    }

    private TextProtoMessage ReadFields(char endChar)
    {
        var message = new TextProtoMessage();
        while (true)
        {
            Skip();
            if (_position >= text.Length)
            {
                if (endChar != '\0')
                {
                    throw Error("unexpected end of file");
                }

                return message;
            }

            if (text[_position] == endChar)
            {
                _position++;
                return message;
            }

            var name = ReadName();
            Skip();
            var colon = false;
            if (text[_position] == ':')
            {
                colon = true;
                _position++;
                Skip();
            }

            if (text[_position] is '{' or '<')
            {
                var close = text[_position] == '{' ? '}' : '>';
                _position++;
                message.Fields.Add(new(name, ReadFields(close)));
            }
            else if (colon && text[_position] == '[')
            {
                _position++;
                while (true)
                {
                    Skip();
                    if (text[_position] == ']')
                    {
                        _position++;
                        break;
                    }

                    if (text[_position] is '{' or '<')
                    {
                        var close = text[_position] == '{' ? '}' : '>';
                        _position++;
                        message.Fields.Add(new(name, ReadFields(close)));
                    }
                    else
                    {
                        message.Fields.Add(new(name, ReadScalar()));
                    }

                    Skip();
                    if (text[_position] == ',')
                    {
                        _position++;
                    }
                }
            }
            else
            {
                message.Fields.Add(new(name, ReadScalar()));
            }

            Skip();
            if (_position < text.Length && text[_position] is ',' or ';')
            {
                _position++;
            }
        }
    }

    private string ReadName()
    {
        if (text[_position] == '[')
        {
            var end = text.IndexOf(']', _position);
            var name = text[_position..(end + 1)];
            _position = end + 1;
            return name;
        }

        var start = _position;
        while (_position < text.Length && (char.IsAsciiLetterOrDigit(text[_position]) || text[_position] == '_'))
        {
            _position++;
        }

        if (start == _position)
        {
            throw Error($"expected a field name at '{text[_position]}'");
        }

        return text[start.._position];
    }

    private TextProtoScalar ReadScalar()
    {
        if (text[_position] is '"' or '\'')
        {
            var bytes = new List<byte>();
            while (_position < text.Length && text[_position] is '"' or '\'')
            {
                ReadQuoted(bytes);
                Skip();
            }

            return new TextProtoScalar(null, [.. bytes]);
        }

        var start = _position;
        while (_position < text.Length && (char.IsAsciiLetterOrDigit(text[_position]) || text[_position] is '_' or '.' or '-' or '+'))
        {
            _position++;
        }

        if (start == _position)
        {
            throw Error($"expected a value at '{text[_position]}'");
        }

        return new TextProtoScalar(text[start.._position], null);
    }

    private void ReadQuoted(List<byte> bytes)
    {
        var quote = text[_position++];
        Span<byte> utf8 = stackalloc byte[4];
        while (true)
        {
            if (_position >= text.Length)
            {
                throw Error("unterminated string");
            }

            var c = text[_position];
            if (c == quote)
            {
                _position++;
                return;
            }

            if (c != '\\')
            {
                var rune = Rune.GetRuneAt(text, _position);
                var n = rune.EncodeToUtf8(utf8);
                for (var i = 0; i < n; i++)
                {
                    bytes.Add(utf8[i]);
                }

                _position += rune.Utf16SequenceLength;
                continue;
            }

            _position++;
            var e = text[_position++];
            switch (e)
            {
                case 'n': bytes.Add(10); break;
                case 't': bytes.Add(9); break;
                case 'r': bytes.Add(13); break;
                case 'a': bytes.Add(7); break;
                case 'b': bytes.Add(8); break;
                case 'f': bytes.Add(12); break;
                case 'v': bytes.Add(11); break;
                case '\\' or '\'' or '"' or '?': bytes.Add((byte)e); break;
                case >= '0' and <= '7':
                    {
                        var value = e - '0';
                        for (var i = 0; i < 2 && _position < text.Length && text[_position] is >= '0' and <= '7'; i++)
                        {
                            value = (value * 8) + (text[_position++] - '0');
                        }

                        bytes.Add((byte)value);
                        break;
                    }

                case 'x':
                    {
                        var value = 0;
                        for (var i = 0; i < 2 && _position < text.Length && char.IsAsciiHexDigit(text[_position]); i++)
                        {
                            value = (value * 16) + int.Parse(text.AsSpan(_position++, 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                        }

                        bytes.Add((byte)value);
                        break;
                    }

                case 'u' or 'U':
                    {
                        var digits = e == 'u' ? 4 : 8;
                        var codePoint = int.Parse(text.AsSpan(_position, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                        _position += digits;
                        bytes.AddRange(Encoding.UTF8.GetBytes(char.ConvertFromUtf32(codePoint)));
                        break;
                    }

                default:
                    throw Error($"unknown escape \\{e}");
            }
        }
    }
}
