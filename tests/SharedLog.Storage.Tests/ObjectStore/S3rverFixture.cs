using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace SharedLog.Storage.Tests.ObjectStore;

/// <summary>
/// A real S3-compatible server (the s3rver npm package, installed by ./test.sh into tests/tools) on a
/// free loopback port with a fresh data directory. It can be stopped and started again on the same port
/// and directory to simulate the store going away and coming back.
/// </summary>
public sealed class S3rverFixture : IAsyncLifetime
{
    public const string Bucket = "sharedlog";
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";
    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(30);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "sharedlog-s3rver-" + Guid.NewGuid().ToString("N"));
    private Process? _process;

    public S3rverFixture()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        Port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Directory.CreateDirectory(_directory);
    }

    public Task InitializeAsync() => StartAsync();

    public int Port { get; }

    public string ServiceUrl => $"http://127.0.0.1:{Port}";

    public async Task StartAsync()
    {
        string root = RepositoryRoot();
        string script = Path.Combine(root, "tests", "tools", "node_modules", "s3rver", "bin", "s3rver.js");
        if (!File.Exists(script))
        {
            throw new InvalidOperationException($"s3rver is not installed at {script}; run ./test.sh (it runs npm ci in tests/tools).");
        }

        var start = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { "--openssl-legacy-provider", script, "-d", _directory, "-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--configure-bucket", Bucket, "-s" })
        {
            start.ArgumentList.Add(arg);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("could not start s3rver");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        DateTime deadline = DateTime.UtcNow + StartDeadline;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"s3rver exited with {_process.ExitCode} while starting");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        throw new TimeoutException($"s3rver did not listen on port {Port} within {StartDeadline}");
    }

    public void Stop()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process?.Dispose();
        _process = null;
    }

    private static string RepositoryRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharedLogBroker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Tests must run from inside the SharedLog repository.");
    }

    public Task DisposeAsync()
    {
        Stop();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }
}
