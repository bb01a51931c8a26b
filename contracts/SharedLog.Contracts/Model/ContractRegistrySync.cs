using SharedLog.Contracts.Registry;

namespace SharedLog.Contracts.Model;

/// <summary>
/// Makes the registry enforce what a contract promises about evolution: applying a contract sets the
/// compatibility level of each subject it names (an explicit subject, or TopicNameStrategy on an exact
/// topic) to the contract's level, so an incompatible schema is refused at registration, before any
/// producer can use it. Subjects of pattern topics or record-name strategies cannot be named ahead and
/// are left alone.
/// </summary>
public static class ContractRegistrySync
{
    /// <summary>The subject a side of the contract names whatever the topic or record: null under a pattern or a record name strategy.</summary>
    public static string? NamedSubject(ContractDefinition definition, SchemaRequirement requirement, bool isKey) =>
        requirement.Subject is null && (definition.IsPattern || requirement.Strategy != SubjectNameStrategy.TopicNameStrategy)
            ? null
            : requirement.SubjectFor(definition.Topic, isKey, null);

    /// <summary>
    /// Why no record can pass a side of a contract yet: its subject has no live version, or none the contract admits. Not a
    /// problem (a contract may come before its schema, and should on a sensitive topic), but a contract every record fails,
    /// and whose privacy paths and rule names nothing has checked, is worth a word to whoever applies or validates it. Null
    /// when a version is there.
    /// </summary>
    public static string? UnservedSide(ContractDefinition definition, bool isKey, string subject, IReadOnlyCollection<int> liveVersions, SchemaRequirement requirement)
    {
        string side = isKey ? "key" : "value";
        string why = liveVersions.Count == 0
            ? $"subject {subject} has no schema registered"
            : !liveVersions.Any(requirement.Admits)
                ? $"subject {subject} has no registered version the contract admits (versions {requirement.VersionsText}; registered: {string.Join(", ", liveVersions.Order())})"
                : "";
        if (why.Length == 0)
        {
            return null;
        }

        string outcome = definition.OnFailure switch
        {
            FailureAction.Quarantine => "quarantined",
            FailureAction.Flag => "flagged (stored with the violation header)",
            FailureAction.Observe => "counted as failing (observe mode stores it)",
            _ => "refused",
        };
        string namesWait = definition.Privacy.Count > 0 || definition.Rules.Count > 0
            ? "; its privacy paths and the names its rules read are checked only then (records fail while a privacy path names no field of the registered schemas): validate the contract again once the schema is registered (contracts validate --registry)"
            : "";
        return $"{side}: {why}, so every record with a {side} fails the contract and is {outcome} until one is{namesWait}";
    }

    /// <summary>
    /// The schemas registered for a side of a contract within its pinned versions, or null when the subject depends on
    /// the topic or record name (a pattern, a record name strategy) or has no live version yet.
    /// </summary>
    public static List<IParsedSchema>? RegisteredSchemas(SchemaRegistry registry, ContractDefinition definition, SchemaRequirement requirement, bool isKey) =>
        RegisteredSchemaIds(registry, definition, requirement, isKey)?.ConvertAll(s => s.Schema);

    /// <summary><see cref="RegisteredSchemas"/> with their ids.</summary>
    public static List<(int Id, IParsedSchema Schema)>? RegisteredSchemaIds(SchemaRegistry registry, ContractDefinition definition, SchemaRequirement requirement, bool isKey)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(requirement);
        if (NamedSubject(definition, requirement, isKey) is not { } subject || !registry.Subjects(includeDeleted: false, subject).Contains(subject))
        {
            return null;
        }

        var schemas = new List<(int Id, IParsedSchema Schema)>();
        foreach (int version in registry.Versions(subject, includeDeleted: false))
        {
            if (requirement.Admits(version)
                && registry.GetVersion(subject, version.ToString(System.Globalization.CultureInfo.InvariantCulture), includeDeleted: false).Id is var id
                && registry.ParsedById(id) is { } parsed)
            {
                schemas.Add((id, parsed));
            }
        }

        return schemas.Count > 0 ? schemas : null;
    }

    /// <summary>
    /// Returns "subject: LEVEL" for each subject whose level was changed. A subject the registry refuses does not stop the
    /// others (the value subject still gets its level when the key's fails); the first failure is thrown after them.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ApplyAsync(ContractDefinition contract, SchemaRegistry registry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(contract);
        ArgumentNullException.ThrowIfNull(registry);
        var changed = new List<string>();
        Exception? failure = null;
        foreach (string subject in NamedSubjects(contract))
        {
            if (registry.SubjectCompatibility(subject) != contract.Compatibility)
            {
                try
                {
                    await registry.SetCompatibilityAsync(subject, contract.Compatibility, cancellationToken);
                    changed.Add($"{subject}: {RegistryNames.Name(contract.Compatibility)}");
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    failure ??= e;
                }
            }
        }

        return failure is null ? changed : throw failure;
    }

    /// <summary>A subject's own compatibility level's name, or null when it follows the registry's global level.</summary>
    public static string? SubjectLevel(SchemaRegistry registry, string subject)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.SubjectCompatibility(subject) is { } level ? RegistryNames.Name(level) : null;
    }

    /// <summary>
    /// Gives subjects a contract no longer binds the level they had before it bound them (removes the subject's own level
    /// when it followed the global one). Returns "subject: LEVEL" (or "subject: global level") for each changed. A subject
    /// the registry refuses does not stop the others; the first failure is thrown after them.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ReleaseAsync(IReadOnlyList<SubjectLevel> released, SchemaRegistry registry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(released);
        ArgumentNullException.ThrowIfNull(registry);
        var changed = new List<string>();
        Exception? failure = null;
        foreach ((string subject, string? level) in released)
        {
            CompatibilityLevel earlier = default;
            if ((level is null && registry.SubjectCompatibility(subject) is null)
                || (level is not null && (!RegistryNames.TryParseLevel(level, out earlier) || registry.SubjectCompatibility(subject) == earlier)))
            {
                continue; // nothing to give back
            }

            try
            {
                if (level is null)
                {
                    await registry.DeleteCompatibilityAsync(subject, cancellationToken);
                }
                else
                {
                    await registry.SetCompatibilityAsync(subject, earlier, cancellationToken);
                }

                changed.Add($"{subject}: {level ?? "global level"}");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failure ??= e;
            }
        }

        return failure is null ? changed : throw failure;
    }

    /// <summary>
    /// Why <see cref="ApplyAsync"/> would fail for <paramref name="contract"/>: a subject whose level it must change is
    /// read-only. Asked before the contract is stored, so a change the registry would refuse is not stored half-done.
    /// </summary>
    public static IReadOnlyList<string> Problems(ContractDefinition contract, SchemaRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(contract);
        ArgumentNullException.ThrowIfNull(registry);
        var problems = new List<string>();
        foreach (string subject in NamedSubjects(contract))
        {
            if (registry.SubjectCompatibility(subject) != contract.Compatibility && !registry.IsWritable(subject))
            {
                problems.Add($"compatibility: subject '{subject}' is read-only in the registry, so its level cannot be set to {RegistryNames.Name(contract.Compatibility)} as the contract requires; change the subject's mode first");
            }
        }

        return problems;
    }

    /// <summary>The subjects a contract names ahead (an explicit subject, or TopicNameStrategy on an exact topic): the ones it sets the level of.</summary>
    public static IEnumerable<string> NamedSubjects(ContractDefinition contract)
    {
        foreach ((bool isKey, SchemaRequirement? requirement) in new[] { (true, contract.Key), (false, contract.Value) })
        {
            if (requirement is null || (requirement.Subject is null && (contract.IsPattern || requirement.Strategy != SubjectNameStrategy.TopicNameStrategy)))
            {
                continue;
            }

            yield return requirement.SubjectFor(contract.Topic, isKey, recordName: null);
        }
    }
}
