import ArgumentParser
import DrydockClient
import Foundation

struct RegistryList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the project's repositories.", aliases: ["list"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    func run() async throws {
        let client = try await connection.client()
        let repositories = try await client.repositories(projectId: try await project.id(using: client))
        try output.list(repositories, headers: ["REPOSITORY", "TAGS", "IMAGES", "SIZE", "CREATED"], rows: repositories.map {
            [$0.reference, "\($0.tagCount)", "\($0.manifestCount)", Output.bytes($0.sizeBytes), Output.date($0.createdAt)]
        }, empty: "No repositories yet. Push to HOST/<project-id>/<name>:<tag>.")
    }
}
