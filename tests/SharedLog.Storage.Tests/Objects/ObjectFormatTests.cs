using SharedLog.Storage.Objects;

namespace SharedLog.Storage.Tests.Objects;

public class ObjectFormatTests
{
    private static byte[] Batch(int length, byte fill) => Enumerable.Repeat(fill, length).ToArray();

    [Fact]
    public void FormatConstantsAreFrozen()
    {
        // Objects outlive builds: changing any of these breaks every object already written.
        Assert.Equal(1, (int)ObjectKind.StreamSet);
        Assert.Equal(2, (int)ObjectKind.Stream);
        Assert.Equal(1, ObjectFormat.FormatVersion);
        Assert.Equal(28, ObjectFormat.FooterSize);
        Assert.Equal(56, BlockIndexEntry.EncodedSize);
        Assert.Equal(0x534C4F474F424A31UL, ObjectFormat.Magic);
    }

    [Fact]
    public void EncodingOfASmallObjectIsFrozen()
    {
        var builder = new ObjectBuilder(ObjectKind.StreamSet, blockSizeBytes: 1024);
        builder.Add(streamId: 7, baseOffset: 0, endOffset: 2, firstTimestamp: 1000, maxTimestamp: 1001, recordCount: 2, Batch(3, 0xAA));
        byte[] bytes = builder.Build();
        Assert.Equal(
            "AAAAAA" +
            "00000001" +
            "0000000000000007" + "0000000000000000" + "0000000000000002" + "00000000000003E8" + "00000000000003E9" + "0000000000000000" + "00000003" + "00000002" +
            "0000000000000003" + "0000003C" + "E430275D" +
            "0001" + "01" + "00" + "534C4F474F424A31",
            Convert.ToHexString(bytes));
    }

    [Fact]
    public void BuildThenReadIndexFindsEveryBlock()
    {
        var builder = new ObjectBuilder(ObjectKind.StreamSet, blockSizeBytes: 4096);
        long offset = 0;
        for (int i = 0; i < 10; i++)
        {
            builder.Add(1, offset, offset + 5, 100 + i, 200 + i, 5, Batch(1500, (byte)i));
            offset += 5;
        }

        builder.Add(2, 40, 41, 7, 7, 1, Batch(10_000, 0xEE));
        byte[] bytes = builder.Build();
        Assert.Equal(builder.ObjectSize, bytes.Length);

        ObjectFooter footer = ObjectFormat.ReadFooter(bytes.AsSpan(bytes.Length - ObjectFormat.FooterSize), bytes.Length);
        IReadOnlyList<BlockIndexEntry> blocks = ObjectFormat.ReadIndex(bytes.AsSpan((int)footer.IndexPosition, footer.IndexLength), footer);

        // 1500-byte batches in 4096-byte blocks: two per block, so five blocks for stream 1, one for stream 2.
        Assert.Equal(6, blocks.Count);
        Assert.All(blocks.Take(5), b => Assert.Equal(1, b.StreamId));
        Assert.Equal(new long[] { 0, 10, 20, 30, 40 }, blocks.Take(5).Select(b => b.StartOffset));
        Assert.Equal(50, blocks[4].EndOffset);
        Assert.Equal(2, blocks[5].StreamId);
        Assert.Equal(10_000, blocks[5].Size);
        Assert.Equal(0xEE, bytes[(int)blocks[5].Position]);
        Assert.Equal(3, bytes[(int)blocks[1].Position + 1500]);
    }

    [Fact]
    public void NonContiguousBatchesAreRefused()
    {
        var builder = new ObjectBuilder(ObjectKind.StreamSet);
        builder.Add(1, 0, 5, 0, 0, 5, Batch(10, 1));
        Assert.Throws<ArgumentException>(() => builder.Add(1, 6, 7, 0, 0, 1, Batch(10, 1)));
    }

    [Fact]
    public void CorruptFootersAndIndexesAreDetected()
    {
        var builder = new ObjectBuilder(ObjectKind.Stream);
        builder.Add(3, 0, 1, 0, 0, 1, Batch(100, 1));
        byte[] bytes = builder.Build();

        byte[] badMagic = (byte[])bytes.Clone();
        badMagic[^1] ^= 0xFF;
        Assert.Throws<InvalidDataException>(() => ObjectFormat.ReadFooter(badMagic.AsSpan(badMagic.Length - ObjectFormat.FooterSize), badMagic.Length));

        Assert.Throws<InvalidDataException>(() => ObjectFormat.ReadFooter(bytes.AsSpan(bytes.Length - ObjectFormat.FooterSize), bytes.Length + 1));

        ObjectFooter footer = ObjectFormat.ReadFooter(bytes.AsSpan(bytes.Length - ObjectFormat.FooterSize), bytes.Length);
        byte[] badIndex = (byte[])bytes.Clone();
        badIndex[(int)footer.IndexPosition + 10] ^= 1;
        Assert.Throws<InvalidDataException>(() => ObjectFormat.ReadIndex(badIndex.AsSpan((int)footer.IndexPosition, footer.IndexLength), footer));
    }
}
