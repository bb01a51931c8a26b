using SharedLog.Protocol;
using SharedLog.Protocol.Messages;

namespace SharedLog.Broker.Coordinators;

/// <summary>
/// Incremental fetch sessions (KIP-227). A session remembers the partitions a consumer fetches, so
/// follow-up requests carry only changes and responses only partitions with news. Bounded, as Kafka's
/// (max.incremental.fetch.session.cache.slots): when full, a new session takes the place of one idle for
/// <paramref name="evictableAfter"/> (min.incremental.fetch.session.eviction.ms, 2 minutes) or of a smaller one at
/// least that old; otherwise the consumer is served without a session, so active consumers do not evict each other in
/// turn (a young session is safe, as in Kafka, or consumers opening sessions would push each other out on every fetch).
/// Session ids count up from a random start (<paramref name="firstSessionId"/> for tests) and go round; sessions age by
/// <paramref name="time"/> (the system clock, or a test's).
/// </summary>
public sealed class FetchSessionCache(int maxSessions = 1000, TimeSpan? evictableAfter = null, int? firstSessionId = null, TimeProvider? time = null)
{
    private readonly TimeSpan _evictableAfter = evictableAfter ?? TimeSpan.FromMinutes(2);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    private readonly Dictionary<int, FetchSession> _sessions = [];
    private readonly Lock _sync = new();
    private int _nextId = firstSessionId ?? Random.Shared.Next(1, int.MaxValue / 2);

    /// <summary>Number of live sessions (for tests and metrics).</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _sessions.Count;
            }
        }
    }

    /// <summary>
    /// Applies the request's session fields: returns the session to use (null for a sessionless full
    /// fetch), whether the response is incremental, or the error to answer with.
    /// </summary>
    public (FetchSession? Session, bool Incremental, ErrorCode Error) Resolve(FetchRequest request, short version)
    {
        lock (_sync)
        {
            if (request.SessionId == 0)
            {
                if (request.SessionEpoch == -1)
                {
                    return (null, false, ErrorCode.None);
                }

                if (request.SessionEpoch != 0)
                {
                    // As Kafka: an incremental fetch (epoch past 0) names a session, and there is none with id 0.
                    return (null, false, ErrorCode.FetchSessionIdNotFound);
                }

                return (TryCreate(request, version), false, ErrorCode.None);
            }

            // A full fetch naming a session (epoch -1 closes it, 0 starts a new one) is served whether or not the
            // session is still here, as Kafka does: after a broker restart the Java client closes its old session so.
            if (request.SessionEpoch == -1)
            {
                _sessions.Remove(request.SessionId);
                return (null, false, ErrorCode.None);
            }

            if (request.SessionEpoch == 0)
            {
                _sessions.Remove(request.SessionId);
                return (TryCreate(request, version), false, ErrorCode.None);
            }

            if (!_sessions.TryGetValue(request.SessionId, out FetchSession? session))
            {
                return (null, false, ErrorCode.FetchSessionIdNotFound);
            }

            if (request.SessionEpoch != session.NextEpoch)
            {
                return (null, false, ErrorCode.InvalidFetchSessionEpoch);
            }

            if (session.UsesTopicIds != UsesTopicIds(version))
            {
                // As Kafka: a session keeps partitions by topic id (v13+) or by name, and a request of the other kind
                // would add a second entry for a partition it already holds. The session is left as it was.
                return (null, false, ErrorCode.FetchSessionTopicIdError);
            }

            session.Update(request, version);
            if (session.Partitions.Count == 0)
            {
                // As Kafka: a session left without partitions (all forgotten) is closed, and this fetch served without one.
                _sessions.Remove(session.Id);
                return (null, false, ErrorCode.None);
            }

            session.NextEpoch = session.NextEpoch == int.MaxValue ? 1 : session.NextEpoch + 1;
            session.LastUsed = _time.GetUtcNow().UtcDateTime;
            return (session, true, ErrorCode.None);
        }
    }

    private static bool UsesTopicIds(short version) => version >= 13;

    /// <summary>A new session for the request, or null (a sessionless fetch) when the cache is full of sessions it may not evict.</summary>
    private FetchSession? TryCreate(FetchRequest request, short version)
    {
        if (_sessions.Count >= maxSessions && !TryEvictFor(request.Topics.Sum(t => t.Partitions.Count)))
        {
            return null;
        }

        int id;
        do
        {
            id = _nextId;
            _nextId = _nextId == int.MaxValue ? 1 : _nextId + 1;
        }
        while (_sessions.ContainsKey(id));

        var session = new FetchSession(id, UsesTopicIds(version), _time.GetUtcNow().UtcDateTime);
        session.Update(request, version);
        _sessions[id] = session;
        return session;
    }

    /// <summary>
    /// Evicts the session idle longest if it has been idle long enough, else the smallest of those created long enough
    /// ago if it is smaller than the new one.
    /// </summary>
    private bool TryEvictFor(int newPartitions)
    {
        DateTime now = _time.GetUtcNow().UtcDateTime;
        FetchSession? victim = _sessions.Values.MinBy(s => s.LastUsed);
        if (victim is null || now - victim.LastUsed < _evictableAfter)
        {
            victim = null;
            foreach (FetchSession session in _sessions.Values)
            {
                if (now - session.Created >= _evictableAfter && (victim is null || session.Partitions.Count < victim.Partitions.Count))
                {
                    victim = session;
                }
            }

            if (victim is null || victim.Partitions.Count >= newPartitions)
            {
                return false;
            }
        }

        _sessions.Remove(victim.Id);
        return true;
    }
}

/// <summary>One session: the partitions it fetches, in order, and what the consumer last saw of each.</summary>
public sealed class FetchSession(int id, bool usesTopicIds, DateTime created)
{
    public int Id { get; } = id;

    /// <summary>Whether the session was opened by a request naming topics by id (Fetch v13+), which all its requests must do.</summary>
    public bool UsesTopicIds { get; } = usesTopicIds;

    public int NextEpoch { get; set; } = 1;

    public DateTime LastUsed { get; set; } = created;

    /// <summary>When the session was opened: only a session older than the eviction time may be evicted for a larger one.</summary>
    public DateTime Created { get; } = created;

    /// <summary>Key: topic name (before v13) or topic id text (v13+), and partition index.</summary>
    internal List<SessionPartition> Partitions { get; } = [];

    // The same partitions by key: a request may name hundreds of thousands, and finding each by a scan of the
    // list made one request quadratic, under the cache's lock that every session's fetch takes.
    private readonly Dictionary<(string TopicKey, int Partition), SessionPartition> _byKey = [];

    // A session is used by one fetch at a time from a well-behaved client; a client sending the same session
    // on two connections must not corrupt its order (Kafka locks its sessions too).
    private readonly Lock _sync = new();

    private SessionPartition? Find(string topicKey, int partition) => _byKey.GetValueOrDefault((topicKey, partition));

    internal void Update(FetchRequest request, short version)
    {
        lock (_sync)
        {
            foreach (FetchRequest.FetchTopic topic in request.Topics)
            {
                string key = version >= 13 ? topic.TopicId.ToString() : topic.Topic;
                foreach (FetchRequest.FetchPartition partition in topic.Partitions)
                {
                    SessionPartition? existing = Find(key, partition.Partition);
                    if (existing is null)
                    {
                        var added = new SessionPartition(key, topic.Topic, topic.TopicId, partition.Partition) { FetchOffset = partition.FetchOffset, MaxBytes = partition.PartitionMaxBytes, CurrentLeaderEpoch = partition.CurrentLeaderEpoch };
                        Partitions.Add(added);
                        _byKey[(key, partition.Partition)] = added;
                    }
                    else
                    {
                        existing.FetchOffset = partition.FetchOffset;
                        existing.MaxBytes = partition.PartitionMaxBytes;
                        existing.CurrentLeaderEpoch = partition.CurrentLeaderEpoch;
                    }
                }
            }

            int forgottenCount = 0;
            foreach (FetchRequest.ForgottenTopic forgotten in request.ForgottenTopicsData)
            {
                string key = version >= 13 ? forgotten.TopicId.ToString() : forgotten.Topic;
                foreach (int partition in forgotten.Partitions)
                {
                    forgottenCount += _byKey.Remove((key, partition)) ? 1 : 0;
                }
            }

            if (forgottenCount > 0)
            {
                Partitions.RemoveAll(p => !_byKey.ContainsKey((p.TopicKey, p.Partition)));
            }
        }
    }

    /// <summary>The full request this session stands for, to be served like a sessionless fetch.</summary>
    internal FetchRequest Expand(FetchRequest request)
    {
        lock (_sync)
        {
            var full = new FetchRequest
            {
                MaxWaitMs = request.MaxWaitMs,
                MinBytes = request.MinBytes,
                MaxBytes = request.MaxBytes,
                IsolationLevel = request.IsolationLevel,
            };
            // In the session's order, which Remember rotates: a topic whose partitions are not next to each other
            // appears once per run (Kafka's fetch responses do the same), so the read order is kept exactly.
            FetchRequest.FetchTopic? run = null;
            string? runKey = null;
            foreach (SessionPartition partition in Partitions)
            {
                if (run is null || !string.Equals(runKey, partition.TopicKey, StringComparison.Ordinal))
                {
                    run = new FetchRequest.FetchTopic { Topic = partition.TopicName, TopicId = partition.TopicId, Partitions = [] };
                    runKey = partition.TopicKey;
                    full.Topics.Add(run);
                }

                run.Partitions.Add(new FetchRequest.FetchPartition { Partition = partition.Partition, FetchOffset = partition.FetchOffset, PartitionMaxBytes = partition.MaxBytes, CurrentLeaderEpoch = partition.CurrentLeaderEpoch });
            }

            return full;
        }
    }

    /// <summary>Keeps, in an incremental response, only partitions with records, errors, or changed offsets.</summary>
    internal void Trim(FetchResponse response, short version)
    {
        lock (_sync)
        {
            foreach (FetchResponse.FetchableTopicResponse topic in response.Responses)
            {
                string key = version >= 13 ? topic.TopicId.ToString() : topic.Topic;
                topic.Partitions.RemoveAll(p =>
                {
                    SessionPartition? known = Find(key, p.PartitionIndex);
                    bool unchanged = known is not null && p.ErrorCode == 0 && (p.Records?.Length ?? 0) == 0
                        && known.HighWatermark == p.HighWatermark && known.LogStartOffset == p.LogStartOffset;
                    return unchanged;
                });
            }

            response.Responses.RemoveAll(t => t.Partitions.Count == 0);
        }
    }

    /// <summary>
    /// Remembers what the consumer was told, so the next incremental response can leave it out, and moves the
    /// partitions that returned records to the end of the session's order, as Kafka does: the next fetch reads
    /// the others first, so when a response fills up at max_bytes, the same partitions do not take it every time.
    /// </summary>
    internal void Remember(FetchResponse response, short version)
    {
        lock (_sync)
        {
            List<SessionPartition>? served = null;
            foreach (FetchResponse.FetchableTopicResponse topic in response.Responses)
            {
                string key = version >= 13 ? topic.TopicId.ToString() : topic.Topic;
                foreach (FetchResponse.PartitionData p in topic.Partitions)
                {
                    if (Find(key, p.PartitionIndex) is { } known)
                    {
                        // As Kafka: after an error the partition is sent again once the error is gone, even with the same
                        // high watermark (a consumer reset to the end after OFFSET_OUT_OF_RANGE hears that it is there).
                        known.HighWatermark = p.ErrorCode == 0 ? p.HighWatermark : -1;
                        known.LogStartOffset = p.LogStartOffset;
                        if (p.Records is { Length: > 0 })
                        {
                            known.Served = true;
                            (served ??= []).Add(known);
                        }
                    }
                }
            }

            if (served is null)
            {
                return;
            }

            Partitions.RemoveAll(static p => p.Served);
            foreach (SessionPartition partition in served)
            {
                partition.Served = false;
                Partitions.Add(partition);
            }
        }
    }
}

internal sealed class SessionPartition(string topicKey, string topicName, Guid topicId, int partition)
{
    public string TopicKey { get; } = topicKey;

    public string TopicName { get; } = topicName;

    public Guid TopicId { get; } = topicId;

    public int Partition { get; } = partition;

    public long FetchOffset { get; set; }

    public int MaxBytes { get; set; }

    /// <summary>The leader epoch the client last said it believes current (KIP-320), checked on every fetch of the session, as Kafka's cached partition keeps it.</summary>
    public int CurrentLeaderEpoch { get; set; } = -1;

    public long HighWatermark { get; set; } = -1;

    public long LogStartOffset { get; set; } = -1;

    /// <summary>Marks, while a response is remembered, the partitions that returned records.</summary>
    public bool Served { get; set; }
}
