using System.Buffers;
using SharedLog.Broker.Network;
using SharedLog.Protocol;

namespace SharedLog.IntegrationTests;

/// <summary>The send buffers a response is written into: written bytes copied, large record sets referenced.</summary>
public class ResponseSegmentsTests
{
    private static byte[] Concatenate(List<ArraySegment<byte>> segments) => [.. segments.SelectMany(s => s)];

    [Fact]
    public void WrittenAndReferencedBytesComeOutInOrderAndLargeRecordsAreNotCopied()
    {
        byte[] records = new byte[KafkaWriter.ReferencedRecordsMinBytes + 100];
        new Random(3).NextBytes(records);
        byte[] small = [1, 2, 3];
        var segments = new ResponseSegments();
        long written = Write(segments, records, small);

        // The same bytes a plain buffer gets.
        var plain = new ArrayBufferWriter<byte>();
        Write(plain, records, small);

        Assert.Equal(plain.WrittenSpan.ToArray(), Concatenate(segments.Segments));
        Assert.Equal(plain.WrittenCount, segments.Length);
        Assert.Equal(written, segments.Length);
        Assert.Contains(segments.Segments, s => ReferenceEquals(s.Array, records));
        Assert.DoesNotContain(segments.Segments, s => ReferenceEquals(s.Array, small));
    }

    private static long Write(IBufferWriter<byte> output, byte[] records, byte[] small)
    {
        var writer = new KafkaWriter(output);
        writer.WriteInt32(0x01020304);
        writer.WriteNullableRecords(new ReadOnlySequence<byte>(records), compact: false);
        writer.WriteInt16(7);
        writer.WriteNullableRecords(new ReadOnlySequence<byte>(small), compact: false);
        writer.Flush();
        return writer.Written;
    }

    [Fact]
    public void SmallPiecesOfReferencedDataAreCopiedAndLargeOnesReferenced()
    {
        byte[] tiny = new byte[ResponseSegments.MinReferencedPieceBytes - 1];
        byte[] large = new byte[ResponseSegments.MinReferencedPieceBytes];
        new Random(4).NextBytes(tiny);
        new Random(6).NextBytes(large);
        var segments = new ResponseSegments();
        segments.AppendReferenced(MemorySequence.Join([tiny, large, tiny]));

        Assert.Equal([.. tiny, .. large, .. tiny], Concatenate(segments.Segments));
        Assert.DoesNotContain(segments.Segments, s => ReferenceEquals(s.Array, tiny));
        Assert.Contains(segments.Segments, s => ReferenceEquals(s.Array, large));
    }

    [Fact]
    public void AReleasedResponseStartsEmptyAndWritesAgain()
    {
        var segments = new ResponseSegments();
        segments.GetSpan(5)[..5].Fill(9);
        segments.Advance(5);
        segments.Release();
        Assert.Empty(segments.Segments);
        Assert.Equal(0, segments.Length);

        segments.GetSpan(2)[..2].Fill(4);
        segments.Advance(2);
        Assert.Equal([4, 4], Concatenate(segments.Segments));
    }

    [Fact]
    public void AdvancingPastTheHandedOutBufferIsRefused()
    {
        var segments = new ResponseSegments();
        int length = segments.GetSpan(1).Length;
        Assert.Throws<InvalidOperationException>(() => segments.Advance(length + 1));
    }
}
