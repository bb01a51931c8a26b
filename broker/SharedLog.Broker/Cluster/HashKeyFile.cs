using System.Security.Cryptography;

namespace SharedLog.Broker.Cluster;

/// <summary>
/// The key of the contracts' keyed hash (privacy action <c>hash</c>) when none is configured: 32 random bytes made at
/// the first start and kept in the data directory, readable by the broker's user only. A key derived from something
/// clients can see (the cluster id is in every Metadata response) would let anyone recompute the hashes of guessed
/// values, so it would protect nothing.
/// </summary>
public static class HashKeyFile
{
    public const string FileName = "contracts-hash.key";

    /// <summary>
    /// The key kept in <paramref name="dataDir"/>, made now if there is none. A data directory from before this file
    /// existed (its metadata store is there already) keeps hashing with <paramref name="legacyKey"/>, which it used
    /// until now, so stored hashes still join; the key is written to the file to be replaced by a secret one.
    /// </summary>
    public static string LoadOrCreate(string dataDir, string legacyKey)
    {
        string path = Path.Combine(dataDir, FileName);
        if (File.Exists(path))
        {
            string stored = File.ReadAllText(path).Trim();
            if (stored.Length > 0)
            {
                return stored;
            }
        }

        Directory.CreateDirectory(dataDir);
        bool existingData = File.Exists(Path.Combine(dataDir, BrokerHost.MetadataFileName));
        string key = existingData ? legacyKey : Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        string temporary = path + ".tmp";
        File.WriteAllText(temporary, key + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(temporary, path, overwrite: true);
        return key;
    }
}
