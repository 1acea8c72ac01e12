import ArgumentParser
import DrydockClient
import DrydockProcess

struct AgentCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "The drydock-agents starting builders for your organization (owners and admins).",
        subcommands: [AgentList.self],
        defaultSubcommand: AgentList.self,
        aliases: ["agent"]
    )
}

struct AgentList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Agents seen in the last day: what they can start, and the builders they run for you now.",
        discussion: HelpText.reflow("""
            Each builder an agent starts serves one project and platform; its state is starting (until it
            registers), idle, busy or stopping. With --format json each builder names its projectId and platform.
            """),
        aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    func run() async throws {
        let agents = try await connection.client().agents()
        try output.list(agents, headers: ["NAME", "ONLINE", "LAUNCHER", "PLATFORMS", "MAX", "BUILDERS", "LAST SEEN"], rows: agents.map { agent in
            [agent.name + (agent.serverWide ? " (server-wide)" : ""), agent.online ? "yes" : "no", agent.launcher,
             agent.platforms.joined(separator: ",") + ((agent.emulatedPlatforms ?? []).isEmpty ? "" : " (emulates \((agent.emulatedPlatforms ?? []).joined(separator: ",")))"),
             "\(agent.maxBuilders)",
             agent.builders.isEmpty ? "-" : agent.builders.map { "\($0.projectId ?? "?") \($0.platform ?? "?") \($0.state?.rawValue ?? "?")" }
                .joined(separator: ", "),
             Output.date(agent.lastSeenAt)]
        }, empty: "No agent has reported in the last day. Start one: DRYDOCK_API_URL=… DRYDOCK_AGENT_TOKEN=… drydock-agent "
            + "(make the token with 'drydock tokens create --kind agent --name NAME')")
    }
}
