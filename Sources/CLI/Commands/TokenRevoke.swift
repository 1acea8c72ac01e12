import ArgumentParser
import DrydockClient
import Foundation

struct TokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token at once.", aliases: ["rm"])

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Token ID (from 'drydock tokens list').")
    var id: String

    func run() async throws {
        try await connection.client().revokeToken(id)
        print("Revoked token \(id).")
    }
}
