using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using SharedLog.Broker.Handlers;
using SharedLog.Broker.Network;

namespace SharedLog.Broker;

/// <summary>
/// Builds and runs the broker: one host serving the Kafka listener (Kestrel connection handler) and the
/// HTTP port (health). Used by Program and, in-process on free ports, by the integration tests.
/// </summary>
public sealed class BrokerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ListenOptions _kafkaListener;
    private readonly ListenOptions? _httpListener;

    private BrokerHost(WebApplication app, ListenOptions kafkaListener, ListenOptions? httpListener)
    {
        _app = app;
        _kafkaListener = kafkaListener;
        _httpListener = httpListener;
    }

    /// <summary>Kafka port actually bound (differs from the option when it was 0).</summary>
    public int KafkaPort => _kafkaListener.IPEndPoint!.Port;

    public int? HttpPort => _httpListener?.IPEndPoint!.Port;

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

    public static BrokerHost Create(string[] args, Action<ILoggingBuilder>? logging = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Configuration.AddEnvironmentVariables("SHAREDLOG_");
        builder.Configuration.AddCommandLine(args, SwitchMappings);
        logging?.Invoke(builder.Logging);

        var options = new BrokerOptions();
        builder.Configuration.GetSection(BrokerOptions.Section).Bind(options);
        options.Validate();
        builder.Services.AddSingleton(Microsoft.Extensions.Options.Options.Create(options));

        builder.Services.AddSingleton<ApiVersionsHandler>(sp => new ApiVersionsHandler(sp.GetRequiredService<HandlerRegistry>));
        builder.Services.AddSingleton<IApiHandler>(sp => sp.GetRequiredService<ApiVersionsHandler>());
        builder.Services.AddSingleton(sp => new HandlerRegistry(sp.GetServices<IApiHandler>()));

        ListenOptions? kafka = null;
        ListenOptions? http = null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            IPAddress address = IPAddress.Parse(options.Host);
            kestrel.Listen(address, options.Port, listen =>
            {
                listen.UseConnectionHandler<KafkaConnectionHandler>();
                kafka = listen;
            });
            if (options.HttpPort >= 0)
            {
                kestrel.Listen(address, options.HttpPort, listen => http = listen);
            }
        });

        WebApplication app = builder.Build();
        app.MapGet("/health", () => Results.Text("ok\n"));

        // Kestrel applies the listen callbacks while building; both are set by now.
        return new BrokerHost(app, kafka ?? throw new InvalidOperationException("Kafka listener not configured."), http);
    }

    public Task StartAsync(CancellationToken cancellationToken = default) => _app.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
