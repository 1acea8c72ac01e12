import ArgumentParser
import DrydockClient
import Foundation

struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the token, organization and user in use, and where the token came from.",
        discussion: "Tokens are looked for in this order: --token, DRYDOCK_TOKEN, an OIDC exchange when running in CI, the saved login.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    func run() async throws {
        let (client, source) = try await connection.clientAndSource()
        let caller = try await client.whoami()
        try output.details(caller, [
                ("Server", client.baseURL.absoluteString),
                ("Organization", "\(caller.organization.name) (\(caller.organization.id))"),
                ("User", caller.user.map { "\($0.email) (\($0.id))" } ?? "-"),
                ("Role", caller.role?.rawValue ?? "-"),
                ("Token", "\(caller.token.name) (\(caller.token.id), \(caller.token.kind.rawValue))"),
                ("Project", caller.token.projectId ?? caller.token.projectIds?.joined(separator: ", ") ?? "-"),
                ("Isolated builds only", caller.token.isolated == true ? "yes" : "no"),
                ("Credentials from", source.description),
                ("Expires", caller.token.expiresAt.map(Output.date) ?? "never"),
        ])
    }
}
