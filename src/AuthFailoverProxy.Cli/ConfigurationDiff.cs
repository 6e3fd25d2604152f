using AuthFailoverProxy.Admin;

namespace AuthFailoverProxy.Cli;

/// <summary>One difference between the configuration in force and a file, and what applying the file would do about it.</summary>
/// <param name="Pool">The pool.</param>
/// <param name="Key">The key, or null for a change of the pool itself.</param>
/// <param name="Fingerprint">The key's fingerprint (the file's, for a key that is new or replaced).</param>
/// <param name="Change">
/// <c>key-added</c>, <c>key-removed</c>, <c>key-replaced</c> (a new secret, scheme or account: checked afresh),
/// <c>key-reranked</c>, <c>key-kept</c> (added at runtime: a file never touches it), <c>key-name-taken</c>,
/// <c>pool-added</c>, <c>pool-removed</c> or <c>pool-changed</c> (these three need a restart).
/// </param>
/// <param name="Detail">What changes and what follows, in words.</param>
internal sealed record ConfigurationChange(string Pool, string? Key, string? Fingerprint, string Change, string Detail);

/// <summary>
/// Compares the configuration in force (<c>GET /admin/config</c>) with a file's, both captured by
/// <see cref="ConfigurationReport.Capture"/>, and says what the proxy does when the file is applied: keys join, leave,
/// are replaced or re-ranked without a restart (as the proxy's reload does it), while a pool's own settings need one.
/// </summary>
internal static class ConfigurationDiff
{
    public static List<ConfigurationChange> Compare(ConfigurationReport running, ConfigurationReport file)
    {
        var changes = new List<ConfigurationChange>();
        var before = running.Pools.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        var after = file.Pools.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var name in before.Keys.Union(after.Keys, StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase))
        {
            switch (before.GetValueOrDefault(name), after.GetValueOrDefault(name))
            {
                case (null, { } added):
                    changes.Add(new(added.Name, null, null, "pool-added", $"new pool ({added.Kind}, {added.Upstream}, {added.Keys.Count} key(s)): it serves only after a restart."));
                    break;
                case ({ } removed, null):
                    changes.Add(new(removed.Name, null, null, "pool-removed", "not in the file: it keeps serving with its keys until a restart."));
                    break;
                case ({ } was, { } now):
                    ComparePool(was, now, changes);
                    break;
            }
        }

        return changes;
    }

    private static void ComparePool(PoolShape was, PoolShape now, List<ConfigurationChange> changes)
    {
        var settings = new List<string>();
        void Setting(string name, string? from, string? to)
        {
            if (!string.Equals(from, to, StringComparison.Ordinal))
            {
                settings.Add($"{name} {from ?? "(none)"} → {to ?? "(none)"}");
            }
        }

        Setting("Kind", was.Kind, now.Kind);
        Setting("Upstream", was.Upstream, now.Upstream);
        Setting("PathPrefix", was.PathPrefix, now.PathPrefix);
        Setting("Default", was.Default ? "true" : "false", now.Default ? "true" : "false");
        Setting("Selection", was.Selection, now.Selection);
        Setting("Fallback", was.Fallback, now.Fallback);
        Setting("FallbackModel", was.FallbackModel, now.FallbackModel);
        if (settings.Count > 0)
        {
            changes.Add(new(was.Name, null, null, "pool-changed", string.Join(", ", settings) + ": takes effect only after a restart."));
        }

        var running = was.Keys.ToDictionary(k => k.Name, StringComparer.Ordinal);
        foreach (var key in now.Keys)
        {
            if (!running.Remove(key.Name, out var current))
            {
                changes.Add(new(now.Name, key.Name, key.Fingerprint, "key-added", $"new key ({key.Scheme}, priority {key.Priority}): checked, then in service (a key the upstream rejects enters dead)."));
            }
            else if (current.AddedAtRuntime)
            {
                changes.Add(new(now.Name, key.Name, key.Fingerprint, "key-name-taken", $"a key added at runtime ({current.Fingerprint}) holds this name: the file's key is ignored while it is there."));
            }
            else if (Replaced(current, key) is { } why)
            {
                changes.Add(new(now.Name, key.Name, key.Fingerprint, "key-replaced", $"{why}: checked afresh, then it replaces the key in service."));
            }
            else if (current.Priority != key.Priority)
            {
                changes.Add(new(now.Name, key.Name, key.Fingerprint, "key-reranked", $"priority {current.Priority} → {key.Priority}: it keeps its health."));
            }
        }

        foreach (var left in running.Values.OrderBy(k => k.Priority))
        {
            changes.Add(left.AddedAtRuntime
                ? new(now.Name, left.Name, left.Fingerprint, "key-kept", $"added at runtime ({left.Source}): a file never touches it.")
                : new(now.Name, left.Name, left.Fingerprint, "key-removed", "not in the file: it leaves service."));
        }
    }

    private static string? Replaced(KeyShape was, KeyShape now)
    {
        var why = new List<string>();
        if (was.Fingerprint != now.Fingerprint)
        {
            why.Add($"new secret ({was.Fingerprint} → {now.Fingerprint})");
        }

        if (was.Scheme != now.Scheme)
        {
            why.Add($"scheme {was.Scheme} → {now.Scheme}");
        }

        if (was.OpenAIOrganization != now.OpenAIOrganization || was.OpenAIProject != now.OpenAIProject)
        {
            why.Add("another OpenAI organization or project");
        }

        if (why.Count > 0 && was.Priority != now.Priority)
        {
            why.Add($"priority {was.Priority} → {now.Priority}");
        }

        return why.Count > 0 ? string.Join(", ", why) : null;
    }
}
