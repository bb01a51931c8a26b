namespace SharedLog.Contracts;

/// <summary>The step limit of a <see cref="ThreadStepBudget{TLimit}"/>.</summary>
internal interface IStepLimit
{
    static abstract int MaxSteps { get; }
}

/// <summary>
/// A per-thread count of work steps, counting between <see cref="Start"/> and <see cref="Stop"/>: walks deep inside a
/// library's evaluation or a recursion charge it without a parameter through every frame. One per limit type.
/// </summary>
internal static class ThreadStepBudget<TLimit>
    where TLimit : IStepLimit
{
    [ThreadStatic]
    private static int _remaining;

    [ThreadStatic]
    private static bool _active;

    /// <summary>Whether steps are being counted on this thread.</summary>
    public static bool Active => _active;

    public static void Start()
    {
        _remaining = TLimit.MaxSteps;
        _active = true;
    }

    public static void Stop() => _active = false;

    /// <summary>False once the steps charged since <see cref="Start"/> pass the limit; always true while not counting.</summary>
    public static bool TryCharge(int steps) => !_active || (_remaining -= steps) >= 0;
}
