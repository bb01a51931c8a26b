using Microsoft.Extensions.Logging;

namespace SharedLog.IntegrationTests;

/// <summary>Collects what a broker logs at warning and above (or from the level given), with the category, so a test can assert nothing went wrong, or what was reported.</summary>
public sealed class CollectingLoggerProvider(LogLevel minimum = LogLevel.Warning) : ILoggerProvider
{
    private readonly List<(string Category, LogLevel Level, string Message, Exception? Exception)> _entries = [];

    private readonly LogLevel _minimum = minimum;

    public IReadOnlyList<(string Category, LogLevel Level, string Message, Exception? Exception)> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Collector(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Collector(CollectingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner._minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            lock (owner._entries)
            {
                owner._entries.Add((category, logLevel, formatter(state, exception), exception));
            }
        }
    }
}
