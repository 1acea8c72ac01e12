import ArgumentParser
import DrydockClient

struct BuilderCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "builders",
        abstract: "The builders serving your organization (owners and admins).",
        subcommands: [BuilderList.self],
        defaultSubcommand: BuilderList.self,
        aliases: ["builder"]
    )
}

struct BuilderList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Builders seen in the last day: what they run natively and emulated, and what they are running.",
        aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    func run() async throws {
        let builders = try await connection.client().builders()
        try output.list(builders, headers: ["NAME", "STATE", "PROJECT", "NATIVE", "EMULATED", "RUNNING", "JOBS", "CACHE", "SINCE"], rows: builders.map { builder in
            [builder.name + (builder.serverWide ? " (server-wide)" : "") + (builder.clone == true ? " (clone)" : ""),
             builder.state?.rawValue ?? (builder.online ? (builder.running.isEmpty ? "idle" : "busy") : "offline"),
             builder.projectId ?? "any",
             builder.platforms.joined(separator: ",").nonEmpty ?? "-", builder.emulatedPlatforms.joined(separator: ",").nonEmpty ?? "-",
             builder.running.isEmpty ? "-" : builder.running.map { "\($0.buildId) \($0.platform)\($0.emulated ? " (emulated)" : "")" }.joined(separator: ", "),
             builder.jobsServed.map(String.init) ?? "-", builder.cacheBytes.map(Output.bytes) ?? "-",
             Output.date(builder.since ?? builder.lastSeenAt)]
        }, empty: "No builder has asked for work in the last day. Start an agent (DRYDOCK_AGENT_TOKEN=… drydock-agent) or a builder (DRYDOCK_WORKER_TOKEN=… drydock-builder)")
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
