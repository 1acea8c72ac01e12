import ArgumentParser
import DrydockClient

struct ProjectGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a project.", aliases: ["show"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID or name.")
    var id: String

    func run() async throws {
        let client = try await connection.client()
        let project = try await client.project(try await client.projectId(for: id))
        try output.details(project, Self.fields(project))
    }

    static func fields(_ project: Components.Schemas.Project) -> [(String, String)] {
        [
            ("ID", project.id), ("Name", project.name), ("Organization", project.organizationId),
            ("Cache", "\(project.cachePolicy.keepGigabytes) GB per platform, \(project.cachePolicy.keepDays) days"),
            ("Emulation", project.builds.map { settings in
                settings.emulation == .fallback
                    ? "fallback (after \(settings.emulationFallbackSeconds.map { "\($0)s" } ?? "the server's delay") without a native builder)"
                    : settings.emulation.rawValue
            } ?? "fallback"),
            ("Queue timeout", project.builds?.queueTimeoutSeconds.map { "\($0)s" } ?? "the server's (DRYDOCK_QUEUE_TIMEOUT_SECONDS)"),
            ("Agent builders", project.builds.map { settings in
                let most = settings.maxBuilders ?? 1
                return "at most \(most) per platform\(most > 1 ? " (autoscaling)" : ""), \(settings.buildsPerBuilder ?? 1) build(s) each, "
                    + "exit after \(settings.builderIdleSeconds ?? 300)s idle"
            } ?? "at most 1 per platform, 1 build each, exit after 300s idle"),
            ("Created", Output.date(project.createdAt)), ("Updated", Output.date(project.updatedAt)),
        ]
    }
}
