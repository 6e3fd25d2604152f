using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Options;

namespace AuthFailoverProxy.Hosting;

/// <summary>
/// The checks a configuration passes before the proxy serves with it, shared by the start and by <c>afp check-config</c>
/// (which runs them like <c>nginx -t</c>, without starting anything). <see cref="ProxyApplication.Build"/> runs the shape
/// check and the quick-start variables' checks, then <see cref="Validate"/>: every options validation registered with
/// <c>ValidateOnStart</c> (pools, keys and their files, clients, admin, alerts, Redis, audit…) and the listeners'
/// addresses, all at once. Problems are read by <see cref="ProxyApplication.ConfigurationProblems"/>, each naming the
/// key to fix.
/// </summary>
internal static class ConfigurationCheck
{
    /// <summary>
    /// Runs every check of the built <paramref name="app"/> and throws with all the problems found. Run before anything
    /// resolves its options: the first options resolved would otherwise fail alone, naming one problem of several.
    /// </summary>
    public static void Validate(WebApplication app)
    {
        var failures = new List<Exception>();
        try
        {
            // What Host.StartAsync runs first; it collects the failures of every ValidateOnStart registration.
            app.Services.GetRequiredService<IStartupValidator>().Validate();
        }
        catch (Exception ex)
        {
            failures.Add(ex);
        }

        // The listeners were read when the app was built (it creates its server): Management:Urls, --urls.
        if (app.Services.GetRequiredService<ProxyListeners>().Problems is { Count: > 0 } listeners)
        {
            failures.Add(new OptionsValidationException("Management", typeof(ManagementOptions), listeners));
        }

        if (failures.Count == 1)
        {
            ExceptionDispatchInfo.Throw(failures[0]);
        }

        if (failures.Count > 1)
        {
            throw new AggregateException(failures);
        }
    }

    /// <summary>
    /// Builds the app from <paramref name="args"/> and <paramref name="customize"/> as a start does, without starting it.
    /// Returns every problem, or none and the built app for the caller to use (its keys, say) and dispose.
    /// </summary>
    public static (List<string> Problems, WebApplication? App) Run(string[] args, Action<WebApplicationBuilder>? customize = null)
    {
        try
        {
            return ([], ProxyApplication.Build(args, customize));
        }
        catch (Exception ex)
        {
            var problems = ProxyApplication.ConfigurationProblems(ex);
            // Not a mistake the start would name by its key (a file system failure, say): still a reason not to apply it.
            return (problems.Count > 0 ? problems : [ex.Message], null);
        }
    }
}
