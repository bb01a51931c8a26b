using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// Log levels changed at runtime through Kafka's broker-logger config resource (resource type 8, as
/// <c>kafka-configs --entity-type broker-loggers</c> uses it): a level per logger category, or per namespace, or for
/// <c>root</c> (the default of every category without a level of its own). Each change becomes a logging filter rule
/// applied at once to every logger. Not kept across a restart, as Kafka's are not; levels set for one logging provider
/// in appsettings.json (<c>Logging:Console:LogLevel</c>) still take precedence for that provider.
/// </summary>
/// <remarks>
/// Also a logging provider that logs nothing: it only learns the category of every logger the broker creates, so
/// DescribeConfigs can list them, as Kafka lists its existing loggers.
/// </remarks>
public sealed class BrokerLogLevels : IConfigureOptions<LoggerFilterOptions>, IOptionsChangeTokenSource<LoggerFilterOptions>, ILoggerProvider
{
    /// <summary>Kafka's name for the logger every other inherits its level from.</summary>
    public const string Root = "root";

    /// <summary>ConfigSource of a broker logger (Kafka's DYNAMIC_BROKER_LOGGER_CONFIG).</summary>
    public const sbyte LoggerConfigSource = 6;

    /// <summary>Kafka's level names (log4j's) that a logger may be set to, and the .NET levels they map to, most verbose first.</summary>
    private static readonly (string Name, LogLevel Level)[] Levels =
    [
        ("TRACE", LogLevel.Trace), ("DEBUG", LogLevel.Debug), ("INFO", LogLevel.Information), ("WARN", LogLevel.Warning),
        ("ERROR", LogLevel.Error), ("FATAL", LogLevel.Critical),
    ];

    /// <summary>What a logger that writes nothing reports (log4j's name; Kafka does not take it as a level to set).</summary>
    private const string Off = "OFF";

    private readonly ConcurrentDictionary<string, byte> _categories = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LogLevel> _overrides = new(StringComparer.Ordinal);
    // Held through a whole Apply, so concurrent changes refresh the loggers one after the other, each from the overrides
    // it left; a separate lock from _overrides, which Configure takes on the thread that rebuilds the options.
    private readonly Lock _applying = new();
    private CancellationTokenSource _changed = new();

    /// <summary>The valid level names, as Kafka lists them in its error message.</summary>
    public static string ValidLevels => string.Join(", ", Levels.Select(l => l.Name));

    string IOptionsChangeTokenSource<LoggerFilterOptions>.Name => Options.DefaultName;

    /// <summary>Every logger category the broker has created, sorted, after <see cref="Root"/>.</summary>
    public IReadOnlyList<string> Loggers() => [Root, .. _categories.Keys.Order(StringComparer.Ordinal)];

    /// <summary>The level a category logs at, as its loggers see it now: the most verbose level any provider writes.</summary>
    public static string EffectiveLevel(ILoggerFactory factory, string category)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ILogger logger = factory.CreateLogger(category);
        foreach ((string name, LogLevel level) in Levels)
        {
            if (logger.IsEnabled(level))
            {
                return name;
            }
        }

        return Off;
    }

    /// <summary>
    /// Why a level cannot be set or removed for <paramref name="logger"/>, in Kafka's words, or null when it can. A logger is
    /// <see cref="Root"/>, a category the broker has, or a namespace of one (a prefix ending before a dot). A level set for
    /// a name also reaches categories that merely start with it (X.Foo reaches X.FooBar), as logging filter rules match
    /// by prefix; the broker has no such pair of categories.
    /// </summary>
    public string? Problem(string logger, string? level, bool remove)
    {
        ArgumentNullException.ThrowIfNull(logger);
        if (remove)
        {
            return logger == Root ? "Removing the log level of the root logger is not allowed" : Known(logger) ? null : $"Logger {logger} does not exist!";
        }

        if (!Known(logger))
        {
            return $"Logger {logger} does not exist!";
        }

        return TryParse(level, out _) ? null : $"Cannot set the log level of {logger} to {level} as it is not a supported log level. Valid log levels are {ValidLevels}";
    }

    /// <summary>Applies checked changes (a null level removes the logger's own level) and refreshes every logger's filters.</summary>
    public void Apply(IReadOnlyList<(string Logger, string? Level)> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        lock (_applying)
        {
            lock (_overrides)
            {
                foreach ((string logger, string? level) in changes)
                {
                    if (level is null)
                    {
                        _overrides.Remove(logger);
                    }
                    else if (TryParse(level, out LogLevel parsed))
                    {
                        _overrides[logger] = parsed;
                    }
                }
            }

            // The options monitor rebuilds LoggerFilterOptions (Configure below) and every logger's filters, then asks for the
            // next token. The cancelled source is left to the collector: its token may still be read, and a disposed one throws.
            CancellationTokenSource previous = _changed;
            _changed = new CancellationTokenSource();
            previous.Cancel();
        }
    }

    /// <summary>Adds a rule per level set at runtime, after the configured rules: of rules for the same category, the last wins.</summary>
    public void Configure(LoggerFilterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        lock (_overrides)
        {
            foreach ((string logger, LogLevel level) in _overrides)
            {
                options.Rules.Add(new LoggerFilterRule(providerName: null, categoryName: logger == Root ? null : logger, level, filter: null));
            }
        }
    }

    public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _changed).Token);

    public ILogger CreateLogger(string categoryName)
    {
        if (categoryName != Root) // EffectiveLevel asks for root's level through a logger of that name
        {
            _categories.TryAdd(categoryName, 0);
        }

        return NullLogger.Instance;
    }

    public void Dispose()
    {
        // Nothing to release: the change token sources are never disposed (see Apply), and the provider writes nothing.
    }

    private bool Known(string logger)
    {
        if (logger == Root || _categories.ContainsKey(logger))
        {
            return true;
        }

        foreach (string category in _categories.Keys)
        {
            if (category.Length > logger.Length && category[logger.Length] == '.' && category.StartsWith(logger, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static bool TryParse(string? name, out LogLevel level)
    {
        foreach ((string known, LogLevel value) in Levels)
        {
            if (known == name)
            {
                level = value;
                return true;
            }
        }

        level = LogLevel.None;
        return false;
    }
}
