using System.Buffers.Binary;
using FASTER.core;
using Microsoft.Win32.SafeHandles;
using SharedLog.Protocol.Records;

namespace SharedLog.Storage.Wal;

/// <summary>
/// Keeps FasterLog's commit points in one preallocated file of two slots, overwritten in turn, instead
/// of FASTER's default of a new file per commit (create, synchronous write, delete the previous one):
/// creating a file makes every commit wait for a file-system journal commit, which cost ~1 ms per WAL
/// commit on ext4 here. A commit now is one sector-aligned synchronous write into an existing block.
/// Each slot carries its commit number, length and CRC-32C, so a write torn by a crash is recognised and
/// recovery uses the other slot, whose commit is the previous one (no acknowledged append depends on a
/// commit whose write did not finish). A commit goes to the slot that does not hold the newest written
/// commit, never by its number's parity: FASTER skips the numbers of commits it merges (a flush covering
/// several asks writes only the last), so parity would sometimes overwrite the newest commit in place, and
/// a write torn there would fall back to an older commit than acknowledged appends depend on.
/// A commit point need not be written for every commit (<see cref="CommitPointInterval"/>): the appends a commit
/// covers are durable once its log pages are, and recovery finds those past the newest commit point by scanning
/// (<see cref="WalTailScan"/>). Each slot records the log epoch of the WAL instance that wrote it, which the entries
/// after its commit carry too.
/// </summary>
internal sealed class SlotLogCommitManager : ILogCommitManager
{
    public const string FileName = "commit-slots";

    /// <summary>Bytes per slot; commit metadata (begin and until addresses, persisted iterators, cookie) stays far below.</summary>
    public const int SlotBytes = 64 * 1024;

    private const int SlotCount = 2;
    private const uint MagicWithoutEpoch = 0x4D43_4C53; // "SLCM": written before the log epoch
    private const uint Magic = 0x3243_4C53; // "SLC2"
    private const int HeaderBytesWithoutEpoch = 4 + 4 + 8 + 4 + 4; // magic, crc, commit number, length, reserved
    private const int HeaderBytes = HeaderBytesWithoutEpoch + 8; // then the log epoch

    private readonly string _path;
    private readonly SafeFileHandle _file;
    private readonly AlignedBuffer _buffer = new(SlotBytes);
    private readonly Lock _writing = new();
    private long _lastCommitNum;

    /// <summary>The slot holding the newest written commit (-1 when none): the next commit goes to the other one.</summary>
    private int _newestSlot = -1;
    private int _disposed;

    // When the last commit point was written by this instance (under _writing): whether at all, its begin and until
    // addresses, and when.
    private bool _writtenThisEpoch;
    private long _writtenBegin;
    private long _writtenUntil;
    private long _writtenAt;
    private long _skipped;

    // The newest commit that skipped its commit point (under _writing), null once a later one was written.
    private (long Begin, long Until, byte[] Metadata, long CommitNum)? _skippedCommit;

    private SlotLogCommitManager(string path, SafeFileHandle file, bool direct)
    {
        _path = path;
        _file = file;
        UsesDirectIo = direct;
        foreach ((int index, long commitNum, _, _) in ReadSlots())
        {
            if (_newestSlot < 0 || commitNum > _lastCommitNum)
            {
                (_newestSlot, _lastCommitNum) = (index, commitNum);
            }
        }
    }

    /// <summary>The log epoch of this WAL instance, recorded with every commit point it writes.</summary>
    public long Epoch { get; set; }

    /// <summary>
    /// Longest time between two commit-point writes; a commit within it (whose begin address did not move, less than
    /// <see cref="CommitPointBytes"/> past the last commit point, of an instance that wrote one already) completes
    /// without writing one. Zero writes a commit point for every commit.
    /// </summary>
    public TimeSpan CommitPointInterval { get; set; }

    /// <summary>Most log bytes a commit may be past the last written commit point without writing one.</summary>
    public long CommitPointBytes { get; set; } = long.MaxValue;

    /// <summary>Commits completed without a commit-point write.</summary>
    public long SkippedCommitPoints => Interlocked.Read(ref _skipped);

    /// <summary>
    /// Writes the commit point of the newest commit that skipped it, if any (a clean close leaves no tail for the next
    /// start to scan). FasterLog does not call <see cref="Commit"/> when nothing is left to commit, so this is separate.
    /// </summary>
    public void WriteSkippedCommitPoint()
    {
        lock (_writing)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (_skippedCommit is { } skipped)
            {
                WriteSlot(skipped.Begin, skipped.Until, skipped.Metadata, skipped.CommitNum);
            }
        }
    }

    /// <summary>Whether slot writes bypass the page cache (they are synchronous either way).</summary>
    public bool UsesDirectIo { get; }

    /// <summary>
    /// Hears why a commit could not be written. FASTER runs <see cref="Commit"/> on a worker that swallows its
    /// exceptions, and the commit then never completes, so the WAL learns of the failure here.
    /// </summary>
    public Action<Exception>? CommitFailed { get; set; }

    /// <summary>
    /// Hears the log address up to which a commit point was just made durable, on FASTER's commit worker and before
    /// FASTER publishes it, so appends it covers can be acknowledged without waiting for that bookkeeping.
    /// </summary>
    public Action<long>? Committed { get; set; }

    /// <summary>Fault injection for tests: an exception to fail the next slot writes with.</summary>
    internal Exception? InjectedWriteFault { get; set; }

    /// <summary>
    /// Opens (or creates, filled with zeros and made durable) the slot file in <paramref name="directory"/>.
    /// A new file first takes over the newest commit of FASTER's per-commit files when a WAL written by an
    /// earlier version is there, so that log recovers to the same point.
    /// </summary>
    public static SlotLogCommitManager Open(string directory, bool directIo)
    {
        string path = Path.Combine(directory, FileName);
        bool existed = File.Exists(path);
        if (!existed)
        {
            CreateDurably(path, directory);
        }

        // O_SYNC (WriteThrough): a slot write returns once it is on the disk.
        SafeFileHandle file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, FileOptions.WriteThrough);
        bool direct = false;
        if (directIo && DirectIo.PlatformRefusal is null)
        {
            try
            {
                DirectIo.Enable(file, path);
                direct = true;
            }
            catch (IOException)
            {
                // Buffered but still synchronous: correct, just through the page cache.
            }
        }

        var manager = new SlotLogCommitManager(path, file, direct) { Existed = existed };
        manager.AdoptLegacyCommits(directory);
        return manager;
    }

    /// <summary>Whether the slot file was there when opened (false: created now, for a new WAL or one that lost it).</summary>
    public bool Existed { get; private init; }

    /// <summary>The newest commit's metadata whose slot checks out, or null when no slot does.</summary>
    public byte[]? NewestCommitMetadata() => NewestCommit()?.Metadata;

    /// <summary>The newest commit whose slot checks out (its number, metadata and the epoch that wrote it; 0 for a slot written before epochs), or null.</summary>
    public (long CommitNum, byte[] Metadata, long Epoch)? NewestCommit() =>
        ReadSlots() is { Count: > 0 } slots ? slots.MaxBy(s => s.CommitNum) is var newest ? (newest.CommitNum, newest.Metadata, newest.Epoch) : null : null;

    /// <summary>How many slots hold anything at all (a valid commit, or bytes that do not check out).</summary>
    public int WrittenSlots()
    {
        int written = 0;
        lock (_writing)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            Span<byte> slot = _buffer.Span;
            for (int i = 0; i < SlotCount; i++)
            {
                int read = RandomAccess.Read(_file, slot, (long)i * SlotBytes);
                if (slot[..read].ContainsAnyExcept((byte)0))
                {
                    written++;
                }
            }
        }

        return written;
    }

    private static void CreateDurably(string path, string directory)
    {
        string scratch = path + ".new";
        using (SafeFileHandle created = File.OpenHandle(scratch, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            // Written, not just sized: the blocks exist from now on, so a slot write changes no file-system metadata.
            RandomAccess.Write(created, new byte[SlotBytes * SlotCount], 0);
            RandomAccess.FlushToDisk(created);
        }

        File.Move(scratch, path);
        FileDurability.FlushDirectory(directory);
    }

    /// <summary>A WAL from before this manager kept its commits as log-commits/commit.N.0 files: carry the newest over once.</summary>
    private void AdoptLegacyCommits(string directory)
    {
        string legacyDirectory = Path.Combine(directory, "log-commits");
        if (!System.IO.Directory.Exists(legacyDirectory))
        {
            return;
        }

        if (_lastCommitNum == 0)
        {
            using var legacy = new DeviceLogCommitCheckpointManager(new LocalStorageNamedDeviceFactory(), new DefaultCheckpointNamingScheme(directory), removeOutdated: false);
            foreach (long commitNum in legacy.ListCommits())
            {
                if (legacy.GetCommitMetadata(commitNum) is { } metadata)
                {
                    Commit(0, 0, metadata, commitNum, forceWriteMetadata: true);
                    break;
                }
            }
        }

        System.IO.Directory.Delete(legacyDirectory, recursive: true);
    }

    public void Commit(long beginAddress, long untilAddress, byte[] commitMetadata, long commitNum, bool forceWriteMetadata)
    {
        ArgumentNullException.ThrowIfNull(commitMetadata);
        if (commitMetadata.Length > SlotBytes - HeaderBytes)
        {
            throw new IOException($"WAL commit metadata of {commitMetadata.Length} bytes does not fit a {SlotBytes}-byte commit slot.");
        }

        // FASTER calls this from its serial commit worker; the lock only guards the shared buffer against a
        // second caller, it is never contended in practice.
        lock (_writing)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            if (commitNum < 0)
            {
                commitNum = _lastCommitNum + 1;
            }

            if (!forceWriteMetadata && MaySkip(beginAddress, untilAddress))
            {
                Interlocked.Increment(ref _skipped);
                _skippedCommit = (beginAddress, untilAddress, commitMetadata, commitNum);
            }
            else
            {
                WriteSlot(beginAddress, untilAddress, commitMetadata, commitNum);
            }
        }

        Committed?.Invoke(untilAddress);
    }

    /// <summary>Whether this commit may complete without a commit-point write (under <see cref="_writing"/>).</summary>
    private bool MaySkip(long beginAddress, long untilAddress) =>
        _writtenThisEpoch && beginAddress == _writtenBegin && untilAddress - _writtenUntil < CommitPointBytes
        && System.Diagnostics.Stopwatch.GetElapsedTime(_writtenAt) < CommitPointInterval;

    /// <summary>Writes one commit point into the slot not holding the newest one (under <see cref="_writing"/>).</summary>
    private void WriteSlot(long beginAddress, long untilAddress, byte[] commitMetadata, long commitNum)
    {
        int target = _newestSlot == 0 ? 1 : 0;
        Span<byte> slot = _buffer.Span;
        int length = HeaderBytes + commitMetadata.Length;
        int written = (int)DirectIo.AlignUp(length);
        slot[..written].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(slot, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(slot[8..], commitNum);
        BinaryPrimitives.WriteInt32LittleEndian(slot[16..], commitMetadata.Length);
        BinaryPrimitives.WriteInt64LittleEndian(slot[HeaderBytesWithoutEpoch..], Epoch);
        commitMetadata.CopyTo(slot[HeaderBytes..]);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[4..], Crc32C.Compute(slot[8..length]));
        try
        {
            if (InjectedWriteFault is { } fault)
            {
                throw fault;
            }

            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            RandomAccess.Write(_file, slot[..written], (long)target * SlotBytes);
            StorageMetrics.RecordWalWrite(commitPoint: true, started);
            (_writtenThisEpoch, _writtenBegin, _writtenUntil, _writtenAt, _skippedCommit) = (true, beginAddress, untilAddress, started, null);
        }
        catch (Exception e)
        {
            // The newest commit's slot was not touched; the next commit tries the same (maybe torn) target again.
            CommitFailed?.Invoke(e);
            throw;
        }

        if (commitNum >= _lastCommitNum || _newestSlot < 0)
        {
            (_newestSlot, _lastCommitNum) = (target, commitNum);
        }
    }

    public byte[]? GetCommitMetadata(long commitNum)
    {
        foreach ((_, long found, byte[] metadata, _) in ReadSlots())
        {
            if (found == commitNum)
            {
                return metadata;
            }
        }

        return null;
    }

    /// <summary>Commit numbers held, newest first (the order FasterLog tries them in).</summary>
    public IEnumerable<long> ListCommits()
    {
        List<(int Index, long CommitNum, byte[] Metadata, long Epoch)> slots = ReadSlots();
        slots.Sort((a, b) => b.CommitNum.CompareTo(a.CommitNum));
        return [.. slots.Select(s => s.CommitNum)];
    }

    /// <summary>The slots whose header and CRC check out; a torn or never-written slot is left out.</summary>
    private List<(int Index, long CommitNum, byte[] Metadata, long Epoch)> ReadSlots()
    {
        var valid = new List<(int, long, byte[], long)>(SlotCount);

        // Recovery only; the write buffer serves, under its lock.
        lock (_writing)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            Span<byte> slot = _buffer.Span;
            for (int i = 0; i < SlotCount; i++)
            {
                if (RandomAccess.Read(_file, slot, (long)i * SlotBytes) != SlotBytes)
                {
                    continue;
                }

                uint magic = BinaryPrimitives.ReadUInt32LittleEndian(slot);
                int headerBytes = magic == Magic ? HeaderBytes : HeaderBytesWithoutEpoch;
                int length = BinaryPrimitives.ReadInt32LittleEndian(slot[16..]);
                if (magic is not (Magic or MagicWithoutEpoch) || length < 0 || length > SlotBytes - headerBytes
                    || BinaryPrimitives.ReadUInt32LittleEndian(slot[4..]) != Crc32C.Compute(slot[8..(headerBytes + length)]))
                {
                    continue;
                }

                long epoch = magic == Magic ? BinaryPrimitives.ReadInt64LittleEndian(slot[HeaderBytesWithoutEpoch..]) : 0;
                valid.Add((i, BinaryPrimitives.ReadInt64LittleEndian(slot[8..]), slot.Slice(headerBytes, length).ToArray(), epoch));
            }
        }

        return valid;
    }

    /// <summary>Older commits are overwritten by later ones; nothing to remove on its own.</summary>
    public void RemoveCommit(long commitNum)
    {
    }

    public void RemoveAllCommits()
    {
        lock (_writing)
        {
            Span<byte> slot = _buffer.Span;
            slot.Clear();
            for (int i = 0; i < SlotCount; i++)
            {
                RandomAccess.Write(_file, slot, (long)i * SlotBytes);
            }

            _lastCommitNum = 0;
            _newestSlot = -1;
        }
    }

    public void OnRecovery(long commitNum)
    {
    }

    public override string ToString() => _path;

    public void Dispose()
    {
        lock (_writing)
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            _file.Dispose();
            _buffer.Dispose();
        }
    }
}
