import ArgumentParser
import DrydockClient
import Foundation

struct TokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (metadata only, never secrets).", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "Only tokens for this project.")
    var project: String?

    @Option(help: "Only tokens of this kind.")
    var kind: Components.Schemas.TokenKind?

    @Flag(help: "Include revoked tokens.")
    var all = false

    func run() async throws {
        let client = try connection.client()
        var tokens: [Components.Schemas.Token] = []
        var cursor: String?
        repeat {
            let page = try await client.tokens(limit: 200, cursor: cursor, kind: kind, projectId: project, includeRevoked: all)
            tokens += page.items
            cursor = page.nextCursor
        } while cursor != nil
        try output.list(tokens, headers: Components.Schemas.Token.tableHeaders, rows: tokens.map(\.tableRow), empty: "No tokens.")
    }
}
