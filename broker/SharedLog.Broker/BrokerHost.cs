using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using SharedLog.Broker.Cluster;
using SharedLog.Broker.Coordinators;
using SharedLog.Broker.Handlers;
using SharedLog.Broker.Network;
using SharedLog.Contracts;
using SharedLog.Contracts.Evidence;
using SharedLog.Contracts.Gate;
using SharedLog.Contracts.Model;
using SharedLog.Contracts.Policy;
using SharedLog.Contracts.Registry;
using SharedLog.Storage;
using SharedLog.Storage.Metadata;
using SharedLog.Storage.Objects;
using SharedLog.Storage.ObjectStore;
using SharedLog.Storage.Streams;
using SharedLog.Storage.Wal;

namespace SharedLog.Broker;

/// <summary>
/// Builds and runs the broker: the storage engine (WAL, object store, metadata store) and one host
/// serving the Kafka listener (Kestrel connection handler) and the HTTP port (health). Used by Program
/// and, in-process on free ports, by the integration tests. Storage is ready before the listener
/// opens, and is shut down after the listener has drained.
/// </summary>
public sealed partial class BrokerHost : IAsyncDisposable
{
    /// <summary>UTF-8 that replaces bytes it cannot decode (with U+FFFD) rather than failing the request.</summary>
    private static readonly System.Text.Encoding LenientUtf8 = new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly WebApplication _app;
    private readonly ListenOptions _kafkaListener;
    private readonly ListenOptions? _httpListener;
    private readonly ListenOptions? _registryListener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly DataDirectoryLock _directoryLock;
    private Task _janitor = Task.CompletedTask;
    private Task _compactor = Task.CompletedTask;
    private Task _summaries = Task.CompletedTask;
    private Task _quarantineAges = Task.CompletedTask;
    private Task _producerSnapshots = Task.CompletedTask;
    private Task _offsetExpiry = Task.CompletedTask;
    private bool _started;
    private bool _disposed;

    private BrokerHost(WebApplication app, ListenOptions kafkaListener, ListenOptions? httpListener, ListenOptions? registryListener, DataDirectoryLock directoryLock)
    {
        _app = app;
        _directoryLock = directoryLock;
        _kafkaListener = kafkaListener;
        _httpListener = httpListener;
        _registryListener = registryListener;
    }

    /// <summary>Kafka port actually bound (differs from the option when it was 0).</summary>
    public int KafkaPort => _kafkaListener.IPEndPoint!.Port;

    public int? HttpPort => _httpListener?.IPEndPoint!.Port;

    /// <summary>Schema registry port actually bound, or null when the registry API is off.</summary>
    public int? RegistryPort => _registryListener?.IPEndPoint!.Port;

    public string BootstrapServers => $"{_kafkaListener.IPEndPoint!.Address}:{KafkaPort}";

    public IServiceProvider Services => _app.Services;

    /// <summary>Maps the documented command-line flags onto configuration keys.</summary>
    public static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.Ordinal)
    {
        ["--port"] = "Broker:Port",
        ["--http-port"] = "Broker:HttpPort",
        ["--registry-port"] = "Broker:RegistryPort",
        ["--data-dir"] = "Broker:DataDir",
        ["--host"] = "Broker:Host",
        ["--advertised-host"] = "Broker:AdvertisedHost",
        ["--node-id"] = "Broker:NodeId",
    };

    /// <summary>The SQLite metadata store's file in the data directory.</summary>
    public const string MetadataFileName = "metadata.db";

    /// <summary>
    /// Refuses an argument the broker would otherwise ignore: a misspelt flag (<c>--prot 9093</c>) started a broker on the
    /// default port, and <c>--help</c> one on every default. Taken: the flags of <see cref="SwitchMappings"/> and any
    /// setting by its configuration key (<c>--Broker:GroupInitialRebalanceDelayMs 200</c>, <c>--Wal:SegmentBytes=...</c>).
    /// </summary>
    public static void CheckArguments(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string argument = args[i];
            int equals = argument.IndexOf('=', StringComparison.Ordinal);
            string name = equals < 0 ? argument : argument[..equals];
            // The forms .NET's command-line provider takes: "--flag", "--Section:Key", "/Section:Key" (with the value next or
            // after '='), and "Section:Key=value"; flags are matched ignoring case, as it does.
            string key = name.StartsWith("--", StringComparison.Ordinal) ? name[2..] : name.StartsWith('/') ? name[1..] : name;
            bool prefixed = key.Length < name.Length;
            bool known = (name.StartsWith("--", StringComparison.Ordinal) && SwitchMappings.Keys.Any(flag => string.Equals(flag, name, StringComparison.OrdinalIgnoreCase)))
                || (key.IndexOf(':', StringComparison.Ordinal) > 0 && (prefixed || equals > 0));
            if (!known)
            {
                throw new ArgumentException($"unknown argument '{name}'. Flags: {string.Join(", ", SwitchMappings.Keys)}, or any setting as --Section:Key VALUE (docs/configuration.md); --help shows them.");
            }

            if (equals < 0)
            {
                i++; // its value
            }
        }
    }

    /// <summary>
    /// Binds a section, refusing a key its options do not have: a misspelt setting (--Broker:ContractSumaryIntervalSeconds,
    /// SHAREDLOG_Storage__Bucket) was silently ignored and the broker ran on the default.
    /// </summary>
    private static void BindKnown(ConfigurationManager configuration, string section, object options)
    {
        try
        {
            configuration.GetSection(section).Bind(options, binder => binder.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("ErrorOnUnknownConfiguration", StringComparison.Ordinal))
        {
            string unknown = e.Message[(e.Message.LastIndexOf(':') + 1)..].Trim();
            throw new ArgumentException($"unknown setting in section {section}: {unknown}; the settings are in docs/configuration.md.", e);
        }
    }

    private static void CheckKnownKeys(ConfigurationManager configuration, string section, string[] keys)
    {
        foreach (IConfigurationSection child in configuration.GetSection(section).GetChildren())
        {
            if (!keys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"unknown setting {section}:{child.Key}; the {section} settings are {string.Join(", ", keys)} (docs/configuration.md).");
            }
        }
    }

    public static BrokerHost Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        CheckArguments(args);
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Configuration.AddEnvironmentVariables("SHAREDLOG_");
        builder.Configuration.AddCommandLine(args, SwitchMappings);
        // Each HTTP request (a metrics scrape every few seconds) would log four lines at Information; warnings still show.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Kestrel's "Now listening on: http://..." lines would call the Kafka port an HTTP one; Program.cs prints one line
        // naming each port's role instead.
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        logging?.Invoke(builder.Logging);
        // Levels set at runtime through the broker-logger config resource; its rules come after the configured ones.
        var logLevels = new BrokerLogLevels();
        builder.Logging.AddProvider(logLevels);
        builder.Services.AddSingleton(logLevels);
        builder.Services.AddSingleton<IConfigureOptions<LoggerFilterOptions>>(logLevels);
        builder.Services.AddSingleton<IOptionsChangeTokenSource<LoggerFilterOptions>>(logLevels);

        var options = new BrokerOptions();
        CheckKnownKeys(builder.Configuration, "Contracts", ["HashKey"]);
        CheckKnownKeys(builder.Configuration, "ObjectStore", ["Kind", "DirectIo"]);
        BindKnown(builder.Configuration, BrokerOptions.Section, options);
        options.Validate();
        RaiseThreadPoolMinimum(options.ResolvedThreadPoolMinThreads);
        string dataDir = Path.GetFullPath(options.DataDir);
        var wal = new WalOptions { Directory = Path.Combine(dataDir, "wal") };
        BindKnown(builder.Configuration, "Wal", wal);
        wal.Validate(); // here, not when the WAL opens at start: a bad setting is a usage error, not a failed start
        var storage = new StorageOptions();
        BindKnown(builder.Configuration, "Storage", storage);
        storage.Validate();

        IServiceCollection services = builder.Services;
        // Registered after Kestrel's own factory, so the socket transport reads into 64 KiB blocks (see the factory).
        services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();
        services.AddSingleton(Options.Create(options));
        services.AddSingleton(new AdvertisedListener());
        services.AddSingleton<Http.BrokerMetrics>();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("sharedlog-broker", serviceInstanceId: $"node-{options.NodeId}"))
            .WithMetrics(metrics => metrics
            .AddMeter(Http.BrokerMetrics.MeterName, StorageMetrics.MeterName, ContractMetrics.MeterName, "System.Runtime")
            .AddView(instrument => Http.BrokerMetrics.PerTopicOrGroup.Contains(instrument.Name) ? new MetricStreamConfiguration { CardinalityLimit = Http.BrokerMetrics.MaxSeriesPerTopicOrGroupMetric } : null)
            .AddPrometheusExporter());
        services.AddSingleton<IWriteAheadLog>(sp => new FasterWriteAheadLog(wal, sp.GetRequiredService<ILogger<FasterWriteAheadLog>>()));
        // Object store: the local directory by default; "ObjectStore:Kind" = "s3" with an "S3" section for S3.
        string objectStoreKind = builder.Configuration["ObjectStore:Kind"] ?? "local";
        var s3 = new S3ObjectStoreOptions();
        BindKnown(builder.Configuration, "S3", s3);
        bool objectsDirectIo = builder.Configuration.GetValue("ObjectStore:DirectIo", true);
        services.AddSingleton<IObjectStore>(sp => objectStoreKind.ToLowerInvariant() switch
        {
            "local" => LocalObjectStore(new LocalObjectStoreOptions { RootDirectory = Path.Combine(dataDir, "objects"), DirectIo = objectsDirectIo }, sp.GetRequiredService<ILogger<LocalDirectoryObjectStore>>()),
            "s3" => new S3ObjectStore(s3),
            _ => throw new ArgumentException($"ObjectStore:Kind must be 'local' or 's3', not '{objectStoreKind}'."),
        });
        services.AddSingleton<IMetadataStore>(_ => new SqliteMetadataStore(new SqliteMetadataStoreOptions { DatabasePath = Path.Combine(dataDir, MetadataFileName) }));
        services.AddSingleton(sp => new StreamStore(storage, sp.GetRequiredService<IWriteAheadLog>(), sp.GetRequiredService<IObjectStore>(), sp.GetRequiredService<IMetadataStore>(), sp.GetRequiredService<ILogger<StreamStore>>()));
        services.AddSingleton<TopicService>();
        services.AddSingleton(_ => new GroupCoordinator(
            options.GroupInitialRebalanceDelayMs, minSessionTimeoutMs: options.GroupMinSessionTimeoutMs, maxSessionTimeoutMs: options.GroupMaxSessionTimeoutMs));
        services.AddSingleton<ProducerStateManager>();
        services.AddSingleton<GroupLagTracker>();
        services.AddSingleton(sp => new GroupOffsetExpiry(
            sp.GetRequiredService<GroupCoordinator>(), sp.GetRequiredService<IMetadataStore>(), sp.GetRequiredService<GroupLagTracker>(),
            TimeSpan.FromMinutes(options.OffsetsRetentionMinutes), sp.GetRequiredService<ILogger<GroupOffsetExpiry>>()));
        services.AddSingleton(new FetchSessionCache());

        services.AddSingleton(sp => new ApiVersionsHandler(sp.GetRequiredService<HandlerRegistry>));
        services.AddSingleton<IApiHandler>(sp => sp.GetRequiredService<ApiVersionsHandler>());
        services.AddSingleton<IApiHandler, MetadataHandler>();
        services.AddSingleton<IApiHandler, CreateTopicsHandler>();
        services.AddSingleton<IApiHandler, ProduceHandler>();
        services.AddSingleton<IApiHandler, FetchHandler>();
        services.AddSingleton<IApiHandler, ListOffsetsHandler>();
        services.AddSingleton<IApiHandler, FindCoordinatorHandler>();
        services.AddSingleton<IApiHandler, JoinGroupHandler>();
        services.AddSingleton<IApiHandler, SyncGroupHandler>();
        services.AddSingleton<IApiHandler, HeartbeatHandler>();
        services.AddSingleton<IApiHandler, LeaveGroupHandler>();
        services.AddSingleton<IApiHandler, OffsetCommitHandler>();
        services.AddSingleton<IApiHandler, OffsetFetchHandler>();
        services.AddSingleton<IApiHandler, ListGroupsHandler>();
        services.AddSingleton<IApiHandler, DeleteTopicsHandler>();
        services.AddSingleton<IApiHandler, CreatePartitionsHandler>();
        services.AddSingleton<IApiHandler, DescribeConfigsHandler>();
        services.AddSingleton<IApiHandler, DeleteRecordsHandler>();
        services.AddSingleton<IApiHandler, InitProducerIdHandler>();
        services.AddSingleton<IApiHandler, AlterConfigsHandler>();
        services.AddSingleton<IApiHandler, IncrementalAlterConfigsHandler>();
        services.AddSingleton<IApiHandler, DescribeClusterHandler>();
        services.AddSingleton<IApiHandler, DescribeGroupsHandler>();
        services.AddSingleton<IApiHandler, DeleteGroupsHandler>();
        services.AddSingleton<IApiHandler, OffsetForLeaderEpochHandler>();
        services.AddSingleton<IApiHandler, DescribeProducersHandler>();
        services.AddSingleton<IApiHandler, DescribeLogDirsHandler>();
        services.AddSingleton<IApiHandler, OffsetDeleteHandler>();
        services.AddSingleton(sp => new ObjectJanitor(sp.GetRequiredService<IObjectStore>(), sp.GetRequiredService<IMetadataStore>(), sp.GetRequiredService<StreamStore>(), storage.OrphanGrace, storage.DeletionGrace, sp.GetRequiredService<ILogger<ObjectJanitor>>(),
            sp.GetRequiredService<ContractStore>().RetentionMsFor, sp.GetRequiredService<ContractStore>().RetentionBytesFor));
        services.AddSingleton(sp => new ObjectCompactor(sp.GetRequiredService<IObjectStore>(), sp.GetRequiredService<IMetadataStore>(), storage, sp.GetRequiredService<StreamStore>(), sp.GetRequiredService<ILogger<ObjectCompactor>>()));
        services.AddSingleton<ISchemaFormat>(new Contracts.Formats.Avro.AvroSchemaFormat());
        services.AddSingleton<ISchemaFormat>(new Contracts.Formats.Json.JsonSchemaFormat());
        services.AddSingleton<ISchemaFormat>(new Contracts.Formats.Protobuf.ProtobufSchemaFormat());
        services.AddSingleton(sp => new SchemaRegistry(
            sp.GetServices<ISchemaFormat>(),
            new InternalTopicJournal(sp.GetRequiredService<TopicService>(), sp.GetRequiredService<StreamStore>(), SharedLog.Contracts.InternalTopics.Schemas, InternalTopicJournal.CompactedForever),
            sp.GetRequiredService<ILogger<SchemaRegistry>>()));
        services.AddSingleton<Http.SchemaRegistryApi>();
        services.AddSingleton<Http.RequestBodyBudget>();
        AddContracts(services, builder.Configuration, options, dataDir);
        services.AddSingleton(sp => new HandlerRegistry(sp.GetServices<IApiHandler>()));

        ListenOptions? kafka = null;
        ListenOptions? http = null;
        ListenOptions? registry = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // The actor header is decoded leniently so that bytes that are not UTF-8 reach the contracts API, which refuses
            // them in its own error form (Kestrel answered an empty 400 for them); other headers keep Kestrel's decoding.
            kestrel.RequestHeaderEncodingSelector = name => string.Equals(name, Http.ContractsApi.ActorHeader, StringComparison.OrdinalIgnoreCase) ? LenientUtf8 : null;
            IPAddress address = options.BindAddress;
            kestrel.Listen(address, options.Port, listen =>
            {
                listen.UseConnectionHandler<KafkaConnectionHandler>();
                kafka = listen;
            });
            if (options.HttpPort >= 0)
            {
                kestrel.Listen(address, options.HttpPort, listen => http = listen);
            }

            if (options.RegistryPort >= 0)
            {
                kestrel.Listen(address, options.RegistryPort, listen => registry = listen);
            }
        });

        // Before anything can open the WAL or the metadata (resolving the registry API below opens them).
        DataDirectoryLock directoryLock = DataDirectoryLock.Acquire([dataDir, wal.Directory]);
        WebApplication app;
        try
        {
            app = builder.Build();
        }
        catch
        {
            directoryLock.Dispose();
            throw;
        }

        // Before either port's routes: a web page may not change contracts or schemas on a broker it can reach.
        Http.BrowserRequestGuard.Use(app);
        if (registry is { } registryListener)
        {
            // The registry port answers only the registry API; health and metrics stay on the HTTP port.
            Http.SchemaRegistryApi api = app.Services.GetRequiredService<Http.SchemaRegistryApi>();
            app.MapWhen(context => context.Connection.LocalPort == registryListener.IPEndPoint!.Port, branch => branch.Run(api.HandleAsync));
        }

        // After the registry's branch, which answers in its own error form.
        app.UseStatusCodePages(Http.ContractsApi.AnswerUnroutedAsync);
        app.UseRouting();
        // A failed WAL takes no more produces until a restart: unhealthy, so an orchestrator restarts the broker (Kafka
        // halts when its last log directory fails).
        // HEAD too: load balancers' health checks send it.
        app.MapMethods("/health", [HttpMethods.Get, HttpMethods.Head], (IWriteAheadLog wal) => wal.Failure is { } failure
            ? Results.Text($"unavailable: the WAL failed and accepts no appends until a restart: {failure.Message}\n", statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ok\n"));
        Http.ContractsApi.Map(app);
        app.MapPrometheusScrapingEndpoint("/metrics");

        // Kestrel applies the listen callbacks while building; both are set by now.
        return new BrokerHost(app, kafka ?? throw new InvalidOperationException("Kafka listener not configured."), http, registry, directoryLock);
    }

    /// <summary>Raises (never lowers) the pool's minimum worker threads; see <see cref="BrokerOptions.ThreadPoolMinThreads"/>.</summary>
    private static void RaiseThreadPoolMinimum(int workerThreads)
    {
        ThreadPool.GetMinThreads(out int currentWorkers, out int completionPortThreads);
        if (currentWorkers < workerThreads && !ThreadPool.SetMinThreads(workerThreads, completionPortThreads))
        {
            throw new ArgumentException($"The thread pool refused a minimum of {workerThreads} worker threads (maximum {MaxWorkerThreads()}).");
        }

        static int MaxWorkerThreads()
        {
            ThreadPool.GetMaxThreads(out int workers, out _);
            return workers;
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        IServiceProvider sp = _app.Services;
        if (sp.GetRequiredService<IObjectStore>() is S3ObjectStore s3)
        {
            await s3.EnsureBucketAsync(cancellationToken);
        }

        await sp.GetRequiredService<IMetadataStore>().InitializeAsync(cancellationToken);
        await sp.GetRequiredService<TopicService>().LoadAsync(cancellationToken);
        await sp.GetRequiredService<StreamStore>().StartAsync(cancellationToken);
        GroupLagTracker lag = sp.GetRequiredService<GroupLagTracker>();
        await lag.LoadAsync(sp.GetRequiredService<IMetadataStore>(), cancellationToken);
        sp.GetRequiredService<Http.BrokerMetrics>().ObserveGroupLag(lag.Lags);
        await sp.GetRequiredService<SchemaRegistry>().LoadAsync(cancellationToken);
        await sp.GetRequiredService<ContractStore>().LoadAsync(cancellationToken);
        sp.GetRequiredService<ContractMetrics>().ObserveQuarantine(sp.GetRequiredService<QuarantineWriter>().Backlogs);
        TimeSpan summaryInterval = TimeSpan.FromSeconds(sp.GetRequiredService<IOptions<BrokerOptions>>().Value.ContractSummaryIntervalSeconds);
        ILogger<BrokerHost> hostLogger = sp.GetRequiredService<ILogger<BrokerHost>>();
        _summaries = Background(sp.GetRequiredService<EnforcementSummaryWriter>().RunAsync(summaryInterval, _stopping.Token), "contract enforcement summaries", hostLogger);
        _quarantineAges = Background(RefreshQuarantineAgesAsync(sp.GetRequiredService<QuarantineWriter>(), sp.GetRequiredService<ContractStore>(), summaryInterval, hostLogger, _stopping.Token), "quarantine ages", hostLogger);
        long[] streamIds = [.. sp.GetRequiredService<TopicService>().All.SelectMany(t => t.Partitions).Select(p => p.StreamId)];
        _producerSnapshots = Background(sp.GetRequiredService<ProducerStateManager>().RunSnapshotsAsync(
            TimeSpan.FromMilliseconds(sp.GetRequiredService<IOptions<BrokerOptions>>().Value.ProducerSnapshotIntervalMs), streamIds, _stopping.Token), "producer state snapshots", hostLogger);
        _offsetExpiry = Background(sp.GetRequiredService<GroupOffsetExpiry>().RunAsync(
            TimeSpan.FromMilliseconds(sp.GetRequiredService<IOptions<BrokerOptions>>().Value.OffsetsRetentionCheckIntervalMs), _stopping.Token), "offset expiry", hostLogger);
        StorageOptions storage = sp.GetRequiredService<StreamStore>().Options;
        _janitor = Background(sp.GetRequiredService<ObjectJanitor>().RunAsync(storage.CleanupInterval, _stopping.Token), "object cleanup", hostLogger);
        _compactor = Background(sp.GetRequiredService<ObjectCompactor>().RunAsync(storage.CompactionInterval, _stopping.Token), "compaction", hostLogger);
        await _app.StartAsync(cancellationToken);
        _started = true;

        BrokerOptions options = sp.GetRequiredService<IOptions<BrokerOptions>>().Value;
        AdvertisedListener advertised = sp.GetRequiredService<AdvertisedListener>();
        advertised.Host = options.AdvertisedHost ?? options.Host;
        advertised.Port = options.AdvertisedPort ?? KafkaPort;
        advertised.ListenPort = KafkaPort;
    }

    /// <summary>Stops accepting, lets in-flight requests finish, uploads what it can, and closes storage.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (_started)
        {
            _started = false;
            await _app.StopAsync(cancellationToken);
        }

        await ShutDownStorageAsync();
    }

    private async Task ShutDownStorageAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _stopping.CancelAsync();
        await _janitor;
        await _compactor;
        await _summaries;
        await _quarantineAges;
        try
        {
            // Requests are done and storage still open: a last try for audit records the audit topic refused.
            await _app.Services.GetRequiredService<ContractStore>().RetryAuditAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
        }

        await _producerSnapshots;
        await _offsetExpiry;
        _stopping.Dispose();
        IServiceProvider sp = _app.Services;
        StreamStore streams = sp.GetRequiredService<StreamStore>();
        try
        {
            // Requests are done: the last snapshot makes the next start replay nothing.
            await sp.GetRequiredService<ProducerStateManager>().SnapshotAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e)
        {
            LogShutdownSnapshotFailed(sp.GetRequiredService<ILogger<BrokerHost>>(), e);
        }

        try
        {
            // Best effort: whatever is not uploaded now stays in the WAL and is uploaded after restart.
            await streams.UploadAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is TimeoutException or ObjectStoreUnavailableException or IOException)
        {
        }

        await streams.DisposeAsync();
        await sp.GetRequiredService<IWriteAheadLog>().DisposeAsync();
        await sp.GetRequiredService<IMetadataStore>().DisposeAsync();
        sp.GetRequiredService<TopicService>().Dispose();
    }

    private static void AddContracts(IServiceCollection services, ConfigurationManager configuration, BrokerOptions options, string dataDir)
    {
        // Hashing must be keyed, secret and stable across restarts: Contracts:HashKey when set (what a cluster of several
        // brokers needs, one key for all), else a key of this data directory's own.
        string hashKey = configuration["Contracts:HashKey"] ?? Cluster.HashKeyFile.LoadOrCreate(dataDir, legacyKey: $"sharedlog:{options.ClusterId}");
        services.AddSingleton<ContractMetrics>();
        services.AddSingleton(new PrivacyRewriter(System.Text.Encoding.UTF8.GetBytes(hashKey)));
        services.AddSingleton<IPayloadCodec>(new Contracts.Formats.Avro.AvroPayloadCodec());
        services.AddSingleton<IPayloadCodec>(new Contracts.Formats.Json.JsonPayloadCodec());
        services.AddSingleton<IPayloadCodec>(new Contracts.Formats.Protobuf.ProtobufPayloadCodec());
        services.AddSingleton(new Contracts.Formats.Json.JsonPayloadValidatorCache());
        services.AddKeyedSingleton<IJournal>("audit", (sp, _) => new InternalTopicJournal(
            sp.GetRequiredService<TopicService>(), sp.GetRequiredService<StreamStore>(), SharedLog.Contracts.InternalTopics.ContractAudit,
            new Dictionary<string, string>(StringComparer.Ordinal) { ["retention.ms"] = "-1" }));
        services.AddSingleton(sp => new ContractStore(
            new InternalTopicJournal(sp.GetRequiredService<TopicService>(), sp.GetRequiredService<StreamStore>(), SharedLog.Contracts.InternalTopics.Contracts, InternalTopicJournal.CompactedForever),
            sp.GetRequiredKeyedService<IJournal>("audit"),
            sp.GetRequiredService<ILogger<ContractStore>>()));
        services.AddSingleton(sp => new EnforcementSummaryWriter(sp.GetRequiredService<ContractMetrics>(), sp.GetRequiredKeyedService<IJournal>("audit"), sp.GetRequiredService<ILogger<EnforcementSummaryWriter>>()));
        services.AddSingleton<ContractGate>();
        services.AddSingleton<QuarantineWriter>();
        services.AddSingleton(sp => new QuarantineReplay(
            sp.GetRequiredService<TopicService>(), sp.GetRequiredService<StreamStore>(), sp.GetRequiredService<IMetadataStore>(), sp.GetRequiredService<GroupLagTracker>(), sp.GetRequiredService<ContractStore>(), sp.GetRequiredService<HandlerRegistry>(),
            sp.GetRequiredKeyedService<IJournal>("audit"), sp.GetRequiredService<ContractMetrics>(), sp.GetRequiredService<ILogger<QuarantineReplay>>()));
    }

    /// <summary>
    /// At start and then each interval: the quarantine topics' oldest ages, and audit records of contract changes the audit
    /// topic refused. The first round runs at once, off the start path: after a restart the backlog gauges would otherwise be
    /// missing for an interval.
    /// </summary>
    private static async Task RefreshQuarantineAgesAsync(QuarantineWriter quarantine, ContractStore contracts, TimeSpan interval, ILogger logger, CancellationToken cancellationToken)
    {
        async Task RoundAsync(CancellationToken ct)
        {
            await contracts.RetryAuditAsync(ct);
            await quarantine.RefreshOldestAsync(ct);
        }

        await Task.Yield();
        try
        {
            await RoundAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping during the first round: the shutdown awaits this task and must go on.
            return;
        }
        catch (Exception e)
        {
            LogQuarantineRefreshFailed(logger, e);
        }

        await PeriodicRounds.RunAsync(interval, (_, ct) => RoundAsync(ct), e => LogQuarantineRefreshFailed(logger, e), cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Refreshing the quarantine backlog ages (or retrying refused contract audit records) failed; the next round tries again")]
    private static partial void LogQuarantineRefreshFailed(ILogger logger, Exception error);

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
            await _app.DisposeAsync();
        }
        finally
        {
            _directoryLock.Dispose(); // last: the WAL and the metadata are closed
        }
    }

    private static LocalDirectoryObjectStore LocalObjectStore(LocalObjectStoreOptions options, ILogger logger)
    {
        var store = new LocalDirectoryObjectStore(options);
        if (store.UsesDirectIo)
        {
            LogLocalObjectStore(logger, options.RootDirectory);
        }
        else
        {
            LogLocalObjectStoreBuffered(logger, options.RootDirectory, store.DirectIoRefusal ?? "the probe gave no reason");
        }

        return store;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Object store is the local directory {Directory}, written with direct I/O")]
    private static partial void LogLocalObjectStore(ILogger logger, string directory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Object store is the local directory {Directory}, written through the page cache (direct I/O not used: {Refusal})")]
    private static partial void LogLocalObjectStoreBuffered(ILogger logger, string directory, string refusal);

    /// <summary>
    /// A background loop, watched: one that ends with an exception is logged when it ends (not found at shutdown), and the
    /// task kept for the shutdown to wait on never throws, so a failed loop does not skip the WAL's and the stores' closing.
    /// </summary>
    private Task Background(Task loop, string name, ILogger logger) =>
        loop.ContinueWith(
            ended =>
            {
                if (ended.Exception is { } failure)
                {
                    LogBackgroundLoopFailed(logger, name, failure.GetBaseException());
                }
                else if (ended.IsCanceled && !_stopping.IsCancellationRequested)
                {
                    // An OperationCanceledException from inside the loop (a client's own timeout) ends it as cancelled, not failed.
                    LogBackgroundLoopCancelled(logger, name);
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    [LoggerMessage(Level = LogLevel.Error, Message = "The broker's {Loop} loop stopped with an error and does not run again until a restart")]
    private static partial void LogBackgroundLoopFailed(ILogger logger, string loop, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "The broker's {Loop} loop was cancelled while the broker runs, and does not run again until a restart")]
    private static partial void LogBackgroundLoopCancelled(ILogger logger, string loop);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Producer state snapshot at shutdown failed; the next start replays the log from the previous snapshot")]
    private static partial void LogShutdownSnapshotFailed(ILogger logger, Exception exception);
}
