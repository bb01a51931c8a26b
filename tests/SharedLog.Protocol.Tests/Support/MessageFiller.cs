using System.Buffers;
using System.Collections;
using System.Reflection;
using SharedLog.Protocol.Generator;
using SharedLog.Protocol.Messages;

namespace SharedLog.Protocol.Tests;

/// <summary>
/// Fills generated messages with random values for exactly the fields the spec puts in a version,
/// and compares two messages on those fields. It reads the spec independently of the generated
/// code, so a field the generated reader and writer both forgot shows up as a difference.
/// </summary>
public sealed class MessageFiller
{
    private readonly MessageSpec _spec;
    private readonly Dictionary<string, IReadOnlyList<FieldSpec>> _structs = new(StringComparer.Ordinal);
    private readonly Random _random;

    public MessageFiller(MessageSpec spec, int seed)
    {
        _spec = spec;
        _random = new Random(seed);
        foreach (StructSpec common in spec.CommonStructs)
        {
            _structs[common.Name] = common.Fields;
        }

        Collect(spec.Fields);
    }

    private void Collect(IReadOnlyList<FieldSpec> fields)
    {
        foreach (FieldSpec f in fields)
        {
            if (f.Fields is { } nested)
            {
                _structs[f.ElementType] = nested;
                Collect(nested);
            }
        }
    }

    public static Type MessageType(MessageSpec spec) =>
        typeof(IKafkaMessage).Assembly.GetType("SharedLog.Protocol.Messages." + spec.Name, throwOnError: true)!;

    public IKafkaMessage Create(short version)
    {
        var message = (IKafkaMessage)Activator.CreateInstance(MessageType(_spec))!;
        Fill(message, _spec.Fields, version);
        return message;
    }

    private static bool Present(FieldSpec f, short version) => f.Versions.Contains(version);

    private bool Flexible(short version) => _spec.FlexibleVersions.Contains(version);

    private void Fill(object target, IReadOnlyList<FieldSpec> fields, short version)
    {
        foreach (FieldSpec f in fields)
        {
            if (!Present(f, version))
            {
                continue;
            }

            if (f.Tag is not null && !(Flexible(version) && f.TaggedVersions.Contains(version)))
            {
                continue;
            }

            PropertyInfo property = target.GetType().GetProperty(f.PropertyName) ?? throw new InvalidOperationException($"{target.GetType().Name} lacks {f.Name}");
            bool nullable = f.NullableVersions.Contains(version);
            property.SetValue(target, RandomValue(f, property.PropertyType, nullable, version));
        }
    }

    private object? RandomValue(FieldSpec f, Type propertyType, bool nullable, short version)
    {
        if (nullable && _random.Next(5) == 0)
        {
            return null;
        }

        Type type = Nullable.GetUnderlyingType(propertyType) ?? propertyType;
        if (f.IsArray)
        {
            var list = (IList)Activator.CreateInstance(type)!;
            Type elementType = type.GetGenericArguments()[0];
            int count = _random.Next(4);
            for (int i = 0; i < count; i++)
            {
                list.Add(f.IsStructType ? RandomStruct(f.ElementType, elementType, version) : RandomPrimitive(f.ElementType));
            }

            return list;
        }

        return f.IsStructType ? RandomStruct(f.Type, type, version) : RandomPrimitive(f.Type);
    }

    private object RandomStruct(string specName, Type type, short version)
    {
        object value = Activator.CreateInstance(type)!;
        Fill(value, _structs[specName], version);
        return value;
    }

    private object RandomPrimitive(string specType) => specType switch
    {
        "bool" => _random.Next(2) == 1,
        "int8" => (sbyte)_random.Next(sbyte.MinValue, sbyte.MaxValue + 1),
        "int16" => (short)_random.Next(short.MinValue, short.MaxValue + 1),
        "uint16" => (ushort)_random.Next(ushort.MaxValue + 1),
        "int32" => _random.Next(int.MinValue, int.MaxValue),
        "uint32" => (uint)_random.NextInt64(uint.MaxValue + 1L),
        "int64" => _random.NextInt64(long.MinValue, long.MaxValue),
        "float64" => _random.NextDouble() * 1e6,
        "uuid" => RandomGuid(),
        "string" => RandomString(),
        "bytes" => RandomBytes(),
        "records" => new ReadOnlySequence<byte>(RandomBytes()),
        _ => throw new InvalidOperationException(specType),
    };

    private Guid RandomGuid()
    {
        Span<byte> bytes = stackalloc byte[16];
        _random.NextBytes(bytes);
        return new Guid(bytes);
    }

    private string RandomString()
    {
        const string alphabet = "abcXYZ019-_.é日本";
        int length = _random.Next(12);
        var chars = new char[length];
        for (int i = 0; i < length; i++)
        {
            chars[i] = alphabet[_random.Next(alphabet.Length)];
        }

        return new string(chars);
    }

    private byte[] RandomBytes()
    {
        var bytes = new byte[_random.Next(24)];
        _random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Lists differences between two messages on the fields present at <paramref name="version"/>.</summary>
    public List<string> Compare(object expected, object actual, short version) =>
        CompareFields(expected, actual, _spec.Fields, version, _spec.Name);

    private List<string> CompareFields(object expected, object actual, IReadOnlyList<FieldSpec> fields, short version, string path)
    {
        var differences = new List<string>();
        foreach (FieldSpec f in fields)
        {
            if (!Present(f, version))
            {
                continue;
            }

            PropertyInfo property = expected.GetType().GetProperty(f.PropertyName)!;
            object? a = property.GetValue(expected);
            object? b = property.GetValue(actual);
            string where = $"{path}.{f.Name}";
            if (a is null || b is null)
            {
                if (a is not null || b is not null)
                {
                    differences.Add($"{where}: {Show(a)} != {Show(b)}");
                }

                continue;
            }

            if (f.IsArray)
            {
                var la = (IList)a;
                var lb = (IList)b;
                if (la.Count != lb.Count)
                {
                    differences.Add($"{where}: count {la.Count} != {lb.Count}");
                    continue;
                }

                for (int i = 0; i < la.Count; i++)
                {
                    if (f.IsStructType)
                    {
                        differences.AddRange(CompareFields(la[i]!, lb[i]!, _structs[f.ElementType], version, $"{where}[{i}]"));
                    }
                    else if (!PrimitiveEquals(la[i], lb[i]))
                    {
                        differences.Add($"{where}[{i}]: {Show(la[i])} != {Show(lb[i])}");
                    }
                }
            }
            else if (f.IsStructType)
            {
                differences.AddRange(CompareFields(a, b, _structs[f.Type], version, where));
            }
            else if (!PrimitiveEquals(a, b))
            {
                differences.Add($"{where}: {Show(a)} != {Show(b)}");
            }
        }

        return differences;
    }

    private static bool PrimitiveEquals(object? a, object? b) => (a, b) switch
    {
        (byte[] x, byte[] y) => x.AsSpan().SequenceEqual(y),
        (ReadOnlySequence<byte> x, ReadOnlySequence<byte> y) => x.ToArray().AsSpan().SequenceEqual(y.ToArray()),
        _ => Equals(a, b),
    };

    private static string Show(object? value) => value switch
    {
        null => "null",
        byte[] bytes => Convert.ToHexString(bytes),
        ReadOnlySequence<byte> seq => Convert.ToHexString(seq.ToArray()),
        _ => value.ToString() ?? string.Empty,
    };
}
