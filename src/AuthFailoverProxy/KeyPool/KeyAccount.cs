using System.Net.Http.Headers;

namespace AuthFailoverProxy.KeyPool;

/// <summary>
/// The account a key is pinned to, where a provider lets a request choose (OpenAI's organization and project). It
/// belongs to the key: the agent's own account headers never go upstream, so no agent can make the provider refuse
/// every key of the pool by naming another organization.
/// </summary>
/// <param name="Organization">The <c>OpenAI-Organization</c> to send, if any.</param>
/// <param name="Project">The <c>OpenAI-Project</c> to send, if any.</param>
public sealed record KeyAccount(string? Organization, string? Project)
{
    /// <summary>Returns the account for these settings, or null when neither is set; a value that cannot go in a header goes to <paramref name="errors"/>.</summary>
    internal static KeyAccount? From(string? organization, string? project, string setting, List<string> errors)
    {
        organization = string.IsNullOrWhiteSpace(organization) ? null : organization.Trim();
        project = string.IsNullOrWhiteSpace(project) ? null : project.Trim();
        foreach (var (value, name) in new[] { (organization, "Organization"), (project, "Project") })
        {
            if (value is not null && value.Any(c => char.IsControl(c) || c > '\u007e'))
            {
                errors.Add($"{setting}{name} must be plain ASCII without line breaks (it is sent as a header).");
                return null;
            }
        }

        return organization is null && project is null ? null : new KeyAccount(organization, project);
    }

    internal void AddTo(HttpRequestHeaders headers)
    {
        if (Organization is not null)
        {
            headers.TryAddWithoutValidation("OpenAI-Organization", Organization);
        }

        if (Project is not null)
        {
            headers.TryAddWithoutValidation("OpenAI-Project", Project);
        }
    }
}
