import ArgumentParser
import DrydockClient
import Foundation

struct RegistryCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "Look after the project's registry: repositories, tags, storage.",
        discussion: """
            Images live at HOST/<project-id>/<name>:<tag>. Log docker, podman, buildah or skopeo in
            with any username and a Drydock token as the password, e.g.
              skopeo login --username ci --password "$DRYDOCK_TOKEN" HOST
            """,
        subcommands: [RegistryList.self, RegistryTags.self, RegistryRemove.self, RegistryUsage.self]
    )
}

struct RegistryList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the project's repositories.", aliases: ["list"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    func run() async throws {
        let repositories = try await connection.client().repositories(projectId: try project.resolved())
        switch output.format {
        case .json: try Output.json(repositories)
        case .table:
            Output.table(["REPOSITORY", "TAGS", "IMAGES", "SIZE", "CREATED"], repositories.map {
                [$0.reference, "\($0.tagCount)", "\($0.manifestCount)", Output.bytes($0.sizeBytes), Output.date($0.createdAt)]
            }, empty: "No repositories yet. Push to HOST/<project-id>/<name>:<tag>.")
        }
    }
}

struct RegistryTags: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tags", abstract: "List a repository's tags.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    @Argument(help: "Repository name inside the project (e.g. app).")
    var repository: String

    func run() async throws {
        let tags = try await connection.client().tags(projectId: try project.resolved(), repository: repository)
        switch output.format {
        case .json: try Output.json(tags)
        case .table:
            Output.table(["TAG", "DIGEST", "SIZE", "PLATFORMS", "UPDATED"], tags.items.map {
                [$0.name, $0.digest, Output.bytes($0.sizeBytes), $0.platforms?.joined(separator: ",") ?? "-", Output.date($0.updatedAt)]
            }, empty: "No tags in \(tags.repository).")
        }
    }
}

struct RegistryRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Delete a tag (REPO:TAG) or an image with all its tags (REPO@DIGEST).", aliases: ["delete"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption

    @Argument(help: "REPO:TAG or REPO@sha256:…")
    var reference: String

    func run() async throws {
        let client = try connection.client()
        let projectId = try project.resolved()
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

struct RegistryUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "usage", abstract: "Show the registry storage the project uses.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    func run() async throws {
        let usage = try await connection.client().registryUsage(projectId: try project.resolved())
        switch output.format {
        case .json: try Output.json(usage)
        case .table:
            Output.keyValues([("Project", usage.projectId), ("Repositories", "\(usage.repositories)"),
                              ("Blobs", "\(usage.blobs)"), ("Storage", Output.bytes(usage.sizeBytes))])
        }
    }
}

struct PullToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull-token",
        abstract: "Mint a short-lived, read-only registry token for the project and print it.",
        discussion: "Use it as the registry password: skopeo copy --src-creds pull:TOKEN docker://HOST/<project-id>/app:v1 …")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    @Option(help: "Lifetime such as 30m or 12h (default 1h, at most 24h).")
    var expires: String?

    func run() async throws {
        let lifetime = try expires.map(TokenCreate.parseDuration)
        let token = try await connection.client().createPullToken(projectId: try project.resolved(), expiresInSeconds: lifetime)
        switch output.format {
        case .json: try Output.json(token)
        case .table:
            FileHandle.standardError.write(Data("Pull token for project \(token.projectId ?? ""), expires \(token.expiresAt.map(Output.date) ?? "never"):\n".utf8))
            print(token.token)
        }
    }
}
