import ArgumentParser
import DrydockClient
import Foundation

extension Components.Schemas.TokenKind: ExpressibleByArgument {}

struct TokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a token and print its secret (shown only this once).",
        discussion: """
            Kinds: user (acts as you), organization (automation across the organization),
            project (build and pull in one project; the default with --project), pull (registry
            read-only, 1 hour unless --expires), worker (registers builders).
            """)

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "A name to recognise the token by, e.g. 'github-actions'.")
    var name: String

    @Option(help: "Project ID, for project and pull tokens.")
    var project: String?

    @Option(help: "user, organization, project, pull or worker.")
    var kind: Components.Schemas.TokenKind?

    @Option(help: "Lifetime such as 90m, 12h, 30d or 8w (default: never, 1h for pull tokens).")
    var expires: String?

    func run() async throws {
        let lifetime = try expires.map(TokenCreate.parseDuration)
        let token = try await connection.client().createToken(name: name, kind: kind, projectId: project, expiresInSeconds: lifetime)
        switch output.format {
        case .json: try Output.json(token)
        case .table:
            FileHandle.standardError.write(Data("Created \(token.kind.rawValue) token \(token.name) (\(token.id))\(token.expiresAt.map { ", expires \(Output.date($0))" } ?? ""). The secret is shown only now:\n".utf8))
            print(token.token)
        }
    }

    /// "30d" → seconds. Units: s, m, h, d, w.
    static func parseDuration(_ text: String) throws -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let unit = trimmed.last, let value = Int(trimmed.dropLast()), value > 0 else {
            throw CLIError("--expires takes a number and a unit, like 90m, 12h, 30d or 8w (got '\(text)')")
        }
        let multiplier: Int
        switch unit {
        case "s": multiplier = 1
        case "m": multiplier = 60
        case "h": multiplier = 3600
        case "d": multiplier = 86_400
        case "w": multiplier = 604_800
        default: throw CLIError("--expires unit must be s, m, h, d or w (got '\(unit)')")
        }
        let (seconds, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw CLIError("--expires is too long") }
        return seconds
    }
}

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
        switch output.format {
        case .json: try Output.json(tokens)
        case .table: Output.table(Components.Schemas.Token.tableHeaders, tokens.map(\.tableRow), empty: "No tokens.")
        }
    }
}

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
