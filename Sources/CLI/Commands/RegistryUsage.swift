import ArgumentParser
import DrydockClient
import Foundation

struct RegistryUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "usage", abstract: "Show the registry storage the project uses.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    func run() async throws {
        let client = try await connection.client()
        let usage = try await client.registryUsage(projectId: try await project.id(using: client))
        try output.details(usage, [("Project", usage.projectId), ("Repositories", "\(usage.repositories)"),
                                   ("Blobs", "\(usage.blobs)"), ("Storage", Output.bytes(usage.sizeBytes))])
    }
}
