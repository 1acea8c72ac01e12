import ArgumentParser
import DrydockClient

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
