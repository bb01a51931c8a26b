using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace SharedLog.Contracts.Policy;

/// <summary>
/// HMAC-SHA256 (RFC 2104) under one key, for the privacy policy's <c>hash</c> of short field values.
/// </summary>
/// <remarks>
/// Through .NET's <see cref="IncrementalHash"/> one HMAC of an e-mail address costs about 0.5 µs on the bench machine,
/// almost all of it OpenSSL 3's per-call bookkeeping (error queue, context copies, allocations) around two SHA-256
/// blocks. Here the key's inner and outer blocks are hashed once, and each value costs its own blocks through OpenSSL's
/// SHA-256 block function (<c>SHA256_Transform</c>, which uses the CPU's SHA instructions): about 0.1 µs. The block
/// function is looked up in libcrypto.so.3 (OpenSSL 3, which .NET uses on Linux) and proven by a known answer first; where
/// it is missing or wrong, values go through <see cref="IncrementalHash"/>, with the same result.
/// </remarks>
public sealed unsafe class KeyedHash
{
    public const int DigestSize = SHA256.HashSizeInBytes;
    private const int BlockSize = 64;

    // OpenSSL's SHA256_CTX is h[8], Nl, Nh, data[16], num, md_len; the block function reads and writes h only.
    private const int ContextWords = 28;

    private static readonly delegate* unmanaged[SuppressGCTransition]<uint*, byte*, void> BlockFunction = LoadBlockFunction();

    private static ReadOnlySpan<uint> InitialState => [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

    private readonly byte[] _key;
    private readonly uint[] _innerState = new uint[8];
    private readonly uint[] _outerState = new uint[8];

    // The fallback's keyed context, one per thread: creating one per value costs more than hashing it.
    [ThreadStatic]
    private static (KeyedHash Owner, IncrementalHash Hmac)? _threadHmac;

    public KeyedHash(byte[] key)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        if (BlockFunction == null)
        {
            return;
        }

        Span<byte> block = stackalloc byte[BlockSize];
        block.Clear();
        if (key.Length > BlockSize)
        {
            SHA256.HashData(key, block);
        }
        else
        {
            key.CopyTo(block);
        }

        PadState(block, 0x36, _innerState);
        PadState(block, 0x5c, _outerState);
    }

    /// <summary>Whether values are hashed through OpenSSL's block function (else through <see cref="IncrementalHash"/>).</summary>
    public static bool UsesBlockFunction => BlockFunction != null;

    /// <summary>Writes the HMAC-SHA256 of <paramref name="data"/> to the first 32 bytes of <paramref name="digest"/>.</summary>
    public void Compute(ReadOnlySpan<byte> data, Span<byte> digest)
    {
        if (digest.Length < DigestSize)
        {
            throw new ArgumentException($"A digest takes {DigestSize} bytes.", nameof(digest));
        }

        if (BlockFunction == null)
        {
            IncrementalHash hmac = ThreadHmac();
            hmac.AppendData(data);
            hmac.GetHashAndReset(digest[..DigestSize]);
            return;
        }

        uint* context = stackalloc uint[ContextWords];
        _innerState.AsSpan().CopyTo(new Span<uint>(context, 8));
        Absorb(context, data, BlockSize);

        Span<byte> innerDigest = stackalloc byte[DigestSize];
        WriteState(context, innerDigest);
        _outerState.AsSpan().CopyTo(new Span<uint>(context, 8));
        Absorb(context, innerDigest, BlockSize);
        WriteState(context, digest);
    }

    /// <summary>Hashes <paramref name="data"/>, the message after <paramref name="prefixBytes"/> already in the state, with SHA-256's final padding.</summary>
    private static void Absorb(uint* context, ReadOnlySpan<byte> data, int prefixBytes)
    {
        int whole = data.Length / BlockSize * BlockSize;
        fixed (byte* bytes = data)
        {
            for (int offset = 0; offset < whole; offset += BlockSize)
            {
                BlockFunction(context, bytes + offset);
            }
        }

        // The rest, the 0x80 byte and the message length in bits fill one block, or two when fewer than 9 bytes are left.
        byte* tail = stackalloc byte[2 * BlockSize];
        int rest = data.Length - whole;
        var tailSpan = new Span<byte>(tail, 2 * BlockSize);
        tailSpan.Clear();
        data[whole..].CopyTo(tailSpan);
        tail[rest] = 0x80;
        int tailBlocks = rest + 9 <= BlockSize ? 1 : 2;
        BinaryPrimitives.WriteUInt64BigEndian(tailSpan.Slice((tailBlocks * BlockSize) - 8, 8), ((ulong)prefixBytes + (ulong)data.Length) * 8);
        for (int block = 0; block < tailBlocks; block++)
        {
            BlockFunction(context, tail + (block * BlockSize));
        }
    }

    private static void WriteState(uint* context, Span<byte> digest)
    {
        for (int i = 0; i < 8; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(digest.Slice(i * 4, 4), context[i]);
        }
    }

    private static void PadState(ReadOnlySpan<byte> key, byte pad, uint[] state)
    {
        Span<byte> block = stackalloc byte[BlockSize];
        for (int i = 0; i < BlockSize; i++)
        {
            block[i] = (byte)(key[i] ^ pad);
        }

        uint* context = stackalloc uint[ContextWords];
        InitialState.CopyTo(new Span<uint>(context, 8));
        fixed (byte* bytes = block)
        {
            BlockFunction(context, bytes);
        }

        new Span<uint>(context, 8).CopyTo(state);
    }

    private IncrementalHash ThreadHmac()
    {
        if (_threadHmac is not { } cached || !ReferenceEquals(cached.Owner, this))
        {
            _threadHmac?.Hmac.Dispose();
            cached = (this, IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key));
            _threadHmac = cached;
        }

        return cached.Hmac;
    }

    private static delegate* unmanaged[SuppressGCTransition]<uint*, byte*, void> LoadBlockFunction()
    {
        if (!OperatingSystem.IsLinux()
            || !NativeLibrary.TryLoad("libcrypto.so.3", out IntPtr library)
            || !NativeLibrary.TryGetExport(library, "SHA256_Transform", out IntPtr export))
        {
            return null;
        }

        var candidate = (delegate* unmanaged[SuppressGCTransition]<uint*, byte*, void>)export;
        return KnownAnswerHolds(candidate) ? candidate : null;
    }

    /// <summary>SHA-256 of "abc" (one padded block) through the candidate, against .NET's own.</summary>
    private static bool KnownAnswerHolds(delegate* unmanaged[SuppressGCTransition]<uint*, byte*, void> candidate)
    {
        byte* block = stackalloc byte[BlockSize];
        var blockSpan = new Span<byte>(block, BlockSize);
        blockSpan.Clear();
        "abc"u8.CopyTo(blockSpan);
        block[3] = 0x80;
        block[BlockSize - 1] = 3 * 8;
        uint* context = stackalloc uint[ContextWords];
        new Span<uint>(context, ContextWords).Clear();
        InitialState.CopyTo(new Span<uint>(context, 8));
        candidate(context, block);
        Span<byte> digest = stackalloc byte[DigestSize];
        WriteState(context, digest);
        return digest.SequenceEqual(SHA256.HashData("abc"u8));
    }
}
