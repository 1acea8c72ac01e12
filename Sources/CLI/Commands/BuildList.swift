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

    @Option(help: "Only the builds of one 'drydock bake' run (its id, printed first by bake); shows each build's target.")
    var bake: String?

    @OptionGroup var paging: PagingOptions

    func run() async throws {
        var statusFilter: Components.Schemas.BuildStatus?
        if let status {
            guard let parsed = Components.Schemas.BuildStatus(rawValue: status) else {
                throw ValidationError("--status must be queued, running, succeeded, failed or canceled")
            }
            statusFilter = parsed
        }
        let client = try await connection.client()
        if let bake {
            // The bake knows its project.
            let builds = try await client.bake(bake).builds.filter { statusFilter == nil || $0.status == statusFilter }
            try output.list(builds, headers: ["TARGET"] + Components.Schemas.Build.tableHeaders, rows: builds.map { [$0.bake?.target ?? "-"] + $0.tableRow },
                            empty: "No builds of bake \(bake)\(status.map { " are \($0)" } ?? "").")
            return
        }
        let projectId = try await project.id(using: client)
        let (builds, next) = try await paging.fetch(defaultLimit: 20) { limit, cursor in
            let page = try await client.builds(projectId: projectId, status: statusFilter, limit: limit, cursor: cursor)
            return (page.items, page.nextCursor)
        }
        try output.list(builds, nextCursor: next, headers: Components.Schemas.Build.tableHeaders, rows: builds.map(\.tableRow),
                        empty: "No builds yet. Start one with 'drydock build .'.")
    }
}
