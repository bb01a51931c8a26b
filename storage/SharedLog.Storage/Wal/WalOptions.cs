namespace SharedLog.Storage.Wal;

/// <summary>Settings of the FasterLog-backed write-ahead log (docs/configuration.md).</summary>
public sealed class WalOptions
{
    /// <summary>Directory holding the log segments and commit files.</summary>
    public string Directory { get; set; } = string.Empty;

    /// <summary>Log page size as a power of two; a page must hold at least two maximum-size entries.</summary>
    public int PageSizeBits { get; set; } = 24;

    /// <summary>Memory the log keeps for its tail, as a power of two (at least two pages).</summary>
    public int MemorySizeBits { get; set; } = 26;

    /// <summary>Segment file size as a power of two.</summary>
    public int SegmentSizeBits { get; set; } = 30;

    /// <summary>
    /// Time a group commit waits for more appends before it fsyncs. Zero commits as soon as the previous
    /// commit finishes: appends that arrive meanwhile share the next commit.
    /// </summary>
    public TimeSpan GroupCommitDelay { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// Longest time between two commit-point writes (the commit-slot file). A commit in between completes once its log
    /// pages are on the disk, one synchronous write instead of two; at start the WAL scans forward from the newest
    /// commit point for the entries made durable since. Only with direct I/O (whose device lands log writes in address
    /// order); zero writes a commit point with every commit.
    /// </summary>
    public TimeSpan CommitPointInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A commit this many log bytes past the last commit point writes one, whatever the interval (bounds the scan at start).</summary>
    public long CommitPointBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>
    /// FasterLog's fast commit mode: commit records also go into the log, and recovery scans forward from
    /// the last commit file for later ones. Off by default: that forward scan skips a never-written
    /// stretch as page padding, so a crash while a commit spans a page boundary could bring back entries
    /// that were never acknowledged, with a gap before them; and the measured gain was within noise.
    /// </summary>
    public bool FastCommit { get; set; }

    /// <summary>
    /// Write log pages with direct I/O (O_DIRECT, Linux), bypassing the page cache; where the file system
    /// refuses it the log falls back to FASTER's buffered device and says so in the log.
    /// </summary>
    public bool DirectIo { get; set; } = true;

    /// <summary>
    /// With direct I/O, keep this many bytes of the newest segment written with zeros past the log's tail,
    /// so a commit overwrites blocks the file already has instead of extending it (an extending synchronous
    /// write also waits for the file system to make the new blocks durable). 0 turns it off.
    /// </summary>
    public long ZeroFillAheadBytes { get; set; } = 8L * 1024 * 1024;

    /// <summary>A pending group reaching this many bytes is committed without waiting for the delay.</summary>
    public int GroupCommitBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Largest batch accepted: half a page, as FasterLog entries cannot span pages.</summary>
    public int MaxEntryBytes => (1 << PageSizeBits) / 2 - WalEntryFormat.HeaderSize;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory))
        {
            throw new ArgumentException("WAL directory is required.");
        }

        if (PageSizeBits is < 12 or > 30)
        {
            throw new ArgumentException($"WAL page size bits {PageSizeBits} must be between 12 and 30.");
        }

        if (MemorySizeBits < PageSizeBits + 1)
        {
            throw new ArgumentException("WAL memory must hold at least two pages.");
        }

        if (SegmentSizeBits < PageSizeBits)
        {
            throw new ArgumentException("WAL segments must be at least one page.");
        }

        if (GroupCommitDelay < TimeSpan.Zero || GroupCommitDelay > TimeSpan.FromSeconds(1))
        {
            throw new ArgumentException("WAL group commit delay must be between 0 and 1 s.");
        }

        if (ZeroFillAheadBytes < 0)
        {
            throw new ArgumentException("WAL zero-fill ahead must not be negative.");
        }

        if (CommitPointInterval < TimeSpan.Zero || CommitPointInterval > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentException("WAL commit point interval must be between 0 and 1 minute.");
        }

        if (CommitPointBytes <= 0)
        {
            throw new ArgumentException("WAL commit point bytes must be positive.");
        }

        if (GroupCommitBytes <= 0)
        {
            throw new ArgumentException("WAL group commit bytes must be positive.");
        }
    }
}
