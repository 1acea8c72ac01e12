import ArgumentParser
import DrydockClient
import Foundation

struct RegistryRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Delete a tag (REPO:TAG) or an image with all its tags (REPO@DIGEST).", aliases: ["delete"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption

    @Argument(help: "REPO:TAG or REPO@sha256:…")
    var reference: String

    func run() async throws {
        let client = try await connection.client()
        let projectId = try await project.id(using: client)
        if let at = reference.firstIndex(of: "@") {
            let repository = String(reference[..<at]), digest = String(reference[reference.index(after: at)...])
            try await client.deleteImage(projectId: projectId, repository: repository, digest: digest)
            print("Deleted image \(repository)@\(digest).")
        } else if let colon = reference.lastIndex(of: ":") {
            let repository = String(reference[..<colon]), tag = String(reference[reference.index(after: colon)...])
            try await client.deleteTag(projectId: projectId, repository: repository, tag: tag)
            print("Deleted tag \(repository):\(tag).")
        } else {
            throw CLIError("say which tag or image: REPO:TAG or REPO@sha256:…")
        }
    }
}
