namespace SharedLog.Contracts.Policy;

/// <summary>
/// Bounds the work of checking a contract's privacy rules against the schemas it admits, which runs at apply while the
/// contract store's writer is held: rules times sides times versions times schema nodes made a review's 39 KB contract
/// (1,000 paths over ten versions of a 12,000-branch Avro union) take 34 s, every other contract change waiting. Each
/// schema node a walk of the check enters counts one step; past the budget the check ends and the contract is refused.
/// </summary>
internal sealed class PrivacyCheckBudget : IStepLimit
{
    /// <summary>Most schema nodes one check enters: about half a second of walking on the development VM.</summary>
    public const int MaxStepsPerCheck = 5_000_000;

    public static int MaxSteps => MaxStepsPerCheck;

    /// <summary>Starts counting on this thread; walks outside a check (the gate's tag walks) count nothing.</summary>
    public static void Start() => ThreadStepBudget<PrivacyCheckBudget>.Start();

    public static void Stop() => ThreadStepBudget<PrivacyCheckBudget>.Stop();

    /// <summary>Counts one schema node entered; past the budget the check ends with <see cref="ExceededException"/>.</summary>
    public static void Step()
    {
        if (!ThreadStepBudget<PrivacyCheckBudget>.TryCharge(1))
        {
            throw new ExceededException();
        }
    }

    /// <summary>The check went past <see cref="MaxStepsPerCheck"/> (not an <see cref="InvalidOperationException"/>, which the walks catch for their own limits).</summary>
    public sealed class ExceededException : Exception;
}
