using System.Globalization;
using System.Text;

namespace SharedLog.Contracts.Rules;

internal enum TokenKind
{
    End,
    Ident,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    LeftBrace,
    RightBrace,
    Dot,
    Comma,
    Colon,
    Question,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Not,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    EqualEqual,
    NotEqual,
    AndAnd,
    OrOr,
    In,
    QuotedIdent,
}

internal readonly record struct Token(TokenKind Kind, int Offset, string? Text = null, ulong Integer = 0, double Number = 0, byte[]? Bytes = null);

/// <summary>
/// Recursive-descent parser for the CEL grammar. Bounded: expression length, syntactic nesting and
/// tree height are limited so that neither parsing nor evaluation can exhaust the stack.
/// </summary>
internal sealed class RuleParser
{
    public const int MaxExpressionLength = 16 * 1024;
    public const int MaxNesting = 100;
    public const int MaxTreeHeight = 1000;

    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "as", "break", "const", "continue", "else", "for", "function", "if", "import", "let", "loop",
        "package", "namespace", "return", "var", "void", "while",
    };

    private readonly string _text;
    private readonly List<Token> _tokens;
    private int _position;
    private int _nesting;

    private RuleParser(string text)
    {
        _text = text;
        _tokens = new RuleLexer(text).Tokenize();
    }

    public static Expr Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > MaxExpressionLength)
        {
            throw new RuleSyntaxException($"expression is longer than {MaxExpressionLength} characters", 1, 1);
        }

        var parser = new RuleParser(text);
        var expr = parser.ParseExpr();
        if (parser.Current.Kind != TokenKind.End)
        {
            throw parser.Error($"unexpected {Describe(parser.Current)}", parser.Current.Offset);
        }

        return expr;
    }

    private Token Current => _tokens[_position];

    private Token Peek(int ahead) => _tokens[Math.Min(_position + ahead, _tokens.Count - 1)];

    private Token Next()
    {
        var token = Current;
        if (_position < _tokens.Count - 1)
        {
            _position++; // never past the end token
        }

        return token;
    }

    private bool Accept(TokenKind kind)
    {
        if (Current.Kind == kind)
        {
            _position++;
            return true;
        }

        return false;
    }

    private Token Expect(TokenKind kind, string what)
    {
        if (Current.Kind != kind)
        {
            throw Error($"expected {what} but found {Describe(Current)}", Current.Offset);
        }

        return Next();
    }

    private static string Describe(Token token) => token.Kind switch
    {
        TokenKind.End => "end of expression",
        TokenKind.Ident => $"'{token.Text}'",
        TokenKind.Int or TokenKind.Uint or TokenKind.Double => "a number",
        TokenKind.String => "a string",
        TokenKind.Bytes => "a bytes literal",
        _ => $"'{token.Text}'",
    };

    public RuleSyntaxException Error(string message, int offset) => RuleLexer.Error(_text, message, offset);

    private T Check<T>(T expr)
        where T : Expr
    {
        if (expr.Height > MaxTreeHeight)
        {
            throw Error($"expression is nested deeper than {MaxTreeHeight} levels", expr.Offset);
        }

        return expr;
    }

    private Expr ParseExpr()
    {
        if (++_nesting > MaxNesting)
        {
            throw Error($"expression is nested deeper than {MaxNesting} levels", Current.Offset);
        }

        var condition = ParseOr();
        if (Current.Kind == TokenKind.Question)
        {
            var offset = Next().Offset;
            var whenTrue = ParseOr();
            Expect(TokenKind.Colon, "':'");
            var whenFalse = ParseExpr();
            condition = Check(new CallExpr(offset, null, "_?_:_", [condition, whenTrue, whenFalse]));
        }

        _nesting--;
        return condition;
    }

    private Expr ParseOr()
    {
        var operands = new List<Expr> { ParseAnd() };
        var offset = Current.Offset;
        while (Accept(TokenKind.OrOr))
        {
            operands.Add(ParseAnd());
        }

        return Balance(operands, "_||_", offset);
    }

    private Expr ParseAnd()
    {
        var operands = new List<Expr> { ParseRelation() };
        var offset = Current.Offset;
        while (Accept(TokenKind.AndAnd))
        {
            operands.Add(ParseRelation());
        }

        return Balance(operands, "_&&_", offset);
    }

    // && and || are associative, so long chains become balanced trees of logarithmic height.
    private Expr Balance(List<Expr> operands, string function, int offset)
    {
        return Build(0, operands.Count);

        Expr Build(int start, int end)
        {
            if (end - start == 1)
            {
                return operands[start];
            }

            var middle = start + ((end - start) / 2);
            return Check(new CallExpr(offset, null, function, [Build(start, middle), Build(middle, end)]));
        }
    }

    private Expr ParseRelation()
    {
        var left = ParseAddition();
        while (true)
        {
            var function = Current.Kind switch
            {
                TokenKind.Less => "_<_",
                TokenKind.LessEqual => "_<=_",
                TokenKind.Greater => "_>_",
                TokenKind.GreaterEqual => "_>=_",
                TokenKind.EqualEqual => "_==_",
                TokenKind.NotEqual => "_!=_",
                TokenKind.In => "@in",
                _ => null,
            };
            if (function is null)
            {
                return left;
            }

            var offset = Next().Offset;
            left = Check(new CallExpr(offset, null, function, [left, ParseAddition()]));
        }
    }

    private Expr ParseAddition()
    {
        var left = ParseMultiplication();
        while (Current.Kind is TokenKind.Plus or TokenKind.Minus)
        {
            var token = Next();
            left = Check(new CallExpr(token.Offset, null, token.Kind == TokenKind.Plus ? "_+_" : "_-_", [left, ParseMultiplication()]));
        }

        return left;
    }

    private Expr ParseMultiplication()
    {
        var left = ParseUnary();
        while (Current.Kind is TokenKind.Star or TokenKind.Slash or TokenKind.Percent)
        {
            var token = Next();
            var function = token.Kind switch
            {
                TokenKind.Star => "_*_",
                TokenKind.Slash => "_/_",
                _ => "_%_",
            };
            left = Check(new CallExpr(token.Offset, null, function, [left, ParseUnary()]));
        }

        return left;
    }

    private Expr ParseUnary()
    {
        var offset = Current.Offset;
        if (Current.Kind == TokenKind.Not)
        {
            var count = 0;
            while (Accept(TokenKind.Not))
            {
                count++;
            }

            var operand = ParseMember();
            for (var i = 0; i < count; i++)
            {
                operand = Check(new CallExpr(offset, null, "!_", [operand]));
            }

            return operand;
        }

        if (Current.Kind == TokenKind.Minus)
        {
            var count = 0;
            while (Accept(TokenKind.Minus))
            {
                count++;
            }

            Expr operand;
            // a negative literal is a literal, so -9223372036854775808 is in range
            if (Current.Kind is TokenKind.Int or TokenKind.Double && Peek(1).Kind is not (TokenKind.Dot or TokenKind.LeftBracket))
            {
                var literal = Next();
                operand = literal.Kind == TokenKind.Int
                    ? new ConstantExpr(literal.Offset, NegativeInt(literal))
                    : new ConstantExpr(literal.Offset, RuleValue.Double(-literal.Number));
                count--;
            }
            else
            {
                operand = ParseMember();
            }

            for (var i = 0; i < count; i++)
            {
                operand = Check(new CallExpr(offset, null, "-_", [operand]));
            }

            return operand;
        }

        return ParseMember();
    }

    private RuleValue NegativeInt(Token literal)
    {
        if (literal.Integer > 9223372036854775808UL)
        {
            throw Error("integer literal is out of range", literal.Offset);
        }

        return RuleValue.Int(unchecked(-(long)literal.Integer));
    }

    private Expr ParseMember()
    {
        var expr = ParsePrimary();
        while (true)
        {
            if (Current.Kind == TokenKind.Dot)
            {
                var offset = Next().Offset;
                var optional = Accept(TokenKind.Question);
                // reserved words are fine as field and method names
                if (Current.Kind == TokenKind.QuotedIdent)
                {
                    var quoted = Next();
                    expr = Check(new SelectExpr(offset, expr, quoted.Text!, optional));
                    continue;
                }

                var name = Expect(TokenKind.Ident, "a field name");
                if (optional)
                {
                    expr = Check(new SelectExpr(offset, expr, name.Text!, optional: true));
                    continue;
                }

                if (Current.Kind == TokenKind.LeftParen)
                {
                    Next();
                    expr = Check(new CallExpr(name.Offset, expr, name.Text!, ParseArguments(TokenKind.RightParen, "')'")));
                }
                else
                {
                    expr = Check(new SelectExpr(offset, expr, name.Text!));
                    if (Current.Kind == TokenKind.LeftBrace && IsQualifiedName(expr))
                    {
                        throw Error("message construction (Type{field: value}) is not supported", Current.Offset);
                    }
                }
            }
            else if (Current.Kind == TokenKind.LeftBracket)
            {
                var offset = Next().Offset;
                var optional = Accept(TokenKind.Question);
                var index = ParseExpr();
                Expect(TokenKind.RightBracket, "']'");
                expr = Check(new CallExpr(offset, null, optional ? "_[?_]" : "_[_]", [expr, index]));
            }
            else
            {
                return expr;
            }
        }
    }

    private static bool IsQualifiedName(Expr expr) => expr switch
    {
        IdentExpr => true,
        SelectExpr select => IsQualifiedName(select.Operand),
        _ => false,
    };

    private void CheckIdentifier(Token token)
    {
        if (Reserved.Contains(token.Text!))
        {
            throw Error($"'{token.Text}' is a reserved word", token.Offset);
        }
    }

    private Expr[] ParseArguments(TokenKind close, string closeText)
    {
        if (Accept(close))
        {
            return [];
        }

        var args = new List<Expr>();
        do
        {
            if (close == TokenKind.RightBracket && Current.Kind == close)
            {
                break; // trailing comma in a list
            }

            // [?x] is an optional element: added only when x has a value
            var optionalOffset = Current.Offset;
            if (close == TokenKind.RightBracket && Accept(TokenKind.Question))
            {
                args.Add(Check(new CallExpr(optionalOffset, null, RuleCompiler.OptionalEntry, [ParseExpr()])));
                continue;
            }

            args.Add(ParseExpr());
        }
        while (Accept(TokenKind.Comma));

        Expect(close, closeText);
        return [.. args];
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Int:
                Next();
                if (token.Integer > long.MaxValue)
                {
                    throw Error("integer literal is out of range", token.Offset);
                }

                return new ConstantExpr(token.Offset, RuleValue.Int((long)token.Integer));
            case TokenKind.Uint:
                Next();
                return new ConstantExpr(token.Offset, RuleValue.Uint(token.Integer));
            case TokenKind.Double:
                Next();
                return new ConstantExpr(token.Offset, RuleValue.Double(token.Number));
            case TokenKind.String:
                Next();
                return new ConstantExpr(token.Offset, RuleValue.String(token.Text!));
            case TokenKind.Bytes:
                Next();
                return new ConstantExpr(token.Offset, RuleValue.Bytes(token.Bytes!));
            case TokenKind.LeftParen:
                {
                    Next();
                    var inner = ParseExpr();
                    Expect(TokenKind.RightParen, "')'");
                    return inner;
                }

            case TokenKind.LeftBracket:
                Next();
                return Check(new ListExpr(token.Offset, ParseArguments(TokenKind.RightBracket, "']'")));
            case TokenKind.LeftBrace:
                Next();
                return ParseMap(token.Offset);
            case TokenKind.Dot:
            case TokenKind.Ident:
                {
                    Accept(TokenKind.Dot); // leading dot: name resolved from the root scope
                    var name = Expect(TokenKind.Ident, "an identifier");
                    switch (name.Text)
                    {
                        case "true":
                            return new ConstantExpr(name.Offset, RuleValue.True);
                        case "false":
                            return new ConstantExpr(name.Offset, RuleValue.False);
                        case "null":
                            return new ConstantExpr(name.Offset, RuleValue.Null);
                    }

                    CheckIdentifier(name);
                    if (Accept(TokenKind.LeftParen))
                    {
                        return Check(new CallExpr(name.Offset, null, name.Text!, ParseArguments(TokenKind.RightParen, "')'")));
                    }

                    if (Current.Kind == TokenKind.LeftBrace)
                    {
                        throw Error("message construction (Type{field: value}) is not supported", Current.Offset);
                    }

                    return new IdentExpr(name.Offset, name.Text!);
                }

            default:
                throw Error($"unexpected {Describe(token)}", token.Offset);
        }
    }

    private MapExpr ParseMap(int offset)
    {
        var keys = new List<Expr>();
        var values = new List<Expr>();
        while (Current.Kind != TokenKind.RightBrace)
        {
            var optionalOffset = Current.Offset;
            keys.Add(Accept(TokenKind.Question) ? Check(new CallExpr(optionalOffset, null, RuleCompiler.OptionalEntry, [ParseExpr()])) : ParseExpr());
            Expect(TokenKind.Colon, "':'");
            values.Add(ParseExpr());
            if (!Accept(TokenKind.Comma))
            {
                break;
            }
        }

        Expect(TokenKind.RightBrace, "'}'");
        return Check(new MapExpr(offset, [.. keys], [.. values]));
    }
}

/// <summary>Splits expression text into tokens and decodes literals (escapes, raw and triple-quoted strings, bytes).</summary>
internal sealed class RuleLexer(string text)
{
    private int _position;

    public static RuleSyntaxException Error(string text, string message, int offset)
    {
        var line = 1;
        var column = 1;
        for (var i = 0; i < offset && i < text.Length; i++)
        {
            if (text[i] == '\n')
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }

        return new RuleSyntaxException(message, line, column);
    }

    private RuleSyntaxException Error(string message, int offset) => Error(text, message, offset);

    public List<Token> Tokenize()
    {
        var tokens = new List<Token>();
        while (true)
        {
            SkipSpaceAndComments();
            if (_position >= text.Length)
            {
                tokens.Add(new Token(TokenKind.End, text.Length));
                return tokens;
            }

            tokens.Add(NextToken());
        }
    }

    private void SkipSpaceAndComments()
    {
        while (_position < text.Length)
        {
            var c = text[_position];
            if (c is ' ' or '\t' or '\n' or '\r' or '\f')
            {
                _position++;
            }
            else if (c == '/' && _position + 1 < text.Length && text[_position + 1] == '/')
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

    private char At(int offset) => _position + offset < text.Length ? text[_position + offset] : '\0';

    private Token NextToken()
    {
        var start = _position;
        var c = text[_position];
        if (char.IsAsciiDigit(c) || (c == '.' && char.IsAsciiDigit(At(1))))
        {
            return Number();
        }

        if (c is '"' or '\'')
        {
            return Quoted(start, raw: false, bytes: false);
        }

        if (c == '`')
        {
            // a quoted field name, as in value.`content-type`
            var close = text.IndexOf('`', start + 1);
            if (close < 0 || close == start + 1)
            {
                throw Error("unterminated or empty quoted field name", start);
            }

            _position = close + 1;
            return new Token(TokenKind.QuotedIdent, start, text[(start + 1)..close]);
        }

        if (char.IsAsciiLetter(c) || c == '_')
        {
            var end = _position;
            while (end < text.Length && (char.IsAsciiLetterOrDigit(text[end]) || text[end] == '_'))
            {
                end++;
            }

            var word = text[start..end];
            if (end < text.Length && text[end] is '"' or '\'' && IsStringPrefix(word))
            {
                _position = end;
                return Quoted(start, raw: word.Contains('r', StringComparison.OrdinalIgnoreCase), bytes: word.Contains('b', StringComparison.OrdinalIgnoreCase));
            }

            _position = end;
            return string.Equals(word, "in", StringComparison.Ordinal) ? new Token(TokenKind.In, start, word) : new Token(TokenKind.Ident, start, word);
        }

        var two = _position + 1 < text.Length ? text.AsSpan(_position, 2) : [];
        var kind = two switch
        {
            "<=" => TokenKind.LessEqual,
            ">=" => TokenKind.GreaterEqual,
            "==" => TokenKind.EqualEqual,
            "!=" => TokenKind.NotEqual,
            "&&" => TokenKind.AndAnd,
            "||" => TokenKind.OrOr,
            _ => TokenKind.End,
        };
        if (kind != TokenKind.End)
        {
            _position += 2;
            return new Token(kind, start, two.ToString());
        }

        kind = c switch
        {
            '(' => TokenKind.LeftParen,
            ')' => TokenKind.RightParen,
            '[' => TokenKind.LeftBracket,
            ']' => TokenKind.RightBracket,
            '{' => TokenKind.LeftBrace,
            '}' => TokenKind.RightBrace,
            '.' => TokenKind.Dot,
            ',' => TokenKind.Comma,
            ':' => TokenKind.Colon,
            '?' => TokenKind.Question,
            '+' => TokenKind.Plus,
            '-' => TokenKind.Minus,
            '*' => TokenKind.Star,
            '/' => TokenKind.Slash,
            '%' => TokenKind.Percent,
            '!' => TokenKind.Not,
            '<' => TokenKind.Less,
            '>' => TokenKind.Greater,
            _ => throw Error($"unexpected character '{c}'", start),
        };
        _position++;
        return new Token(kind, start, c.ToString());
    }

    private static bool IsStringPrefix(string word) => word.Length switch
    {
        1 => word[0] is 'r' or 'R' or 'b' or 'B',
        2 => (word[0] is 'r' or 'R' && word[1] is 'b' or 'B') || (word[0] is 'b' or 'B' && word[1] is 'r' or 'R'),
        _ => false,
    };

    private Token Number()
    {
        var start = _position;
        if (text[_position] == '0' && At(1) is 'x' or 'X')
        {
            _position += 2;
            var digitsStart = _position;
            while (_position < text.Length && char.IsAsciiHexDigit(text[_position]))
            {
                _position++;
            }

            if (_position == digitsStart)
            {
                throw Error("hexadecimal literal without digits", start);
            }

            if (!ulong.TryParse(text.AsSpan(digitsStart, _position - digitsStart), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hex))
            {
                throw Error("integer literal is out of range", start);
            }

            return IntegerToken(start, hex);
        }

        while (_position < text.Length && char.IsAsciiDigit(text[_position]))
        {
            _position++;
        }

        var isDouble = false;
        if (At(0) == '.' && char.IsAsciiDigit(At(1)))
        {
            isDouble = true;
            _position++;
            while (_position < text.Length && char.IsAsciiDigit(text[_position]))
            {
                _position++;
            }
        }

        if (At(0) is 'e' or 'E' && (char.IsAsciiDigit(At(1)) || (At(1) is '+' or '-' && char.IsAsciiDigit(At(2)))))
        {
            isDouble = true;
            _position += 2;
            while (_position < text.Length && char.IsAsciiDigit(text[_position]))
            {
                _position++;
            }
        }

        var literal = text.AsSpan(start, _position - start);
        if (isDouble)
        {
            return new Token(TokenKind.Double, start, literal.ToString(), Number: double.Parse(literal, NumberStyles.Float, CultureInfo.InvariantCulture));
        }

        if (!ulong.TryParse(literal, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            throw Error("integer literal is out of range", start);
        }

        return IntegerToken(start, value);
    }

    private Token IntegerToken(int start, ulong value)
    {
        if (At(0) is 'u' or 'U')
        {
            _position++;
            return new Token(TokenKind.Uint, start, text[start.._position], value);
        }

        return new Token(TokenKind.Int, start, text[start.._position], value);
    }

    private Token Quoted(int start, bool raw, bool bytes)
    {
        var quote = text[_position];
        var triple = At(1) == quote && At(2) == quote;
        _position += triple ? 3 : 1;
        var output = new List<byte>();
        var builder = new StringBuilder();
        Span<byte> utf8 = stackalloc byte[4];
        while (true)
        {
            if (_position >= text.Length)
            {
                throw Error("unterminated string literal", start);
            }

            var c = text[_position];
            if (c == quote && (!triple || (At(1) == quote && At(2) == quote)))
            {
                _position += triple ? 3 : 1;
                break;
            }

            if (!triple && c is '\n' or '\r')
            {
                throw Error("newline in string literal", _position);
            }

            if (c == '\\' && !raw)
            {
                EscapeInto(builder, output, bytes);
                continue;
            }

            if (bytes)
            {
                if (Rune.DecodeFromUtf16(text.AsSpan(_position), out var rune, out _) != System.Buffers.OperationStatus.Done)
                {
                    throw Error("invalid UTF-16 text (a lone surrogate) in a bytes literal", _position);
                }

                var length = rune.EncodeToUtf8(utf8);
                for (var i = 0; i < length; i++)
                {
                    output.Add(utf8[i]);
                }

                _position += rune.Utf16SequenceLength;
            }
            else
            {
                builder.Append(c);
                _position++;
            }
        }

        return bytes
            ? new Token(TokenKind.Bytes, start, Bytes: [.. output])
            : new Token(TokenKind.String, start, builder.ToString());
    }

    private void EscapeInto(StringBuilder builder, List<byte> output, bool bytes)
    {
        var escapeStart = _position;
        _position++;
        if (_position >= text.Length)
        {
            throw Error("unterminated escape sequence", escapeStart);
        }

        var c = text[_position++];
        int codePoint;
        var isRawByte = false;
        switch (c)
        {
            case 'a': codePoint = 7; break;
            case 'b': codePoint = 8; break;
            case 'f': codePoint = 12; break;
            case 'n': codePoint = 10; break;
            case 'r': codePoint = 13; break;
            case 't': codePoint = 9; break;
            case 'v': codePoint = 11; break;
            case '\\' or '\'' or '"' or '`' or '?': codePoint = c; break;
            case 'x' or 'X':
                codePoint = Hex(2, escapeStart);
                isRawByte = true;
                break;
            case 'u':
            case 'U':
                if (bytes)
                {
                    throw Error("\\u escapes are not allowed in bytes literals", escapeStart);
                }

                codePoint = Hex(c == 'u' ? 4 : 8, escapeStart);
                if (codePoint < 0 || codePoint > 0x10FFFF || (codePoint >= 0xD800 && codePoint <= 0xDFFF))
                {
                    throw Error("escape sequence is not a valid code point", escapeStart);
                }

                break;
            case >= '0' and <= '3':
                if (!(At(0) is >= '0' and <= '7' && At(1) is >= '0' and <= '7'))
                {
                    throw Error("octal escape needs three digits", escapeStart);
                }

                codePoint = ((c - '0') * 64) + ((At(0) - '0') * 8) + (At(1) - '0');
                _position += 2;
                isRawByte = true;
                break;
            default:
                throw Error($"invalid escape sequence '\\{c}'", escapeStart);
        }

        if (bytes)
        {
            if (isRawByte)
            {
                output.Add((byte)codePoint);
            }
            else
            {
                output.AddRange(Encoding.UTF8.GetBytes(char.ConvertFromUtf32(codePoint)));
            }
        }
        else
        {
            builder.Append(char.ConvertFromUtf32(codePoint));
        }
    }

    private int Hex(int digits, int escapeStart)
    {
        if (_position + digits > text.Length || !int.TryParse(text.AsSpan(_position, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
        {
            throw Error("invalid hexadecimal escape", escapeStart);
        }

        _position += digits;
        return value;
    }
}
