using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Tests;

public class SchemaWireFormatTests
{
    [Fact]
    public void HeaderIsMagicZeroAndBigEndianId()
    {
        byte[] payload = new byte[8];
        SchemaWireFormat.WriteHeader(payload, 0x01020304);
        Assert.Equal([0, 1, 2, 3, 4], payload[..5]);
        Assert.True(SchemaWireFormat.TryReadSchemaId(payload, out int id));
        Assert.Equal(0x01020304, id);
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 0, 0, 0, 1 })]
    [InlineData(new byte[] { 1, 0, 0, 0, 1 })]
    [InlineData(new byte[] { (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':' })]
    public void PayloadsWithoutTheHeaderAreRefused(byte[] payload) =>
        Assert.False(SchemaWireFormat.TryReadSchemaId(payload, out _));

    [Theory]
    // Confluent writes [0] as a single 0; other paths as zig-zag count then zig-zag indexes.
    [InlineData(new[] { 0 }, new byte[] { 0x00 })]
    [InlineData(new[] { 1 }, new byte[] { 0x02, 0x02 })]
    [InlineData(new[] { 0, 2 }, new byte[] { 0x04, 0x00, 0x04 })]
    [InlineData(new[] { 70 }, new byte[] { 0x02, 0x8C, 0x01 })]
    public void MessageIndexesRoundTrip(int[] path, byte[] expected)
    {
        byte[] written = new byte[SchemaWireFormat.MessageIndexesSize(path)];
        Assert.Equal(written.Length, SchemaWireFormat.WriteMessageIndexes(written, path));
        Assert.Equal(expected, written);

        Span<int> read = stackalloc int[SchemaWireFormat.MaxMessageIndexes];
        Assert.True(SchemaWireFormat.TryReadMessageIndexes([.. written, 0xAA], read, out int count, out int bytesRead));
        Assert.Equal(path, read[..count].ToArray());
        Assert.Equal(expected.Length, bytesRead);
    }

    [Theory]
    [InlineData(new byte[] { })] // nothing
    [InlineData(new byte[] { 0x04, 0x02 })] // count 2, one index
    [InlineData(new byte[] { 0x01 })] // count -1
    [InlineData(new byte[] { 0x02, 0x03 })] // index -2
    [InlineData(new byte[] { 0x82, 0x01 })] // count 65, over the limit
    [InlineData(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 })] // varint longer than 5 bytes
    [InlineData(new byte[] { 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F })] // index over 32 bits
    [InlineData(new byte[] { 0x02, 0x80 })] // truncated varint
    public void MalformedMessageIndexesAreRefused(byte[] bytes)
    {
        Span<int> read = stackalloc int[SchemaWireFormat.MaxMessageIndexes];
        Assert.False(SchemaWireFormat.TryReadMessageIndexes(bytes, read, out _, out _));
    }
}
