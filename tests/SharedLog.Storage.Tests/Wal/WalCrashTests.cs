using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace SharedLog.Storage.Tests.Wal;

/// <summary>
/// A real child process appends to the WAL under load and is killed with SIGKILL at a random point,
/// over and over on the same directory. After every kill, every append the child reported durable must
/// read back, in order, with the same offsets and bytes; nothing else may appear corrupt.
/// </summary>
public sealed class WalCrashTests(ITestOutputHelper output) : IDisposable
{
    private const int Iterations = 20;
    private const int Writers = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-walcrash-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task AcknowledgedAppendsSurviveRepeatedSigkill()
    {
        var random = new Random(20261124);
        var acknowledged = new Dictionary<(long Stream, long Offset), int>();
        for (int iteration = 0; iteration < Iterations; iteration++)
        {
            int killAfterAcks = random.Next(5, 400);
            int acks = await RunAndKillAsync(iteration, killAfterAcks, acknowledged);
            output.WriteLine($"iteration {iteration}: killed after {acks} acknowledged appends");
            VerifyRecovered(acknowledged, iteration);
        }

        Assert.True(acknowledged.Count > Iterations * 5, $"only {acknowledged.Count} appends were acknowledged");
    }

    private async Task<int> RunAndKillAsync(int iteration, int killAfterAcks, Dictionary<(long, long), int> acknowledged)
    {
        string host = Path.Combine(AppContext.BaseDirectory, "SharedLog.Storage.FaultHost.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { host, "wal", _directory, Writers.ToString(CultureInfo.InvariantCulture), iteration.ToString(CultureInfo.InvariantCulture) })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the fault host");
        using var timeout = new CancellationTokenSource(Deadline);
        int acks = 0;
        try
        {
            while (acks < killAfterAcks)
            {
                string? line = await process.StandardOutput.ReadLineAsync(timeout.Token);
                if (line is null)
                {
                    string error = await process.StandardError.ReadToEndAsync(timeout.Token);
                    throw new InvalidOperationException($"fault host exited early: {error}");
                }

                if (WalRecoveryCheck.TryRecordAck(line, acknowledged))
                {
                    acks++;
                }
            }
        }
        finally
        {
            // SIGKILL: no shutdown hooks, no final commit.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None).WaitAsync(Deadline);
        }

        return acks;
    }

    private void VerifyRecovered(Dictionary<(long Stream, long Offset), int> acknowledged, int iteration) =>
        WalRecoveryCheck.Verify(_directory, acknowledged, $"iteration {iteration}");
}
