namespace SharedLog.Storage.Tests.Objects;

public sealed class CompactionOptionsTests
{
    public static TheoryData<string, Action<StorageOptions>> Invalid => new()
    {
        { "negative deletion grace", o => o.DeletionGrace = TimeSpan.FromSeconds(-1) },
        { "negative minimum age", o => o.CompactionMinAge = TimeSpan.FromSeconds(-1) },
        { "zero interval", o => o.CompactionInterval = TimeSpan.Zero },
        { "zero budget", o => o.CompactionMaxBytesPerRound = 0 },
        { "target below the block size", o => o.StreamObjectTargetBytes = o.BlockSizeBytes - 1 },
        { "target past what one array holds", o => o.StreamObjectTargetBytes = int.MaxValue + 1L },
    };

    [Fact]
    public void TheDefaultsAreValidAndAsDocumented()
    {
        var options = new StorageOptions();
        options.Validate();
        Assert.Equal(
            (TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(10), 256L << 20, 64L << 20),
            (options.DeletionGrace, options.CompactionInterval, options.CompactionMinAge, options.CompactionMaxBytesPerRound, options.StreamObjectTargetBytes));
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void InvalidCompactionSettingsAreRefused(string name, Action<StorageOptions> change)
    {
        var options = new StorageOptions();
        change(options);
        Assert.Throws<ArgumentException>(options.Validate);
        Assert.NotEmpty(name);
    }
}
