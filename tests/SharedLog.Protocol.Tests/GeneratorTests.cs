using SharedLog.Protocol.Generator;

namespace SharedLog.Protocol.Tests;

public class GeneratorTests
{
    [SharedDataFact]
    public void CheckedInCodeMatchesFreshGeneration()
    {
        string spec = SharedData.RequireKafkaProtocol();
        string fresh = Path.Combine(Path.GetTempPath(), "sharedlog-gen-" + Guid.NewGuid().ToString("N"));
        try
        {
            ProtocolGenerator.Generate(spec, fresh);
            string checkedIn = Path.Combine(SharedData.RepositoryRoot, "protocol", "SharedLog.Protocol", "Generated");
            var expected = Directory.GetFiles(fresh).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            var actual = Directory.GetFiles(checkedIn).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            Assert.Equal(expected, actual);
            var stale = expected
                .Where(name => File.ReadAllText(Path.Combine(fresh, name!)) != File.ReadAllText(Path.Combine(checkedIn, name!)))
                .ToList();
            Assert.True(stale.Count == 0, "Generated code is out of date; run `dotnet run --project protocol/SharedLog.Protocol.Generator`. Differs: " + string.Join(", ", stale));
        }
        finally
        {
            Directory.Delete(fresh, recursive: true);
        }
    }

    [SharedDataFact]
    public void GeneratedCodeCarriesNoSpecCommentsOrAboutText()
    {
        string spec = SharedData.RequireKafkaProtocol();
        string generated = Path.Combine(SharedData.RepositoryRoot, "protocol", "SharedLog.Protocol", "Generated");
        string allCode = string.Concat(Directory.GetFiles(generated).Select(File.ReadAllText));

        // Every "about" text of a few long descriptions must be absent from the generated code.
        string fetch = File.ReadAllText(Path.Combine(spec, "message", "FetchRequest.json"));
        var abouts = System.Text.RegularExpressions.Regex.Matches(fetch, "\"about\": \"([^\"]{30,})\"").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(abouts);
        foreach (string about in abouts)
        {
            Assert.DoesNotContain(about, allCode, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("Licensed to the Apache Software Foundation", allCode, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("3+", 3, short.MaxValue)]
    [InlineData("0-4", 0, 4)]
    [InlineData("7", 7, 7)]
    public void VersionRangesParse(string text, short low, short high)
    {
        VersionRange range = VersionRange.Parse(text);
        Assert.Equal(low, range.Low);
        Assert.Equal(high, range.High);
        Assert.Equal(text, range.ToString());
    }

    [Fact]
    public void NoneIsEmpty()
    {
        Assert.True(VersionRange.Parse("none").IsEmpty);
        Assert.False(VersionRange.Parse("none").Contains(0));
    }

    /// <summary>A property says which versions carry its field when not all do, as the spec has it (FindCoordinator's).</summary>
    [Theory]
    [InlineData(nameof(SharedLog.Protocol.Messages.FindCoordinatorResponse.ErrorCode), (short)0, (short)3)]
    [InlineData(nameof(SharedLog.Protocol.Messages.FindCoordinatorResponse.ThrottleTimeMs), (short)1, (short)6)]
    [InlineData(nameof(SharedLog.Protocol.Messages.FindCoordinatorResponse.Coordinators), (short)4, (short)6)]
    public void PropertiesCarryTheVersionsOfTheirField(string property, short lowest, short highest)
    {
        var carried = (SharedLog.Protocol.Messages.FieldVersionsAttribute?)Attribute.GetCustomAttribute(
            typeof(SharedLog.Protocol.Messages.FindCoordinatorResponse).GetProperty(property)!, typeof(SharedLog.Protocol.Messages.FieldVersionsAttribute));
        Assert.NotNull(carried);
        Assert.Equal((lowest, highest), (carried.Lowest, carried.Highest));
        Assert.True(carried.Contains(lowest) && carried.Contains(highest) && !carried.Contains((short)(lowest - 1)) && !carried.Contains((short)(highest + 1)));
    }

    [Fact]
    public void AFieldOfEveryVersionHasNoVersionsAttribute() =>
        Assert.Null(Attribute.GetCustomAttribute(typeof(SharedLog.Protocol.Messages.HeartbeatResponse).GetProperty(nameof(SharedLog.Protocol.Messages.HeartbeatResponse.ErrorCode))!, typeof(SharedLog.Protocol.Messages.FieldVersionsAttribute)));
}
