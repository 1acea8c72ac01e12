import ArgumentParser
import DrydockClient

struct ProjectUpdate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Rename a project or change its cache policy.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID or name.")
    var id: String

    @Option(help: "New name.")
    var name: String?

    @Option(name: .customLong("keep-gb"), help: "Cache kept per platform in GB, 1-500.")
    var keepGigabytes: Int?

    @Option(name: .customLong("keep-days"), help: "Drop cache entries unused this many days, 1-365.")
    var keepDays: Int?

    func validate() throws {
        if name == nil, keepGigabytes == nil, keepDays == nil {
            throw ValidationError("nothing to change: pass --name, --keep-gb or --keep-days")
        }
    }

    func run() async throws {
        let client = try connection.client()
        let project = try await client.updateProject(try await client.projectId(for: id), name: name, keepGigabytes: keepGigabytes, keepDays: keepDays)
        try output.details(project, ProjectGet.fields(project))
    }
}
