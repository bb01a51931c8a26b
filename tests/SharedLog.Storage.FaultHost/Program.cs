using SharedLog.Storage.Wal;

// Usage: SharedLog.Storage.FaultHost wal <directory> <writers> <seed>
//        SharedLog.Storage.FaultHost upload <directory> before-commit|before-trim <batches>
// Appends batches on <writers> concurrent streams until killed. For each stream it continues after
// the highest offset it recovers, and prints "ack <stream> <baseOffset> <length>" once an append is
// durable. Payloads are derived from (stream, baseOffset, length) so a reader can verify every byte.
// When the WAL refuses an append (a write failed), prints "failed <message>" and exits with code 3.
if (args.Length == 4 && args[0] == "upload")
{
    return await SharedLog.Storage.FaultHost.UploadCrash.RunAsync(args[1], args[2], int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture));
}

if (args.Length != 4 || args[0] != "wal")
{
    Console.Error.WriteLine("usage: SharedLog.Storage.FaultHost wal <directory> <writers> <seed>");
    return 2;
}

string directory = args[1];
int writers = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
int seed = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
var options = new WalOptions { Directory = directory, PageSizeBits = 20, MemorySizeBits = 22, SegmentSizeBits = 22 };
await using var wal = new FasterWriteAheadLog(options);

var nextOffsets = new long[writers];
foreach (WalEntry entry in wal.ReadDurableEntries())
{
    if (entry.StreamId >= 0 && entry.StreamId < writers)
    {
        nextOffsets[entry.StreamId] = Math.Max(nextOffsets[entry.StreamId], entry.BaseOffset + entry.RecordCount);
    }
}

var output = Console.Out;
var outputLock = new object();
Console.WriteLine("ready");
Console.Out.Flush();
var tasks = new Task[writers];
for (int w = 0; w < writers; w++)
{
    int stream = w;
    tasks[w] = Task.Run(async () =>
    {
        var random = new Random(seed * 31 + stream);
        while (true)
        {
            int length = random.Next(1, 48 * 1024);
            long baseOffset = nextOffsets[stream];
            byte[] payload = SharedLog.Storage.FaultHost.WalTestPayload.Create(stream, baseOffset, length);
            try
            {
                await wal.AppendAsync(stream, baseOffset, recordCount: 1 + (length % 7), payload);
            }
            catch (WalUnavailableException e)
            {
                // The disk refused a write (e.g. full): report it the way the broker would, and stop cleanly.
                lock (outputLock)
                {
                    output.WriteLine($"failed {e.Message}");
                    output.Flush();
                }

                return;
            }

            nextOffsets[stream] = baseOffset + 1 + (length % 7);
            lock (outputLock)
            {
                output.WriteLine($"ack {stream} {baseOffset} {length}");
                output.Flush();
            }
        }
    });
}

await Task.WhenAll(tasks);
return 3; // Only a refused append ends the writers.
