using SharedLog.Storage.Wal;
using Xunit;

namespace SharedLog.Storage.Tests.Wal;

public sealed class DirectLogDeviceTests : IDisposable
{
    // Beside the test binaries rather than in the temp directory, which may be a tmpfs (no direct I/O).
    private readonly string _directory = Path.Combine(AppContext.BaseDirectory, "sharedlog-device-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task AReadOfARemovedSegmentFailsAndDoesNotMakeItAgain()
    {
        string path = Path.Combine(_directory, "log");
        Directory.CreateDirectory(_directory);
        using var buffer = new AlignedBuffer(4096);
        buffer.Span.Fill(9);
        using (DirectLogDevice? writer = DirectLogDevice.TryCreate(path, out string? refusal, segmentBytes: 1 << 20))
        {
            Assert.True(writer is not null, $"direct I/O is needed for this test: {refusal}");
            writer.Initialize(1 << 20);
            Assert.Equal(0u, await Complete(done => writer.WriteAsync(buffer.Address, 1, 0, 4096, (error, _, _) => done(error), null!)));
        }

        Assert.True(File.Exists(path + ".1"));

        // A device that has not opened the segment yet (as after a restart) reads it from its file.
        using DirectLogDevice device = DirectLogDevice.TryCreate(path, out _, segmentBytes: 1 << 20)!;
        device.Initialize(1 << 20);
        buffer.Span.Clear();
        Assert.Equal(0u, await Complete(done => device.ReadAsync(1, 0, buffer.Address, 4096, (error, _, _) => done(error), null!)));
        Assert.True(buffer.Span.IndexOfAnyExcept((byte)9) < 0);

        device.RemoveSegment(1);
        Assert.False(File.Exists(path + ".1"));
        uint readError = await Complete(done => device.ReadAsync(1, 0, buffer.Address, 4096, (error, _, _) => done(error), null!));
        Assert.NotEqual(0u, readError);
        Assert.False(File.Exists(path + ".1"), "a read of a removed segment created its file again");
        uint neverWritten = await Complete(done => device.ReadAsync(7, 0, buffer.Address, 4096, (error, _, _) => done(error), null!));
        Assert.NotEqual(0u, neverWritten);
        Assert.False(File.Exists(path + ".7"));
    }

    private static Task<uint> Complete(Action<Action<uint>> start)
    {
        var done = new TaskCompletionSource<uint>(TaskCreationOptions.RunContinuationsAsynchronously);
        start(error => done.TrySetResult(error));
        return done.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
