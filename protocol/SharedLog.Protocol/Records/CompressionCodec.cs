using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using K4os.Compression.LZ4.Streams;
using Snappier;

namespace SharedLog.Protocol.Records;

/// <summary>Record batch compression, attribute bits 0-2. Values are Kafka's.</summary>
public enum CompressionCodec : byte
{
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

/// <summary>
/// The codecs Kafka clients use. Decompression is bounded: output beyond the caller's limit stops the
/// work with <see cref="KafkaProtocolException"/> before more memory is taken, so a small batch that
/// inflates to gigabytes (a decompression bomb) costs at most the limit.
/// </summary>
public static class RecordCompression
{
    /// <summary>The framing Java clients write around snappy blocks (xerial snappy-java).</summary>
    private static ReadOnlySpan<byte> XerialMagic => [0x82, (byte)'S', (byte)'N', (byte)'A', (byte)'P', (byte)'P', (byte)'Y', 0];

    private const int XerialHeaderSize = 16;
    private const int XerialBlockSize = 32 * 1024;

    /// <summary>
    /// At most how many bytes <see cref="Compress"/> adds to <paramref name="length"/> bytes that do not compress (random or
    /// encrypted data), so that data measured to fit a limit before compression still fits after it.
    /// </summary>
    public static int WorstCaseGrowth(CompressionCodec codec, int length) => codec switch
    {
        CompressionCodec.None => 0,
        // zlib-ng's fastest level (deflate_quick) writes literals with static Huffman codes, up to 9 bits a byte.
        CompressionCodec.Gzip => (length / 8) + 64,
        // Snappy's own bound is 32 + n + n/6 per block; the xerial framing adds its header and 4 bytes a block.
        CompressionCodec.Snappy => (length / 6) + (((length / XerialBlockSize) + 1) * (4 + 32)) + XerialHeaderSize,
        // An LZ4 frame: a 4-byte header per 64 KiB block, and the frame's own header and end mark.
        CompressionCodec.Lz4 => (((length / (64 * 1024)) + 1) * 4) + 32,
        // ZSTD_compressBound: n + n/256 + a small constant.
        CompressionCodec.Zstd => (length / 256) + 128,
        _ => throw new ArgumentOutOfRangeException(nameof(codec), codec, "unknown compression codec"),
    };

    /// <param name="gzipLevel">For gzip: the level (fastest unless a caller needs the smallest output, as a replay over a size limit does).</param>
    public static void Compress(CompressionCodec codec, ReadOnlySpan<byte> input, IBufferWriter<byte> output, CompressionLevel gzipLevel = CompressionLevel.Fastest)
    {
        switch (codec)
        {
            case CompressionCodec.None:
                output.Write(input);
                break;
            case CompressionCodec.Gzip:
                {
                    using var stream = new GZipStream(new BufferWriterStream(output), gzipLevel, leaveOpen: false);
                    stream.Write(input);
                    break;
                }

            case CompressionCodec.Snappy:
                WriteXerialSnappy(input, output);
                break;
            case CompressionCodec.Lz4:
                {
                    using Stream stream = LZ4Stream.Encode(new BufferWriterStream(output), leaveOpen: false);
                    stream.Write(input);
                    break;
                }

            case CompressionCodec.Zstd:
                {
                    using var compressor = new ZstdSharp.Compressor(3);
                    output.Write(compressor.Wrap(input));
                    break;
                }

            default:
                throw UnknownCodec(codec);
        }
    }

    /// <summary>Decompresses <paramref name="input"/>, failing once the output would exceed <paramref name="maxBytes"/>.</summary>
    public static byte[] Decompress(CompressionCodec codec, ReadOnlySpan<byte> input, int maxBytes)
    {
        if (codec == CompressionCodec.None)
        {
            return input.ToArray();
        }

        var output = new PooledBufferWriter(InitialOutputBytes(input.Length, maxBytes));
        try
        {
            // The span has no array behind it to read in place, so stream codecs get a copy; DecompressInto avoids that.
            DecompressInto(codec, input.ToArray(), output, maxBytes);
            return output.WrittenSpan.ToArray();
        }
        finally
        {
            output.Release();
        }
    }

    /// <summary>
    /// Decompresses <paramref name="input"/> into <paramref name="output"/> (pooled, so a batch costs no new
    /// arrays), failing once the output would exceed <paramref name="maxBytes"/>. Input backed by an array
    /// is read in place.
    /// </summary>
    public static void DecompressInto(CompressionCodec codec, ReadOnlyMemory<byte> input, PooledBufferWriter output, int maxBytes)
    {
        try
        {
            switch (codec)
            {
                case CompressionCodec.None:
                    if (input.Length > maxBytes)
                    {
                        throw Bomb(codec, maxBytes);
                    }

                    output.Write(input.Span);
                    break;
                case CompressionCodec.Snappy:
                    DecompressSnappy(input.Span, output, maxBytes);
                    break;
                default:
                    ReadBounded(OpenStream(codec, input) ?? throw UnknownCodec(codec), output, maxBytes, codec);
                    break;
            }
        }
        catch (Exception e) when (IsCodecFailure(e))
        {
            throw CorruptData(codec, e);
        }
    }

    /// <summary>
    /// A stream of the decompressed bytes of <paramref name="input"/> (read in place when an array backs it), for the
    /// codecs that inflate as a stream (gzip, lz4, zstd); null for none and snappy. Read it with <see cref="ReadFrom"/>.
    /// </summary>
    public static Stream? OpenStream(CompressionCodec codec, ReadOnlyMemory<byte> input)
    {
        try
        {
            return codec switch
            {
                CompressionCodec.None or CompressionCodec.Snappy => null,
                CompressionCodec.Gzip => new GZipStream(input.IsEmpty ? ReadOnlyStream(input) : new GzipInput(input), CompressionMode.Decompress),
                CompressionCodec.Lz4 => LZ4Frame.Decode(input).AsStream(),
                CompressionCodec.Zstd => new ZstdSharp.DecompressionStream(ReadOnlyStream(input)),
                _ => throw UnknownCodec(codec),
            };
        }
        catch (Exception e) when (IsCodecFailure(e))
        {
            throw CorruptData(codec, e);
        }
    }

    /// <summary>Reads decompressed bytes from a stream of <see cref="OpenStream"/>; what the codec cannot read is CORRUPT_MESSAGE.</summary>
    public static int ReadFrom(Stream stream, Span<byte> destination, CompressionCodec codec)
    {
        try
        {
            return stream.Read(destination);
        }
        catch (Exception e) when (IsCodecFailure(e))
        {
            throw CorruptData(codec, e);
        }
    }

    // NotImplementedException: K4os' LZ4 frame decoder throws it for a frame asking for a predefined dictionary, which a
    // client can send; left out, it escaped the produce handler and closed the connection.
    private static bool IsCodecFailure(Exception e) =>
        e is InvalidDataException or IOException or InvalidOperationException or ArgumentException or IndexOutOfRangeException or ZstdSharp.ZstdException
            or NotSupportedException or NotImplementedException or OverflowException;

    private static KafkaProtocolException CorruptData(CompressionCodec codec, Exception e) =>
        new(codec == CompressionCodec.Gzip
            ? $"Corrupt {codec} data (cut short, or damaged; a gzip member ends with its CRC-32 and length): {GzipProblem(e)}"
            : $"Corrupt {codec} data: {e.Message}", e);

    // .NET calls a deflate block of the reserved type (what the bytes after a member cut short read as) "an unsupported
    // compression method", which reads as if the broker did not support gzip.
    private static string GzipProblem(Exception e) =>
        e is InvalidDataException && e.Message.Contains("unsupported compression method", StringComparison.OrdinalIgnoreCase)
            ? "a deflate block of the reserved type, which no compressor writes."
            : e.Message;

    private static KafkaProtocolException UnknownCodec(CompressionCodec codec) =>
        new($"Unknown compression codec {(int)codec}.", ErrorCode.UnsupportedCompressionType);

    /// <summary>A first output size for a compressed section: a few times its size, as producers' batches compress, within the limit.</summary>
    public static int InitialOutputBytes(int compressedBytes, int maxBytes) => (int)Math.Clamp(compressedBytes * 4L, 4096, Math.Max(maxBytes, 4096));

    /// <summary>
    /// A gzip stream's bytes followed by 8 bytes of 0xFF, which cannot complete its trailer. .NET's gzip reader stops
    /// without an error when its input ends before the CRC-32 and length that close a member, so a batch cut short there
    /// inflated fully and was stored, and librdkafka consumers then spun on the partition. With these bytes after it, a
    /// missing or partial trailer takes them for its last bytes, which puts 0xFF in the length's top byte, a length
    /// beyond any batch, and the reader fails. A stream cut inside its deflate data reads them as more data: they decode
    /// to more bytes, which the records check refuses, or to an invalid block. After a whole member they are trailing
    /// bytes without gzip's magic, which the reader ignores, as it ignores other trailing bytes (as Java's does).
    /// </summary>
    private sealed class GzipInput(ReadOnlyMemory<byte> input) : Stream
    {
        private static ReadOnlySpan<byte> NotATrailer => [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int total = input.Length + NotATrailer.Length;
            int count = Math.Min(buffer.Length, total - _position);
            for (int copied = 0; copied < count;)
            {
                int at = _position + copied;
                ReadOnlySpan<byte> source = at < input.Length ? input.Span[at..] : NotATrailer[(at - input.Length)..];
                int step = Math.Min(source.Length, count - copied);
                source[..step].CopyTo(buffer[copied..]);
                copied += step;
            }

            _position += count;
            return count;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static MemoryStream ReadOnlyStream(ReadOnlyMemory<byte> input) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(input, out ArraySegment<byte> segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(input.ToArray(), writable: false);

    private static void ReadBounded(Stream stream, PooledBufferWriter output, int maxBytes, CompressionCodec codec)
    {
        using (stream)
        {
            int limit = output.WrittenCount + maxBytes;
            while (true)
            {
                int room = limit + 1 - output.WrittenCount;
                int ask = Math.Min(room, 64 * 1024);
                int read = stream.Read(output.GetSpan(ask)[..ask]);
                if (read == 0)
                {
                    return;
                }

                output.Advance(read);
                if (output.WrittenCount > limit)
                {
                    throw Bomb(codec, maxBytes);
                }
            }
        }
    }

    internal static KafkaProtocolException Bomb(CompressionCodec codec, int maxBytes) =>
        new($"{codec} data inflates beyond the {maxBytes}-byte limit (a decompression bomb or an oversized batch); refused.", ErrorCode.CorruptMessage);

    private static void DecompressSnappy(ReadOnlySpan<byte> input, PooledBufferWriter output, int maxBytes)
    {
        if (!input.StartsWith(XerialMagic))
        {
            DecompressSnappyBlock(input, output, maxBytes);
            return;
        }

        if (input.Length < XerialHeaderSize)
        {
            throw new KafkaProtocolException("Xerial snappy header is truncated.");
        }

        // Two passes: check every block's declared size against the limit before inflating any.
        long total = 0;
        int at = XerialHeaderSize;
        while (at < input.Length)
        {
            ReadOnlySpan<byte> block = XerialBlock(input, ref at);
            total += SnappyLength(block);
            if (total > maxBytes)
            {
                throw Bomb(CompressionCodec.Snappy, maxBytes);
            }
        }

        Span<byte> target = output.GetSpan((int)total)[..(int)total];
        int written = 0;
        at = XerialHeaderSize;
        while (at < input.Length)
        {
            ReadOnlySpan<byte> block = XerialBlock(input, ref at);
            int length = SnappyLength(block);
            RequireSnappyDataEndsWithBlock(block, length);
            written += Snappy.Decompress(block, target.Slice(written, length));
        }

        output.Advance(written);
    }

    private static ReadOnlySpan<byte> XerialBlock(ReadOnlySpan<byte> input, ref int at)
    {
        if (input.Length - at < 4)
        {
            throw new KafkaProtocolException("Xerial snappy block length is truncated.");
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(input[at..]);
        if (length < 0 || length > input.Length - at - 4)
        {
            throw new KafkaProtocolException($"Xerial snappy block of {length} bytes exceeds the input.");
        }

        ReadOnlySpan<byte> block = input.Slice(at + 4, length);
        at += 4 + length;
        return block;
    }

    private static int SnappyLength(ReadOnlySpan<byte> block)
    {
        int length = Snappy.GetUncompressedLength(block);
        return length < 0 ? throw new KafkaProtocolException("Snappy block declares a negative length.") : length;
    }

    private static void DecompressSnappyBlock(ReadOnlySpan<byte> input, PooledBufferWriter output, int maxBytes)
    {
        int length = SnappyLength(input);
        if (length > maxBytes)
        {
            throw Bomb(CompressionCodec.Snappy, maxBytes);
        }

        RequireSnappyDataEndsWithBlock(input, length);
        output.Advance(Snappy.Decompress(input, output.GetSpan(length)[..length]));
    }

    /// <summary>
    /// Refuses a snappy block whose elements do not end exactly at its end, having produced exactly its declared length.
    /// Snappier stops once the declared length is written and ignores what follows; such a batch was stored, and libsnappy
    /// (librdkafka, kafka-python) refuses it, so consumers stopped at it for good. Walks the element tags only: what the
    /// elements hold (copy offsets) Snappier checks as it inflates.
    /// </summary>
    private static void RequireSnappyDataEndsWithBlock(ReadOnlySpan<byte> block, int declared)
    {
        int at = 0;
        while (at < block.Length && (block[at++] & 0x80) != 0)
        {
            // The length varint, read already.
        }

        long produced = 0;
        while (at < block.Length && produced < declared)
        {
            byte tag = block[at++];
            int lengthCode = tag >> 2;
            switch (tag & 3)
            {
                case 0: // a literal: its length - 1 in the tag, or in the 1 to 4 bytes after it
                    long literal = lengthCode + 1;
                    if (lengthCode >= 60)
                    {
                        int lengthBytes = lengthCode - 59;
                        if (block.Length - at < lengthBytes)
                        {
                            throw new KafkaProtocolException("Corrupt snappy data: a literal's length is cut short.");
                        }

                        literal = 1;
                        for (int i = 0; i < lengthBytes; i++)
                        {
                            literal += (long)block[at + i] << (8 * i);
                        }

                        at += lengthBytes;
                    }

                    if (literal > block.Length - at)
                    {
                        throw new KafkaProtocolException("Corrupt snappy data: a literal runs past the block's end.");
                    }

                    at += (int)literal;
                    produced += literal;
                    break;
                case 1: // a copy with a 1-byte offset
                    produced += 4 + (lengthCode & 7);
                    at += 1;
                    break;
                case 2: // a copy with a 2-byte offset
                    produced += lengthCode + 1;
                    at += 2;
                    break;
                default: // a copy with a 4-byte offset
                    produced += lengthCode + 1;
                    at += 4;
                    break;
            }
        }

        if (at != block.Length || produced != declared)
        {
            throw new KafkaProtocolException(at < block.Length && produced == declared
                ? $"Corrupt snappy data: {block.Length - at} byte(s) after the {declared} bytes the block declares."
                : $"Corrupt snappy data: the block's data does not make the {declared} bytes it declares.");
        }
    }

    private static void WriteXerialSnappy(ReadOnlySpan<byte> input, IBufferWriter<byte> output)
    {
        Span<byte> header = output.GetSpan(XerialHeaderSize);
        XerialMagic.CopyTo(header);
        BinaryPrimitives.WriteInt32BigEndian(header[8..], 1);
        BinaryPrimitives.WriteInt32BigEndian(header[12..], 1);
        output.Advance(XerialHeaderSize);
        while (!input.IsEmpty)
        {
            ReadOnlySpan<byte> chunk = input[..Math.Min(input.Length, XerialBlockSize)];
            Span<byte> target = output.GetSpan(4 + Snappy.GetMaxCompressedLength(chunk.Length));
            int written = Snappy.Compress(chunk, target[4..]);
            BinaryPrimitives.WriteInt32BigEndian(target, written);
            output.Advance(4 + written);
            input = input[chunk.Length..];
        }
    }

    /// <summary>A write-only stream over an <see cref="IBufferWriter{T}"/>, for codecs that only speak streams.</summary>
    private sealed class BufferWriterStream(IBufferWriter<byte> output) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException("This stream only writes.");

        public override long Position { get => throw new NotSupportedException("This stream only writes."); set => throw new NotSupportedException("This stream only writes."); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("This stream only writes.");

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException("This stream only writes.");

        public override void SetLength(long value) => throw new NotSupportedException("This stream only writes.");

        public override void Write(byte[] buffer, int offset, int count) => output.Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer) => output.Write(buffer);
    }
}
