import ArgumentParser
import DrydockClient
import Foundation

struct TokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (metadata only, never secrets).", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "Only tokens for this project (ID or name).")
    var project: String?

    @Option(help: "Only tokens of this kind.")
    var kind: Components.Schemas.TokenKind?

    @Flag(help: "Include revoked tokens.")
    var all = false

    @OptionGroup var paging: PagingOptions

    func run() async throws {
        let client = try await connection.client()
        var projectId: String?
        if let project { projectId = try await client.projectId(for: project) }
        let (tokens, next) = try await paging.fetch { limit, cursor in
            let page = try await client.tokens(limit: limit, cursor: cursor, kind: kind, projectId: projectId, includeRevoked: all)
            return (page.items, page.nextCursor)
        }
        try output.list(tokens, nextCursor: next, headers: Components.Schemas.Token.tableHeaders, rows: tokens.map(\.tableRow), empty: "No tokens.")
    }
}
