using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace SharedLog.Broker.Http;

/// <summary>
/// Bytes of large registry request bodies (schemas) the broker holds at once, <see cref="BrokerOptions.MaxRequestBodyBytesInFlight"/>. A request declaring more than
/// <see cref="UnbudgetedBytes"/>, or no length (chunked), reserves its declared length (its size limit when it declares
/// none) before its body is read, and holds it until it is answered, so many clients sending large bodies at once wait
/// their turn instead of making the broker hold all of them (forty 16 MB bodies sent at once: peak RSS 2.6 GB without
/// the budget, 1.1 GB with it; bench/RESULTS.md). Requests wait in arrival order; past <see cref="QueuedBudgets"/>
/// budgets' worth of waiting requests, further ones are answered 429 at once. Smaller bodies (any schema of usual
/// size; contract files and replay requests are smaller still, and take no part) are not held back, so slow senders of
/// large bodies, who hold the budget while their bytes trickle in, cannot keep them waiting; their memory is bounded
/// per connection only (Kestrel's buffer, the body read and its text, a few MiB each), as before the budget.
/// </summary>
public sealed class RequestBodyBudget : IDisposable
{
    /// <summary>The budget is counted in units of this many bytes (a limiter counts in int permits).</summary>
    private const int UnitBytes = 1024;

    /// <summary>Bodies declaring at most this many bytes take no part of the budget: Kestrel's own buffer per connection (MaxRequestBufferSize).</summary>
    public const long UnbudgetedBytes = 1024 * 1024;

    /// <summary>Requests that may wait for the budget, in budgets' worth of their declared bodies.</summary>
    public const int QueuedBudgets = 16;

    private readonly ConcurrencyLimiter _limiter;
    private readonly int _units;

    public RequestBodyBudget(IOptions<BrokerOptions> options)
    {
        long budget = options.Value.MaxRequestBodyBytesInFlight;
        _units = (int)Math.Clamp((budget / UnitBytes) + (budget % UnitBytes == 0 ? 0 : 1), 1, int.MaxValue / QueuedBudgets);
        _limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = _units,
            QueueLimit = _units * QueuedBudgets,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>
    /// Reserves the bytes <paramref name="context"/>'s body may take (its Content-Length, else <paramref name="maxBytes"/>;
    /// a body larger than the whole budget takes all of it) until the response is done; nothing for a body of at most
    /// <see cref="UnbudgetedBytes"/>. False when too many requests wait already: the caller answers 429. Throws
    /// <see cref="OperationCanceledException"/> when the client goes away first.
    /// </summary>
    public async ValueTask<bool> ReserveAsync(HttpContext context, long maxBytes)
    {
        // No length and no chunked coding (an HTTP/1.1 POST without a body): nothing to read, nothing to hold.
        bool noBody = context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false };
        long bytes = noBody ? 0 : Math.Min(context.Request.ContentLength ?? maxBytes, maxBytes);
        if (bytes <= UnbudgetedBytes)
        {
            return true;
        }

        int units = (int)Math.Clamp((bytes + UnitBytes - 1) / UnitBytes, 1, _units);
        RateLimitLease lease = await _limiter.AcquireAsync(units, context.RequestAborted);
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            return false;
        }

        context.Response.RegisterForDispose(lease);
        return true;
    }

    /// <summary>The message of the 429 answered when <see cref="ReserveAsync"/> says no.</summary>
    public const string BusyMessage = "Too many large request bodies are waiting to be read; retry later.";

    public void Dispose() => _limiter.Dispose();
}
