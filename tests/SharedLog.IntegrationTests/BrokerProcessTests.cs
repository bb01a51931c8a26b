using System.Diagnostics;
using System.Text.RegularExpressions;
using Confluent.Kafka;

namespace SharedLog.IntegrationTests;

/// <summary>
/// The broker as a real process: killed with SIGKILL while producers are acknowledged, or stopped
/// with SIGINT (Ctrl-C); after a restart on the same data directory every acknowledged record is
/// there, in order.
/// </summary>
public partial class BrokerProcessTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"listening for Kafka clients on (?<bootstrap>[0-9.]+:\d+)")]
    private static partial Regex ListeningLine();

    [GeneratedRegex(@"^GC: (?<mode>\w+), large object threshold (?<threshold>\d+) bytes; thread pool minimum (?<threads>\d+) worker threads")]
    private static partial Regex GcLine();

    internal sealed class BrokerProcess : IDisposable
    {
        private readonly Process _process;

        private readonly string _startOutput;
        private readonly Task<string> _restOfOutput;

        private BrokerProcess(Process process, string bootstrap, string gcLine, string startOutput, Task<string> restOfOutput)
        {
            _process = process;
            Bootstrap = bootstrap;
            GcSettings = gcLine;
            _startOutput = startOutput;
            _restOfOutput = restOfOutput;
        }

        public string Bootstrap { get; }

        /// <summary>The broker's second startup line: GC mode, large object threshold and thread pool minimum.</summary>
        public string GcSettings { get; }

        /// <summary>All the process wrote to standard output; complete once it has exited.</summary>
        public async Task<string> OutputAsync() => _startOutput + await _restOfOutput.WaitAsync(Deadline);

        public static async Task<BrokerProcess> StartAsync(string dataDir, params string[] extraArguments)
        {
            string dll = Path.Combine(AppContext.BaseDirectory, "SharedLog.Broker.dll");
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string arg in new[] { dll, "--port", "0", "--http-port", "-1", "--registry-port", "-1", "--data-dir", dataDir, "--host", "127.0.0.1" }.Concat(extraArguments))
            {
                start.ArgumentList.Add(arg);
            }

            Process process = Process.Start(start) ?? throw new InvalidOperationException("could not start the broker");
            _ = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(Deadline);
            var startOutput = new System.Text.StringBuilder();
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                startOutput.AppendLine(line);
                if (ListeningLine().Match(line) is { Success: true } match)
                {
                    // The next line of Program.cs; log lines written by the console logger's own thread may come first.
                    string gcLine = string.Empty;
                    while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } next)
                    {
                        startOutput.AppendLine(next);
                        if (next.StartsWith("GC: ", StringComparison.Ordinal))
                        {
                            gcLine = next;
                            break;
                        }
                    }

                    return new BrokerProcess(process, match.Groups["bootstrap"].Value, gcLine, startOutput.ToString(), process.StandardOutput.ReadToEndAsync());
                }
            }

            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"the broker exited with {process.ExitCode} before listening");
        }

        /// <summary>Kills the process and waits until it is gone, so nothing of it still holds the data directory.</summary>
        public void Kill()
        {
            _process.Kill(entireProcessTree: true);
            Assert.True(_process.WaitForExit(Deadline), "the killed broker did not exit");
        }

        /// <summary>Sends SIGINT, as Ctrl-C does, and waits for the process to exit.</summary>
        public async Task<int> InterruptAsync()
        {
            using (Process signal = Process.Start("kill", ["-INT", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await signal.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(Deadline);
            await _process.WaitForExitAsync(timeout.Token);
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.Dispose();
        }
    }

    private static async Task<List<string>> ProduceAsync(string bootstrap, string topic, int from, int count)
    {
        using IProducer<string, string> producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = bootstrap, Acks = Acks.All, LingerMs = 2 }).Build();
        var sends = Enumerable.Range(from, count).Select(i => producer.ProduceAsync(topic, new Message<string, string> { Key = "k", Value = $"r{i}" })).ToList();
        DeliveryResult<string, string>[] results = await Task.WhenAll(sends).WaitAsync(Deadline);
        Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
        return [.. results.Select(r => r.Message.Value)];
    }

    private static List<string> ConsumeAll(string bootstrap, string topic, int expected)
    {
        using IConsumer<string, string> consumer = new ConsumerBuilder<string, string>(new ConsumerConfig { BootstrapServers = bootstrap, GroupId = "after-restart", EnableAutoCommit = false }).Build();
        consumer.Assign(new TopicPartitionOffset(topic, 0, Offset.Beginning));
        var values = new List<string>();
        DateTime deadline = DateTime.UtcNow + Deadline;
        while (values.Count < expected && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { Message: not null } result)
            {
                values.Add(result.Message.Value);
            }
        }

        return values;
    }

    [Theory]
    [InlineData("--Wal:CommitPointInterval", "00:05:00", 2, "WAL commit point interval must be between 0 and 1 minute")]
    [InlineData("--port", "not-a-port", 2, "invalid configuration")]
    [InlineData("--Broker:SocketRequestMaxBytes", "-5", 2, "invalid configuration")]
    public async Task ABadSettingStopsTheBrokerWithAUsageErrorNamingIt(string option, string value, int exitCode, string message)
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-badopt-" + Guid.NewGuid().ToString("N"));
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { Path.Combine(AppContext.BaseDirectory, "SharedLog.Broker.dll"), "--port", "0", "--http-port", "-1", "--registry-port", "-1", "--data-dir", dataDir, option, value })
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            using Process process = Process.Start(start)!;
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(Deadline);
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(exitCode, process.ExitCode);
            Assert.Contains(message, await error, StringComparison.Ordinal);
            Assert.DoesNotContain("Unhandled exception", await error, StringComparison.Ordinal);
            Assert.DoesNotContain("listening for Kafka clients", await output, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }

    [Fact]
    public async Task AcknowledgedRecordsSurviveSigkillAndSigint()
    {
        string dataDir = Path.Combine(Path.GetTempPath(), "sharedlog-proc-" + Guid.NewGuid().ToString("N"));
        try
        {
            var acknowledged = new List<string>();
            using (BrokerProcess first = await BrokerProcess.StartAsync(dataDir))
            {
                // The shipped runtime settings docs/configuration.md describes: server GC, .NET's default large object threshold.
                Match gc = GcLine().Match(first.GcSettings);
                Assert.True(gc.Success, first.GcSettings);
                Assert.Equal("server", gc.Groups["mode"].Value);
                Assert.Equal(85_000, int.Parse(gc.Groups["threshold"].Value, System.Globalization.CultureInfo.InvariantCulture));

                // The default pool minimum leaves room for threads blocked in fsyncs and SQLite (BrokerOptions.ThreadPoolMinThreads).
                Assert.Equal(Environment.ProcessorCount + 16, int.Parse(gc.Groups["threads"].Value, System.Globalization.CultureInfo.InvariantCulture));
                acknowledged.AddRange(await ProduceAsync(first.Bootstrap, "durable", 0, 500));
                first.Kill();
            }

            using (BrokerProcess second = await BrokerProcess.StartAsync(dataDir))
            {
                Assert.Equal(acknowledged, ConsumeAll(second.Bootstrap, "durable", acknowledged.Count));
                acknowledged.AddRange(await ProduceAsync(second.Bootstrap, "durable", 500, 500));
                Assert.Equal(0, await second.InterruptAsync());

                // Kestrel would call the Kafka port "http://" in its "Now listening on" lines; the broker's own line names each port's role.
                string output = await second.OutputAsync();
                Assert.Contains("listening for Kafka clients on " + second.Bootstrap, output, StringComparison.Ordinal);
                Assert.DoesNotContain("Now listening on", output, StringComparison.Ordinal);
            }

            using BrokerProcess third = await BrokerProcess.StartAsync(dataDir);
            Assert.Equal(acknowledged, ConsumeAll(third.Bootstrap, "durable", acknowledged.Count));
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }
}
