using System.Buffers;

namespace SharedLog.Protocol;

/// <summary>Joins memory blocks into one <see cref="ReadOnlySequence{T}"/> without copying them (records fields of responses).</summary>
public static class MemorySequence
{
    public static ReadOnlySequence<byte> Join(IReadOnlyList<ReadOnlyMemory<byte>> blocks)
    {
        if (blocks.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        if (blocks.Count == 1)
        {
            return new ReadOnlySequence<byte>(blocks[0]);
        }

        var first = new Segment(blocks[0], 0);
        Segment last = first;
        for (int i = 1; i < blocks.Count; i++)
        {
            last = last.Append(blocks[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
