using System.Buffers;
using System.Buffers.Binary;

namespace SharedLog.Protocol.Records;

/// <summary>
/// Walks the record batches of a <c>records</c> field. Batches are views into the input when it is one
/// segment (the usual case); a batch that spans segments is copied once. Produce input is strict: a
/// partial batch at the end is corrupt. Fetch input may end with a partial batch (a broker may cut the
/// last one); with <c>allowPartialTail</c> it is reported in <see cref="PartialTail"/> instead.
/// </summary>
public struct RecordBatchReader
{
    private readonly ReadOnlySequence<byte> _records;
    private readonly bool _allowPartialTail;
    private readonly ArrayPool<byte>? _copyPool;
    private long _position;

    /// <param name="records">The records field.</param>
    /// <param name="allowPartialTail">Report a cut last batch in <see cref="PartialTail"/> instead of throwing.</param>
    /// <param name="copyPool">
    /// Copy batches that span segments into arrays rented from this pool, for a caller that only reads the
    /// batch and builds another (the contract gate): it returns <see cref="LastBatchRentedCopy"/> when done.
    /// Without it copies are new arrays of the batch's size, which batching clients make large objects.
    /// </param>
    public RecordBatchReader(ReadOnlySequence<byte> records, bool allowPartialTail = false, ArrayPool<byte>? copyPool = null)
    {
        _records = records;
        _allowPartialTail = allowPartialTail;
        _copyPool = copyPool;
        _position = 0;
        PartialTail = false;
    }

    /// <summary>True when the input ended inside a batch (only with allowPartialTail).</summary>
    public bool PartialTail { get; private set; }

    /// <summary>
    /// True when the last batch read spanned segments, so its <see cref="RecordBatch.Data"/> is an array
    /// of its own (exactly the batch) that the caller may keep instead of copying the batch again.
    /// </summary>
    public bool LastBatchIsCopy { get; private set; }

    /// <summary>
    /// With a copy pool: the rented array the last batch was copied into (longer than the batch), or null
    /// when the batch is a view of the input. The caller returns it to the pool once done with the batch.
    /// </summary>
    public byte[]? LastBatchRentedCopy { get; private set; }

    public bool TryReadNext(out RecordBatch batch)
    {
        batch = default;
        long remaining = _records.Length - _position;
        if (remaining == 0)
        {
            return false;
        }

        if (remaining < RecordBatch.LogOverhead)
        {
            return Partial($"{remaining} bytes at the end are too few for a batch header");
        }

        Span<byte> overhead = stackalloc byte[RecordBatch.LogOverhead];
        _records.Slice(_position, RecordBatch.LogOverhead).CopyTo(overhead);
        int batchLength = BinaryPrimitives.ReadInt32BigEndian(overhead[8..]);
        if (batchLength < 0)
        {
            throw new KafkaProtocolException($"Negative batch length {batchLength}.");
        }

        long size = RecordBatch.LogOverhead + (long)batchLength;
        if (size > remaining)
        {
            return Partial($"batch of {size} bytes but only {remaining} remain");
        }

        ReadOnlySequence<byte> slice = _records.Slice(_position, size);
        ReadOnlyMemory<byte> bytes;
        LastBatchRentedCopy = null;
        LastBatchIsCopy = false;
        if (slice.IsSingleSegment)
        {
            bytes = slice.First;
        }
        else if (_copyPool is not null)
        {
            byte[] rented = _copyPool.Rent((int)size);
            slice.CopyTo(rented);
            LastBatchRentedCopy = rented;
            bytes = rented.AsMemory(0, (int)size);
        }
        else
        {
            LastBatchIsCopy = true;
            bytes = RecordBatch.CopyForStorage(slice);
        }

        batch = RecordBatch.Parse(bytes);
        _position += size;
        return true;
    }

    private bool Partial(string detail)
    {
        if (!_allowPartialTail)
        {
            throw new KafkaProtocolException($"Records end inside a batch: {detail}.");
        }

        PartialTail = true;
        _position = _records.Length;
        return false;
    }
}
