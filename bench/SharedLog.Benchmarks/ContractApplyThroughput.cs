using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using SharedLog.Contracts;
using SharedLog.Contracts.Model;

namespace SharedLog.Benchmarks;

/// <summary>
/// Times contract changes in a row, as a pipeline applying many contract files makes them: <c>contracts</c> pattern
/// contracts (with rules and a privacy policy, so each parse does real work), each changed in turn until
/// <c>applies</c> changes are made, over in-memory journals, then a new store's load of that history.
/// </summary>
internal static class ContractApplyThroughput
{
    public static async Task<int> RunAsync(int applies, int contracts)
    {
        var journal = new InMemoryJournal();
        var audit = new InMemoryJournal();
        using var store = new ContractStore(journal, audit, NullLogger<ContractStore>.Instance);
        await store.LoadAsync(CancellationToken.None);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < applies; i++)
        {
            int which = i % contracts;
            ContractChange change = await store.ApplyAsync(ContractText(which, i), "bench", dryRun: false, _ => [], CancellationToken.None);
            if (!change.Changed)
            {
                throw new InvalidOperationException($"apply {i} changed nothing");
            }
        }

        clock.Stop();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{applies} applies over {contracts} contracts: {clock.Elapsed.TotalMilliseconds / applies:F2} ms per apply ({clock.Elapsed.TotalSeconds:F1} s)"));

        // A broker starting with that history.
        using var restarted = new ContractStore(journal, audit, NullLogger<ContractStore>.Instance);
        clock.Restart();
        await restarted.LoadAsync(CancellationToken.None);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"load of the {applies} versions: {clock.Elapsed.TotalMilliseconds:F0} ms"));
        return 0;
    }

    private static string ContractText(int which, int revision) => string.Create(CultureInfo.InvariantCulture, $"""
        topic: "team{which}.*"
        class: sensitive
        owner: team-{which}
        description: revision {revision}
        value:
          schemaType: JSON
        rules:
          - name: amount-positive
            expr: "value.amount > 0"
          - name: currency-known
            expr: "value.currency in ['EUR', 'USD', 'GBP']"
          - name: email-shaped
            expr: "value.email.matches('^[^@]+@[^@]+$')"
        privacy:
          - field: email
            action: hash
        """);
}
