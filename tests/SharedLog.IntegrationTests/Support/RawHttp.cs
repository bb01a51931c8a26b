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

    /// <summary>A request whose head is sent and whose body the test sends when it chooses, read as its answers arrive.</summary>
    public sealed class HeldRequest : IDisposable
    {
        private readonly TcpClient _socket;
        private readonly NetworkStream _stream;
        private readonly StringBuilder _received = new();
        private readonly byte[] _buffer = new byte[16 * 1024];
        private Task<int>? _pendingRead;

        private HeldRequest(TcpClient socket)
        {
            _socket = socket;
            _stream = socket.GetStream();
        }

        /// <summary>What the server has sent so far (as read by <see cref="WaitForAsync"/> or <see cref="Poll"/>).</summary>
        public string Received => _received.ToString();

        public static async Task<HeldRequest> OpenAsync(int port, string head, CancellationToken cancellationToken)
        {
            var socket = new TcpClient();
            await socket.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            var held = new HeldRequest(socket);
            await held.SendAsync(Encoding.ASCII.GetBytes(head), cancellationToken);
            return held;
        }

        public async Task SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken) => await _stream.WriteAsync(bytes, cancellationToken);

        /// <summary>Reads until what was received holds <paramref name="marker"/>; false if the server closed first.</summary>
        public async Task<bool> WaitForAsync(string marker, CancellationToken cancellationToken)
        {
            while (!_received.ToString().Contains(marker, StringComparison.Ordinal))
            {
                _pendingRead ??= _stream.ReadAsync(_buffer, CancellationToken.None).AsTask(); // a read left pending is taken up by the next wait
                int read = await _pendingRead.WaitAsync(cancellationToken);
                _pendingRead = null;
                if (read == 0)
                {
                    return false;
                }

                _received.Append(Encoding.UTF8.GetString(_buffer, 0, read));
            }

            return true;
        }

        /// <summary>Takes in what has arrived without waiting for more.</summary>
        public void Poll()
        {
            while (_pendingRead is null ? _socket.Available > 0 : _pendingRead.IsCompleted)
            {
                _pendingRead ??= _stream.ReadAsync(_buffer, CancellationToken.None).AsTask(); // a read left pending is taken up by the next wait
                int read = _pendingRead.GetAwaiter().GetResult();
                _pendingRead = null;
                if (read == 0)
                {
                    return;
                }

                _received.Append(Encoding.UTF8.GetString(_buffer, 0, read));
            }
        }

        public void Dispose() => _socket.Dispose();
    }
}
