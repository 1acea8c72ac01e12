import ArgumentParser
import DrydockClient
import Foundation

struct RegistryTags: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tags", abstract: "List a repository's tags.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    @Argument(help: "Repository name inside the project (e.g. app).")
    var repository: String

    func run() async throws {
        let client = try await connection.client()
        let tags = try await client.tags(projectId: try await project.id(using: client), repository: repository)
        try output.list(tags.items, headers: ["TAG", "DIGEST", "SIZE", "PLATFORMS", "UPDATED"], rows: tags.items.map {
            [$0.name, $0.digest, Output.bytes($0.sizeBytes), $0.platforms?.joined(separator: ",") ?? "-", Output.date($0.updatedAt)]
        }, empty: "No tags in \(tags.repository).")
    }
}
