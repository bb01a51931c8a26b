using System.Diagnostics;
using System.Globalization;
using System.Text;
using Confluent.Kafka;
using SharedLog.Clients;
using SharedLog.LoadTest;

// SharedLog.LoadTest: produce, consume and end-to-end latency workloads against any Kafka bootstrap
// address, so one run can target SharedLog and any other Kafka. Prints progress every second, a
// summary (records/s, MB/s, latency p50/p99/p999), and writes a CSV and an SVG chart.
//
//   produce  --bootstrap H:P --topic T [--records N | --duration S] [--record-size B] [--rate R/s] [--acks all|1|0] [--compression none|gzip|snappy|lz4|zstd] [--partitions N (create the topic)] [--value-file F (send F's bytes as every value)] [--idempotence true|false (default false)] [--linger-ms MS (default 1 with --rate, else 5)] [--batch-size B (batch.size, default 1 MiB; the Java client's default is 16384)]
//   consume  --bootstrap H:P --topic T --records N [--consumers N (members of one group, one thread each)] [--partition-fetch-bytes B (max.partition.fetch.bytes, default 1 MiB as librdkafka)]
//   e2e      --bootstrap H:P --topic T --rate R/s --duration S [--record-size B]
// Common: --out DIR (default bench/results), --label NAME, --warmup S (produce and e2e: records sent in
// the first S seconds count for throughput but not for latency), --stats S (print librdkafka's broker round
// trip and queue latencies every S seconds, to tell broker time from client time).
const string Usage = "usage: SharedLog.LoadTest produce|consume|e2e --bootstrap HOST:PORT --topic TOPIC [options]; see the header of Program.cs and the README section Benchmarks";
if (args.Length == 0 || args.Any(a => a is "-h" or "--help"))
{
    Console.WriteLine(Usage);
    return 2;
}

LoadOptions options;
try
{
    options = LoadOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"{e.Message}\n{Usage}");
    return 2;
}

Console.WriteLine($"librdkafka {LibrdkafkaLoader.Version}; {options.Mode} against {options.Bootstrap}, topic {options.Topic}");
if (options.Partitions > 0)
{
    using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = options.Bootstrap }).Build();
    try
    {
        await admin.CreateTopicsAsync([new Confluent.Kafka.Admin.TopicSpecification { Name = options.Topic, NumPartitions = options.Partitions, ReplicationFactor = 1 }]);
    }
    catch (Confluent.Kafka.Admin.CreateTopicsException e) when (e.Results.All(r => r.Error.Code == ErrorCode.TopicAlreadyExists))
    {
        Console.WriteLine($"topic {options.Topic} exists");
    }
}

LoadReport report = options.Mode switch
{
    "produce" => await Workloads.ProduceAsync(options, endToEnd: false),
    "e2e" => await Workloads.ProduceAsync(options, endToEnd: true),
    "consume" => Workloads.Consume(options),
    _ => throw new ArgumentException($"Unknown mode '{options.Mode}'."),
};
report.Print();
report.Write(options.OutputDirectory, options.Label ?? $"{options.Mode}-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
return report.Errors > 0 ? 1 : 0;

namespace SharedLog.LoadTest
{
    internal sealed record LoadOptions(
        string Mode,
        string Bootstrap,
        string Topic,
        long Records,
        TimeSpan? Duration,
        int RecordSize,
        int Rate,
        Acks Acks,
        CompressionType Compression,
        int Partitions,
        string OutputDirectory,
        string? Label,
        string? ValueFile,
        int Consumers,
        int PartitionFetchBytes,
        int StatsSeconds,
        TimeSpan Warmup,
        bool Idempotence,
        int LingerMs,
        int BatchSize)
    {
        public static LoadOptions Parse(string[] args)
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int i = 1; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                {
                    throw new ArgumentException($"Expected '--name value' at '{args[i]}'.");
                }

                values[args[i][2..]] = args[++i];
            }

            string Get(string name, string fallback) => values.TryGetValue(name, out string? v) ? v : fallback;
            int Int(string name, int fallback) => int.Parse(Get(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
            return new LoadOptions(
                args[0],
                values.TryGetValue("bootstrap", out string? b) ? b : throw new ArgumentException("--bootstrap is required."),
                values.TryGetValue("topic", out string? t) ? t : throw new ArgumentException("--topic is required."),
                long.Parse(Get("records", "100000"), CultureInfo.InvariantCulture),
                values.TryGetValue("duration", out string? d) ? TimeSpan.FromSeconds(double.Parse(d, CultureInfo.InvariantCulture)) : null,
                Int("record-size", 1024),
                Int("rate", 0),
                Get("acks", "all") switch { "all" or "-1" => Acks.All, "1" => Acks.Leader, "0" => Acks.None, var a => throw new ArgumentException($"Unknown acks '{a}'.") },
                Enum.Parse<CompressionType>(Get("compression", "none"), ignoreCase: true),
                Int("partitions", 0),
                Get("out", Path.Combine("bench", "results")),
                values.GetValueOrDefault("label"),
                values.GetValueOrDefault("value-file"),
                Int("consumers", 1),
                Int("partition-fetch-bytes", 1024 * 1024),
                Int("stats", 0),
                TimeSpan.FromSeconds(double.Parse(Get("warmup", "0"), CultureInfo.InvariantCulture)),
                bool.Parse(Get("idempotence", "false")),
                Int("linger-ms", Int("rate", 0) > 0 ? 1 : 5),
                Int("batch-size", 1024 * 1024));
        }

        public bool Done(long sent, Stopwatch clock) => Duration is { } d ? clock.Elapsed >= d : sent >= Records;
    }

    /// <summary>Latencies in microseconds and per-second samples, filled from several threads.</summary>
    internal sealed class LoadReport(string mode, int recordSize)
    {
        private readonly List<long> _latenciesMicros = [];
        private readonly List<(double Second, long Records, double P99Ms)> _samples = [];
        private readonly Lock _sync = new();
        private long _records;
        private long _errors;
        private double _seconds;

        public long Errors => Interlocked.Read(ref _errors);

        /// <summary>Stopwatch timestamp before which a record's latency is not kept (warm-up).</summary>
        public long MeasureFrom { get; set; }

        public long Records => Interlocked.Read(ref _records);

        public void Record(long latencyMicros)
        {
            Interlocked.Increment(ref _records);
            if (latencyMicros >= 0)
            {
                lock (_sync)
                {
                    _latenciesMicros.Add(latencyMicros);
                }
            }
        }

        public void Error() => Interlocked.Increment(ref _errors);

        /// <summary>Prints and stores one progress line; called once a second.</summary>
        public void Sample(double second, long recordsInSecond)
        {
            double p99;
            lock (_sync)
            {
                p99 = PercentileMs(_latenciesMicros.TakeLast((int)Math.Max(1, recordsInSecond)).Order().ToList(), 0.99);
                _samples.Add((second, recordsInSecond, p99));
            }

            Console.WriteLine($"  {second,5:0}s  {recordsInSecond,9:N0} rec/s  {recordsInSecond * (double)recordSize / 1e6,8:0.0} MB/s  p99 {p99,8:0.000} ms  errors {Errors}");
        }

        public void Finish(double seconds) => _seconds = seconds;

        private static double PercentileMs(List<long> sorted, double p) =>
            sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))] / 1000.0;

        public void Print()
        {
            List<long> sorted;
            lock (_sync)
            {
                sorted = [.. _latenciesMicros.Order()];
            }

            Console.WriteLine($"{mode}: {Records:N0} records of {recordSize} B in {_seconds:0.00} s = {Records / _seconds:N0} rec/s, {Records * (double)recordSize / _seconds / 1e6:0.0} MB/s; " +
                $"latency p50 {PercentileMs(sorted, 0.50):0.000} ms, p99 {PercentileMs(sorted, 0.99):0.000} ms, p999 {PercentileMs(sorted, 0.999):0.000} ms; errors {Errors}");
        }

        public void Write(string directory, string label)
        {
            Directory.CreateDirectory(directory);
            var csv = new StringBuilder("second,records,mb_per_s,p99_ms\n");
            foreach ((double second, long records, double p99) in _samples)
            {
                csv.Append(CultureInfo.InvariantCulture, $"{second:0},{records},{records * (double)recordSize / 1e6:0.000},{p99:0.000}\n");
            }

            string csvPath = Path.Combine(directory, label + ".csv");
            File.WriteAllText(csvPath, csv.ToString());
            string svgPath = Path.Combine(directory, label + ".svg");
            File.WriteAllText(svgPath, Chart.Svg(label, _samples.Select(s => (s.Second, s.Records * (double)recordSize / 1e6)).ToList(), _samples.Select(s => (s.Second, s.P99Ms)).ToList()));
            Console.WriteLine($"wrote {csvPath} and {svgPath}");
        }
    }

    internal static class Workloads
    {
        public static async Task<LoadReport> ProduceAsync(LoadOptions options, bool endToEnd)
        {
            var report = new LoadReport(endToEnd ? "e2e" : "produce", options.RecordSize);
            var config = new ProducerConfig
            {
                BootstrapServers = options.Bootstrap,
                Acks = options.Acks,
                CompressionType = options.Compression,
                LingerMs = options.LingerMs,
                BatchSize = options.BatchSize,
                QueueBufferingMaxKbytes = 256 * 1024,
                EnableIdempotence = options.Idempotence,
            };
            var builder = new ProducerBuilder<Null, byte[]>(config);
            if (options.StatsSeconds > 0)
            {
                config.StatisticsIntervalMs = options.StatsSeconds * 1000;
                builder.SetStatisticsHandler((_, json) => ClientStats.Print(json));
            }

            using IProducer<Null, byte[]> producer = builder.Build();
            using var consumerStop = new CancellationTokenSource();
            var assigned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task consumer = endToEnd ? Task.Run(() => ConsumeForLatency(options, report, assigned, consumerStop.Token)) : Task.CompletedTask;
            if (endToEnd)
            {
                // Measure steady state: start producing once the consumer has joined its group and owns partitions.
                await assigned.Task.WaitAsync(TimeSpan.FromSeconds(60));
            }

            // --value-file sends one prepared value (e.g. a Confluent-framed Avro or JSON record for a
            // contract benchmark) instead of random bytes.
            byte[] payload = options.ValueFile is { } file ? File.ReadAllBytes(file) : new byte[options.RecordSize];
            if (options.ValueFile is null)
            {
                Random.Shared.NextBytes(payload);
            }
            var clock = Stopwatch.StartNew();
            // Records sent before this timestamp are counted but their latency is not kept (--warmup).
            long measureFrom = Stopwatch.GetTimestamp() + (long)(options.Warmup.TotalSeconds * Stopwatch.Frequency);
            report.MeasureFrom = measureFrom;
            long sent = 0;
            long lastSecond = 0;
            long recordsAtLastSecond = 0;
            while (!options.Done(sent, clock))
            {
                if (options.Rate > 0)
                {
                    // Open-loop pacing: the schedule, not the broker, decides when the next record goes.
                    double due = sent / (double)options.Rate;
                    double wait = due - clock.Elapsed.TotalSeconds;
                    if (wait > 0.001)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(wait));
                    }
                }

                byte[] value = endToEnd ? Stamp(payload) : payload;
                long start = Stopwatch.GetTimestamp();
                try
                {
                    producer.Produce(options.Topic, new Message<Null, byte[]> { Value = value }, delivery =>
                    {
                        if (delivery.Error.IsError)
                        {
                            report.Error();
                        }
                        else if (!endToEnd)
                        {
                            report.Record(start >= measureFrom ? (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds : -1);
                        }
                    });
                    sent++;
                }
                catch (ProduceException<Null, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
                {
                    producer.Poll(TimeSpan.FromMilliseconds(10));
                }

                long second = (long)clock.Elapsed.TotalSeconds;
                if (second > lastSecond)
                {
                    report.Sample(second, report.Records - recordsAtLastSecond);
                    recordsAtLastSecond = report.Records;
                    lastSecond = second;
                }
            }

            producer.Flush(TimeSpan.FromSeconds(60));
            report.Finish(clock.Elapsed.TotalSeconds);
            if (endToEnd)
            {
                DateTime deadline = DateTime.UtcNow.AddSeconds(30);
                while (report.Records < sent - report.Errors && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(50);
                }

                await consumerStop.CancelAsync();
                await consumer;
            }

            return report;
        }

        /// <summary>Puts the send time (Stopwatch ticks) in the first 8 bytes, for end-to-end latency.</summary>
        private static byte[] Stamp(byte[] payload)
        {
            byte[] value = (byte[])payload.Clone();
            BitConverter.TryWriteBytes(value, Stopwatch.GetTimestamp());
            return value;
        }

        private static void ConsumeForLatency(LoadOptions options, LoadReport report, TaskCompletionSource assigned, CancellationToken stop)
        {
            using IConsumer<Ignore, byte[]> consumer = BuildConsumer(options, fetchWaitMs: 100, onAssigned: () => assigned.TrySetResult());
            consumer.Subscribe(options.Topic);
            while (!stop.IsCancellationRequested)
            {
                ConsumeResult<Ignore, byte[]>? result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                if (result?.Message?.Value is { Length: >= 8 } value)
                {
                    long sentAt = BitConverter.ToInt64(value);
                    report.Record(sentAt >= report.MeasureFrom ? (long)Stopwatch.GetElapsedTime(sentAt).TotalMicroseconds : -1);
                }
            }
        }

        /// <summary>
        /// Reads <c>--records</c> records from the earliest offset with <c>--consumers</c> members of one new
        /// group. Values are not copied into managed memory and topic names, headers and timestamps are not
        /// marshalled (<c>consume.result.fields=none</c>), as Kafka's consumer-perf-test does not deserialize:
        /// the run measures how fast the broker serves, not how fast .NET copies records.
        /// </summary>
        public static LoadReport Consume(LoadOptions options)
        {
            var report = new LoadReport("consume", options.RecordSize);
            string groupId = "sharedlog-loadtest-" + Guid.NewGuid().ToString("N");
            using var stop = new CancellationTokenSource();
            long lastRecordTicks = Environment.TickCount64;
            long firstRecordTimestamp = 0;
            var members = new Thread[Math.Max(1, options.Consumers)];
            for (int i = 0; i < members.Length; i++)
            {
                members[i] = new Thread(() =>
                {
                    using IConsumer<Ignore, Ignore> consumer = new ConsumerBuilder<Ignore, Ignore>(ConsumerSettings(options, groupId, fetchWaitMs: 500, AutoOffsetReset.Earliest, "none")).Build();
                    consumer.Subscribe(options.Topic);
                    while (!stop.IsCancellationRequested)
                    {
                        if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { IsPartitionEOF: false })
                        {
                            report.Record(-1);
                            Interlocked.CompareExchange(ref firstRecordTimestamp, Stopwatch.GetTimestamp(), 0);
                            Volatile.Write(ref lastRecordTicks, Environment.TickCount64);
                        }
                    }

                    consumer.Close();
                })
                { IsBackground = true, Name = $"consumer-{i}" };
                members[i].Start();
            }

            var clock = Stopwatch.StartNew();
            long recordsAtLastSecond = 0;
            for (long second = 1; report.Records < options.Records && Environment.TickCount64 - Volatile.Read(ref lastRecordTicks) < 30_000; second++)
            {
                // Wake each second for the progress line, or sooner when the last record arrives.
                while (clock.Elapsed.TotalSeconds < second && report.Records < options.Records)
                {
                    Thread.Sleep(5);
                }

                long records = report.Records;
                report.Sample(second, records - recordsAtLastSecond);
                recordsAtLastSecond = records;
            }

            report.Finish(clock.Elapsed.TotalSeconds);
            long finished = Stopwatch.GetTimestamp();
            stop.Cancel();
            if (Interlocked.Read(ref firstRecordTimestamp) is > 0 and long first)
            {
                // Joining the group (Kafka's group.initial.rebalance.delay.ms, 3 s by default) is not reading.
                double seconds = Stopwatch.GetElapsedTime(first, finished).TotalSeconds;
                Console.WriteLine($"from the first record: {report.Records:N0} records in {seconds:0.00} s = {report.Records / seconds:N0} rec/s, {report.Records * (double)options.RecordSize / seconds / 1e6:0.0} MB/s");
            }

            foreach (Thread member in members)
            {
                member.Join(TimeSpan.FromSeconds(30));
            }

            return report;
        }

        private static ConsumerConfig ConsumerSettings(LoadOptions options, string groupId, int fetchWaitMs, AutoOffsetReset reset, string? resultFields = null) => new()
        {
            BootstrapServers = options.Bootstrap,
            GroupId = groupId,
            AutoOffsetReset = reset,
            EnableAutoCommit = false,
            FetchWaitMaxMs = fetchWaitMs,
            FetchMaxBytes = 64 * 1024 * 1024,
            MaxPartitionFetchBytes = options.PartitionFetchBytes,
            ConsumeResultFields = resultFields ?? "all",
        };

        private static IConsumer<Ignore, byte[]> BuildConsumer(LoadOptions options, int fetchWaitMs, Action? onAssigned = null) =>
            new ConsumerBuilder<Ignore, byte[]>(ConsumerSettings(options, "sharedlog-loadtest-" + Guid.NewGuid().ToString("N"), fetchWaitMs,
                onAssigned is null ? AutoOffsetReset.Earliest : AutoOffsetReset.Latest)).SetPartitionsAssignedHandler((_, partitions) =>
            {
                if (partitions.Count > 0)
                {
                    onAssigned?.Invoke();
                }
            }).Build();
    }

    /// <summary>A two-panel SVG line chart (throughput and p99 latency over time), no dependencies.</summary>
    internal static class Chart
    {
        public static string Svg(string title, List<(double X, double Y)> throughput, List<(double X, double Y)> p99)
        {
            var svg = new StringBuilder();
            svg.Append("<svg xmlns='http://www.w3.org/2000/svg' width='800' height='520' font-family='sans-serif' font-size='12'>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='10' y='20' font-size='14'>{System.Security.SecurityElement.Escape(title)}</text>");
            Panel(svg, 40, "MB/s", throughput, "#1f77b4");
            Panel(svg, 290, "p99 ms", p99, "#d62728");
            svg.Append("</svg>");
            return svg.ToString();
        }

        private static void Panel(StringBuilder svg, int top, string label, List<(double X, double Y)> points, string color)
        {
            const int left = 60;
            const int width = 720;
            const int height = 200;
            double maxX = Math.Max(1, points.Count == 0 ? 1 : points.Max(p => p.X));
            double maxY = Math.Max(1e-9, points.Where(p => !double.IsNaN(p.Y)).Select(p => p.Y).DefaultIfEmpty(1).Max());
            svg.Append(CultureInfo.InvariantCulture, $"<rect x='{left}' y='{top}' width='{width}' height='{height}' fill='none' stroke='#999'/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='5' y='{top + 12}'>{label}</text><text x='5' y='{top + 28}'>{maxY:0.##}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{left + width - 40}' y='{top + height + 15}'>{maxX:0} s</text>");
            var path = new StringBuilder();
            foreach ((double x, double y) in points.Where(p => !double.IsNaN(p.Y)))
            {
                path.Append(CultureInfo.InvariantCulture, $"{(path.Length == 0 ? "M" : "L")}{left + x / maxX * width:0.0},{top + height - y / maxY * height:0.0} ");
            }

            svg.Append(CultureInfo.InvariantCulture, $"<path d='{path}' fill='none' stroke='{color}' stroke-width='2'/>");
        }
    }
}
