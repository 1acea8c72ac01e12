import ArgumentParser
import DrydockClient

struct ProjectDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a project and revoke its project and pull tokens.", aliases: ["rm"])

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Project ID or name.")
    var id: String

    func run() async throws {
        let client = try await connection.client()
        let projectId = try await client.projectId(for: id)
        try await client.deleteProject(projectId)
        print(projectId == id ? "Deleted project \(id)." : "Deleted project \(id) (\(projectId)).")
    }
}
