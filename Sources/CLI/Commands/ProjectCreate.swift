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
        switch output.format {
        case .json: try Output.json(project)
        case .table:
            print("Created project \(project.name) (\(project.id)). Link a directory to it with 'drydock init --project \(project.id)'.")
        }
    }
}

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
        switch output.format {
        case .json: try Output.json(projects)
        case .table: Output.table(Components.Schemas.Project.tableHeaders, projects.map(\.tableRow), empty: "No projects yet. Create one with 'drydock projects create NAME'.")
        }
    }
}

struct ProjectGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a project.", aliases: ["show"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID.")
    var id: String

    func run() async throws {
        let project = try await connection.client().project(id)
        switch output.format {
        case .json: try Output.json(project)
        case .table: ProjectGet.show(project)
        }
    }

    static func show(_ project: Components.Schemas.Project) {
        Output.keyValues([
            ("ID", project.id), ("Name", project.name), ("Organization", project.organizationId),
            ("Cache", "\(project.cachePolicy.keepGigabytes) GB per platform, \(project.cachePolicy.keepDays) days"),
            ("Created", Output.date(project.createdAt)), ("Updated", Output.date(project.updatedAt)),
        ])
    }
}

struct ProjectUpdate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Rename a project or change its cache policy.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID.")
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
        let project = try await connection.client().updateProject(id, name: name, keepGigabytes: keepGigabytes, keepDays: keepDays)
        switch output.format {
        case .json: try Output.json(project)
        case .table: ProjectGet.show(project)
        }
    }
}

struct ProjectDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a project and revoke its project and pull tokens.", aliases: ["rm"])

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Project ID.")
    var id: String

    func run() async throws {
        try await connection.client().deleteProject(id)
        print("Deleted project \(id).")
    }
}
