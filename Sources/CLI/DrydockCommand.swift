import ArgumentParser
import DrydockProcess

/// `drydock`: remote container builds with a shared, persistent cache.
public struct DrydockCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "drydock",
        abstract: "Remote container builds with a persistent per-project cache and registry.",
        discussion: HelpText.reflow("""
            Start with 'drydock login --token TOKEN --api-url URL' (an owner gets the first token from 'drydock-server bootstrap'), then 'drydock projects create NAME' and 'drydock init' in your repository.

            Environment: DRYDOCK_API_URL, DRYDOCK_TOKEN and DRYDOCK_PROJECT override the saved login (kept in $XDG_CONFIG_HOME/drydock/config.json).
            In CI without DRYDOCK_TOKEN, drydock trades the job's OIDC ID token for one (GitHub Actions, GitLab's DRYDOCK_OIDC_TOKEN, CircleCI, Buildkite): see 'drydock projects trust --help'.
            """),
        version: "0.7.0",
        subcommands: [Login.self, Logout.self, Whoami.self, Init.self, Build.self, BakeCommand.self, BuildCommands.self, UsageCommands.self, ProjectCommands.self, MemberCommands.self, BuilderCommands.self, AgentCommands.self, CacheCommands.self, TokenCommands.self, RegistryCommands.self, PullToken.self, ConfigureDocker.self]
    )

    public init() {}
}
