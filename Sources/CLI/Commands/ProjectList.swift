import ArgumentParser
import DrydockClient

struct ProjectList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List projects, newest first.", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @OptionGroup var paging: PagingOptions

    func run() async throws {
        let client = try await connection.client()
        let (projects, next) = try await paging.fetch { limit, cursor in
            let page = try await client.projects(limit: limit, cursor: cursor)
            return (page.items, page.nextCursor)
        }
        try output.list(projects, nextCursor: next, headers: Components.Schemas.Project.tableHeaders, rows: projects.map(\.tableRow),
                        empty: "No projects yet. Create one with 'drydock projects create NAME'.")
    }
}
