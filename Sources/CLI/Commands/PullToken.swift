import ArgumentParser
import DrydockClient
import Foundation

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
        if let lifetime, let expires, !(60...86_400).contains(lifetime) {
            throw CLIError("--expires \(expires): pull tokens live from 1m to 24h")
        }
        let client = try await connection.client()
        let token = try await client.createPullToken(projectId: try await project.id(using: client), expiresInSeconds: lifetime)
        try output.created(token, message: "Pull token for project \(token.projectId ?? ""), expires \(token.expiresAt.map(Output.date) ?? "never"):",
                           secret: token.token,
                           fields: [("ID", token.id), ("Project", token.projectId ?? "-"), ("Expires", token.expiresAt.map(Output.date) ?? "never"),
                                    ("Token", token.token)])
    }
}
