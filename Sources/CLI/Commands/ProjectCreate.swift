import ArgumentParser
import DrydockClient

struct ProjectCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a project.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project name: letters, digits, '.', '_' and '-', up to 64.")
    var name: String

    @Option(name: .customLong("keep-gb"), help: "Cache kept per platform in GB, 1-500 (default 50).")
    var keepGigabytes: Int?

    @Option(name: .customLong("keep-days"), help: "Drop cache entries unused this many days, 1-365 (default 14).")
    var keepDays: Int?

    func run() async throws {
        let project = try await connection.client().createProject(name: name, keepGigabytes: keepGigabytes, keepDays: keepDays)
        try output.created(project, message: "Created project \(project.name) (\(project.id)). Link a directory to it with 'drydock init --project \(project.id)'.",
                           fields: ProjectGet.fields(project))
    }
}
