using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.IntegrationTests;

/// <summary>The broker's Kafka listener: framing, ApiVersions negotiation and hostile input.</summary>
public class BrokerNetworkTests
{
    [Fact]
    public async Task ApiVersionsListsTheServedApis()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest { ClientSoftwareName = "raw", ClientSoftwareVersion = "1" }, 3, 11);
        (int correlation, byte[] body) = await client.ReceiveAsync(0);
        Assert.Equal(11, correlation);
        var response = new ApiVersionsResponse().ReadFrom(body, 3);
        Assert.Equal((short)ErrorCode.None, response.ErrorCode);
        ApiVersionsResponse.ApiVersion apiVersions = Assert.Single(response.ApiKeys, k => k.ApiKey == (short)ApiKey.ApiVersions);
        Assert.Equal(4, apiVersions.MaxVersion);
    }

    [Fact]
    public async Task UnknownApiVersionsVersionIsAnsweredAtV0WithTheList()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);

        // A future client asks with ApiVersions v99: header v1 layout, empty body.
        byte[] frame = [0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 5, 0, 0];
        await client.SendRawAsync(frame);
        (int correlation, byte[] body) = await client.ReceiveAsync(0);
        Assert.Equal(5, correlation);
        var response = new ApiVersionsResponse().ReadFrom(body, 0);
        Assert.Equal((short)ErrorCode.UnsupportedVersion, response.ErrorCode);
        Assert.Contains(response.ApiKeys, k => k.ApiKey == (short)ApiKey.ApiVersions);
    }

    [Fact]
    public async Task PipelinedRequestsAreAnsweredInOrder()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        for (int i = 0; i < 20; i++)
        {
            await client.SendAsync(new ApiVersionsRequest(), 2, 100 + i);
        }

        for (int i = 0; i < 20; i++)
        {
            (int correlation, _) = await client.ReceiveAsync(0);
            Assert.Equal(100 + i, correlation);
        }
    }

    [Theory]
    [InlineData(new byte[] { 0x7F, 0xFF, 0xFF, 0xFF })]                       // declares 2 GiB
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF })]                       // negative size
    [InlineData(new byte[] { 0, 0, 0, 2, 0, 3 })]                             // shorter than a header
    [InlineData(new byte[] { 0, 0, 0, 8, 0x7F, 0x00, 0, 0, 0, 0, 0, 1 })]     // unknown API key
    [InlineData(new byte[] { 0, 0, 0, 10, 0, 3, 0, 1, 0, 0, 0, 1, 0x7F, 0xFF })] // Metadata v1, client id claims 32 KiB
    public async Task HostileFramesCloseTheConnectionAndTheBrokerKeepsServing(byte[] frame)
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using (RawKafkaClient hostile = await RawKafkaClient.ConnectAsync(broker.BootstrapServers))
        {
            await hostile.SendRawAsync(frame);
            Assert.True(await hostile.IsClosedByServerAsync(), "the broker should close a connection that sends this frame");
        }

        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest(), 3, 1);
        (int correlation, _) = await client.ReceiveAsync(0);
        Assert.Equal(1, correlation);
    }

    [Fact]
    public async Task RandomBytesNeverCrashTheBroker()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        var random = new Random(7);
        for (int i = 0; i < 50; i++)
        {
            using RawKafkaClient hostile = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
            byte[] junk = new byte[4 + random.Next(200)];
            random.NextBytes(junk);
            junk[0] = 0; // keep declared sizes small so the broker reads the junk rather than waiting for more
            junk[1] = 0;
            await hostile.SendRawAsync(junk);
        }

        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await client.SendAsync(new ApiVersionsRequest(), 3, 9);
        (int correlation, _) = await client.ReceiveAsync(0);
        Assert.Equal(9, correlation);
    }

    [Fact]
    public async Task AThousandConnectionsOpenedAndDroppedLeaveTheBrokerServing()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        string[] parts = broker.BootstrapServers.Split(':');
        int port = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        for (int round = 0; round < 10; round++)
        {
            var clients = new List<System.Net.Sockets.TcpClient>();
            for (int i = 0; i < 100; i++)
            {
                var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(10));
                if (i % 2 == 0)
                {
                    // Half of them leave a partial frame behind before vanishing.
                    await client.GetStream().WriteAsync(new byte[] { 0, 0, 0, 20, 0, 18 });
                }

                clients.Add(client);
            }

            clients.ForEach(c => c.Dispose());
        }

        using RawKafkaClient healthy = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        await healthy.SendAsync(new ApiVersionsRequest(), 3, 77);
        (int correlation, _) = await healthy.ReceiveAsync(0);
        Assert.Equal(77, correlation);
    }

    [Fact]
    public async Task GroupRequestsWithUnknownMembersGetKafkaErrors()
    {
        await using BrokerFixture broker = await BrokerFixture.StartAsync();
        using RawKafkaClient client = await RawKafkaClient.ConnectAsync(broker.BootstrapServers);
        var join = new JoinGroupRequest
        {
            GroupId = "g",
            MemberId = "no-such-member",
            SessionTimeoutMs = 10_000,
            RebalanceTimeoutMs = 10_000,
            ProtocolType = "consumer",
            Protocols = [new JoinGroupRequest.JoinGroupRequestProtocol { Name = "range", Metadata = [0, 1] }],
        };
        await client.SendAsync(join, 5, 1);
        (_, byte[] joinBody) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.UnknownMemberId, new JoinGroupResponse().ReadFrom(joinBody, 5).ErrorCode);

        await client.SendAsync(new HeartbeatRequest { GroupId = "g", GenerationId = 1, MemberId = "nobody" }, 3, 2);
        (_, byte[] heartbeatBody) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.UnknownMemberId, new HeartbeatResponse().ReadFrom(heartbeatBody, 3).ErrorCode);

        await client.SendAsync(new SyncGroupRequest { GroupId = "g", GenerationId = 1, MemberId = "nobody" }, 3, 3);
        (_, byte[] syncBody) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.UnknownMemberId, new SyncGroupResponse().ReadFrom(syncBody, 3).ErrorCode);

        join.MemberId = string.Empty;
        join.SessionTimeoutMs = 10;
        await client.SendAsync(join, 5, 4);
        (_, byte[] badTimeout) = await client.ReceiveAsync(0);
        Assert.Equal((short)ErrorCode.InvalidSessionTimeout, new JoinGroupResponse().ReadFrom(badTimeout, 5).ErrorCode);
    }
}
