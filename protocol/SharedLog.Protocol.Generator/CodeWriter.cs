using System.Text;

namespace SharedLog.Protocol.Generator;

/// <summary>An indenting text builder; blocks open with a line ending in '{'.</summary>
internal sealed class CodeWriter
{
    private readonly StringBuilder _text = new();
    private int _indent;

    public void Line(string line = "")
    {
        if (line.Length == 0)
        {
            _text.Append('\n');
            return;
        }

        if (line.StartsWith('}'))
        {
            _indent--;
        }

        _text.Append(' ', _indent * 4).Append(line).Append('\n');
        if (line.EndsWith('{'))
        {
            _indent++;
        }
    }

    public override string ToString() => _text.ToString();
}
