using System.Buffers;
using System.Collections;
using System.Reflection;
using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Tests.Shared;

/// <summary>
/// Fills generated Kafka messages with random values, every property whatever the version (writers skip the fields a
/// version lacks), for fuzzing decoders and handlers, and edits bytes at random. A hook may choose a property's value
/// instead (e.g. a name from a small pool, or a bounded timeout); list items are not properties and stay random.
/// Linked into the test projects that need it.
/// </summary>
internal sealed class RandomRequests(Random random, Func<PropertyInfo, Random, object?>? choose = null)
{
    private const int MaxDepth = 4;

    /// <summary>What the hook returns to set a property to null (a hook's null means "no choice, take a random value").</summary>
    public static readonly object Null = new();

    /// <summary>A request of <paramref name="api"/> with every property set.</summary>
    public IApiMessage Request(ApiKey api)
    {
        IApiMessage request = ApiMessages.CreateRequest(api);
        Fill(request, depth: 0);
        return request;
    }

    /// <summary>The request as a frame body (header and message, no size prefix).</summary>
    public static byte[] Frame(IApiMessage body, short version, int correlationId, string clientId = "fuzz")
    {
        var output = new ArrayBufferWriter<byte>();
        RequestFrame.WriteRequest(output, body, version, correlationId, clientId);
        return output.WrittenSpan[4..].ToArray();
    }

    /// <summary>
    /// Bytes with 1-4 random edits past the first <paramref name="keep"/> (a frame's API key and version by default):
    /// bit flips, cuts, inserted huge lengths and varints, overwritten and inserted bytes.
    /// </summary>
    public byte[] Mutate(byte[] valid, int keep = 4)
    {
        var bytes = valid.ToList();
        int edits = 1 + random.Next(4);
        for (int e = 0; e < edits && bytes.Count > keep; e++)
        {
            int at = keep + random.Next(bytes.Count - keep);
            switch (random.Next(6))
            {
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 2:
                    bytes.InsertRange(at, [0x7F, 0xFF, 0xFF, 0xFF]);
                    break;
                case 3:
                    bytes.InsertRange(at, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
                    break;
                case 4:
                    bytes[at] = 0xFF;
                    break;
                default:
                    bytes.Insert(at, (byte)random.Next(256));
                    break;
            }
        }

        return [.. bytes];
    }

    public void Fill(object target, int depth)
    {
        foreach (PropertyInfo property in target.GetType().GetProperties())
        {
            if (!property.CanWrite || property.Name == nameof(IKafkaStruct.HasDefaultValues) || property.Name == "UnknownTaggedFields")
            {
                continue;
            }

            Type type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            object? value = choose?.Invoke(property, random) ?? Value(type, depth);
            if (ReferenceEquals(value, Null))
            {
                property.SetValue(target, null);
            }
            else if (value is not null)
            {
                property.SetValue(target, value);
            }
        }
    }

    private object? Value(Type type, int depth)
    {
        if (type == typeof(bool))
        {
            return random.Next(2) == 1;
        }

        if (type == typeof(sbyte))
        {
            return (sbyte)random.Next(-128, 128);
        }

        if (type == typeof(short))
        {
            return (short)random.Next(-5, 300);
        }

        if (type == typeof(ushort))
        {
            return (ushort)random.Next(300);
        }

        if (type == typeof(int))
        {
            return random.Next(-5, 100_000);
        }

        if (type == typeof(uint))
        {
            return (uint)random.Next(100_000);
        }

        if (type == typeof(long))
        {
            return random.NextInt64(-5, long.MaxValue);
        }

        if (type == typeof(double))
        {
            return random.NextDouble();
        }

        if (type == typeof(Guid))
        {
            return Guid.NewGuid();
        }

        if (type == typeof(string))
        {
            return "s" + random.Next(1000);
        }

        if (type == typeof(byte[]))
        {
            var bytes = new byte[random.Next(16)];
            random.NextBytes(bytes);
            return bytes;
        }

        if (type == typeof(ReadOnlySequence<byte>))
        {
            var bytes = new byte[random.Next(64)];
            random.NextBytes(bytes);
            return new ReadOnlySequence<byte>(bytes);
        }

        if (depth > MaxDepth)
        {
            return null;
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            var list = (IList)Activator.CreateInstance(type)!;
            Type element = type.GetGenericArguments()[0];
            int count = random.Next(3);
            for (int i = 0; i < count; i++)
            {
                object? item = Value(element, depth + 1);
                if (item is not null)
                {
                    list.Add(item);
                }
            }

            return list;
        }

        if (typeof(IKafkaStruct).IsAssignableFrom(type))
        {
            object nested = Activator.CreateInstance(type)!;
            Fill(nested, depth + 1);
            return nested;
        }

        return null;
    }
}
