using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SharedLog.IntegrationTests;

/// <summary>
/// An HTTP/1.1 exchange written by hand on a socket, for requests an HTTP client will not send (a header line twice, a
/// control character in a header, a body declared but not sent): the server's whole answer, read until it closes.
/// </summary>
internal static class RawHttp
{
    public static async Task<string> ExchangeAsync(int port, string request, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, port, cancel.Token);
        NetworkStream stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), cancel.Token);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync(cancel.Token);
    }
}
