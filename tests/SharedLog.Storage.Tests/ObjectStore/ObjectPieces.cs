using System.Buffers;
using SharedLog.Protocol;

namespace SharedLog.Storage.Tests.ObjectStore;

/// <summary>An object given to a store in many pieces (as uploads give it), and the same bytes in one array.</summary>
internal static class ObjectPieces
{
    public static (ReadOnlySequence<byte> Pieces, byte[] Whole) Make(int count, int maxPieceSize, int seed)
    {
        var random = new Random(seed);
        var pieces = new List<ReadOnlyMemory<byte>>(count);
        for (int i = 0; i < count; i++)
        {
            // Sizes vary, empty pieces included, so piece and part boundaries never line up.
            byte[] piece = new byte[random.Next(0, maxPieceSize + 1)];
            random.NextBytes(piece);
            pieces.Add(piece);
        }

        ReadOnlySequence<byte> sequence = MemorySequence.Join(pieces);
        return (sequence, sequence.ToArray());
    }
}
