using System.Diagnostics;
using SharedLog.Storage.FaultHost;
using SharedLog.Storage.Wal;
using Xunit.Abstractions;

namespace SharedLog.Storage.Tests.Wal;

/// <summary>
/// The disk refuses WAL writes: a real child process appends under a file-size limit (RLIMIT_FSIZE via
/// <c>ulimit -f</c>, with SIGXFSZ ignored so the write fails with EFBIG as on a full disk instead of
/// killing the process). The appends past the limit must fail with a clear error rather than hang or
/// crash, and everything acknowledged before must survive, intact, when the WAL is reopened with room.
/// </summary>
public sealed class WalWriteFailureTests(ITestOutputHelper output) : IDisposable
{
    // 2 MiB: half of the host's 4 MiB first segment, so the limit is hit in the middle of a segment.
    private const int FileSizeLimitKiB = 2048;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-walfull-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task AppendsFailClearlyWhenTheDiskRefusesWritesAndAcknowledgedDataSurvives()
    {
        string host = Path.Combine(AppContext.BaseDirectory, "SharedLog.Storage.FaultHost.dll");
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"trap '' XFSZ; ulimit -f {FileSizeLimitKiB}; exec dotnet \"$0\" wal \"$1\" 2 7");
        start.ArgumentList.Add(host);
        start.ArgumentList.Add(_directory);

        // The runtime's W^X double mapping grows a memory file, which the same limit would refuse.
        start.Environment["DOTNET_EnableWriteXorExecute"] = "0";

        var acknowledged = new Dictionary<(long Stream, long Offset), int>();
        var failures = new List<string>();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the fault host");
        using var timeout = new CancellationTokenSource(Deadline);
        Task<string> errors = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                if (!WalRecoveryCheck.TryRecordAck(line, acknowledged) && line.StartsWith("failed ", StringComparison.Ordinal))
                {
                    failures.Add(line);
                }
            }

            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        string stderr = await errors;
        output.WriteLine($"{acknowledged.Count} appends acknowledged, exit code {process.ExitCode}; first failure: {failures.FirstOrDefault()}");
        Assert.True(process.ExitCode == 3, $"the host should stop on a refused append (exit 3), got {process.ExitCode}: {stderr}");
        Assert.NotEmpty(failures);
        Assert.All(failures, f => Assert.Contains("WAL", f, StringComparison.Ordinal));
        Assert.True(acknowledged.Count > 10, $"only {acknowledged.Count} appends were acknowledged before the limit");

        // Nothing acknowledged may be lost or corrupted by the failed writes.
        WalRecoveryCheck.Verify(_directory, acknowledged, "after the write failure");

        // With room again, the same WAL takes appends and keeps them.
        await using (var wal = new FasterWriteAheadLog(WalRecoveryCheck.HostOptions(_directory)))
        {
            byte[] payload = WalTestPayload.Create(9, 0, 4096);
            await wal.AppendAsync(9, 0, 1, payload).AsTask().WaitAsync(Deadline);
            acknowledged[(9, 0)] = payload.Length;
        }

        WalRecoveryCheck.Verify(_directory, acknowledged, "after appending with room");
    }
}
