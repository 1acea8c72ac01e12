import ArgumentParser
import DrydockClient
import Foundation

struct BuildList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the project's builds, newest first.", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    @Option(help: "Only builds with this status: queued, running, succeeded, failed or canceled.")
    var status: String?

    @Option(help: "How many (1-200).")
    var limit: Int = 20

    func run() async throws {
        var statusFilter: Components.Schemas.BuildStatus?
        if let status {
            guard let parsed = Components.Schemas.BuildStatus(rawValue: status) else {
                throw ValidationError("--status must be queued, running, succeeded, failed or canceled")
            }
            statusFilter = parsed
        }
        let page = try await connection.client().builds(projectId: try project.resolved(), status: statusFilter, limit: limit)
        try output.list(page, headers: Components.Schemas.Build.tableHeaders, rows: page.items.map(\.tableRow),
                        empty: "No builds yet. Start one with 'drydock build .'.")
    }
}
