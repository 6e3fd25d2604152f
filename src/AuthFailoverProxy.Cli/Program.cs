using AuthFailoverProxy.Cli;

// afp: the operator's command line for AuthFailoverProxy. Exit codes: 0 done, 1 a failed operation (the proxy refused,
// could not be reached, or a key failed its check), 2 a usage or configuration problem.
return await AfpCommand.RunAsync(args, CliEnvironment.System);
