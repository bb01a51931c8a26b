using System.Reflection;
using System.Runtime.ExceptionServices;

namespace SharedLog.Storage.Tests.Objects;

/// <summary>
/// Fault injection for any interface (metadata store, object store) without writing out every member:
/// each call goes to <c>around</c> with the method, its arguments and a way to make the real call.
/// </summary>
public static class Intercept
{
    public static T Wrap<T>(T inner, Func<MethodInfo, object?[], Func<object?>, object?> around)
        where T : class
    {
        T proxy = DispatchProxy.Create<T, InterceptProxy<T>>();
        ((InterceptProxy<T>)(object)proxy).Init(inner, around);
        return proxy;
    }
}

/// <summary>The proxy behind <see cref="Intercept.Wrap"/>; public because the runtime derives a type from it.</summary>
public class InterceptProxy<T> : DispatchProxy
    where T : class
{
    private T _inner = null!;
    private Func<MethodInfo, object?[], Func<object?>, object?> _around = null!;

    internal void Init(T inner, Func<MethodInfo, object?[], Func<object?>, object?> around)
    {
        _inner = inner;
        _around = around;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        object?[] arguments = args ?? [];
        return _around(targetMethod, arguments, () =>
        {
            try
            {
                return targetMethod.Invoke(_inner, arguments);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                ExceptionDispatchInfo.Throw(e.InnerException);
                throw;
            }
        });
    }
}
