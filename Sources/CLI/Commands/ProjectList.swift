import ArgumentParser
import DrydockClient

struct ProjectList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List projects, newest first.", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "Show at most this many (default: all).")
    var limit: Int?

    func run() async throws {
        let client = try connection.client()
        var projects: [Components.Schemas.Project]
        if let limit {
            guard limit > 0 else { throw CLIError("--limit must be positive") }
            projects = try await client.projects(limit: min(limit, 200)).items
        } else {
            projects = try await client.allProjects()
        }
        try output.list(projects, headers: Components.Schemas.Project.tableHeaders, rows: projects.map(\.tableRow),
                        empty: "No projects yet. Create one with 'drydock projects create NAME'.")
    }
}
