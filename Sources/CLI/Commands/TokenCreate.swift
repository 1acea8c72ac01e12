import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

struct TokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a token and print its secret (shown only this once).",
        discussion: HelpText.reflow("""
            Kinds: user (acts as you), organization (automation across the organization),
            project (build and pull in one project; the default with --project), pull (registry
            read-only, 1 hour unless --expires), worker (registers builders).
            """))

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Option(help: "A name to recognise the token by, e.g. 'github-actions'.")
    var name: String

    @Option(help: "Project ID or name, for project and pull tokens.")
    var project: String?

    @Option(help: "user, organization, project, pull, worker (drydock-builder) or agent (drydock-agent).")
    var kind: Components.Schemas.TokenKind?

    @Option(help: "Lifetime from 1m: such as 90m, 12h, 30d or 8w (default: never; pull tokens 1h, at most 24h).")
    var expires: String?

    func run() async throws {
        let lifetime = try expires.map(TokenCreate.parseDuration)
        if let lifetime, let expires {
            guard lifetime >= 60 else { throw CLIError("--expires \(expires) is too short: tokens live at least 1m") }
            if kind == .pull, lifetime > 86_400 { throw CLIError("--expires \(expires) is too long: pull tokens live at most 24h") }
            if lifetime > 315_360_000 { throw CLIError("--expires \(expires) is too long: tokens live at most 3650d (10 years)") }
        }
        let client = try await connection.client()
        var projectId: String?
        if let project { projectId = try await client.projectId(for: project) }
        let token = try await client.createToken(name: name, kind: kind, projectId: projectId, expiresInSeconds: lifetime)
        try output.created(
            token, message: "Created \(token.kind.rawValue) token \(token.name) (\(token.id))\(token.expiresAt.map { ", expires \(Output.date($0))" } ?? ""). The secret is shown only now:",
            secret: token.token,
            fields: [("ID", token.id), ("Name", token.name), ("Kind", token.kind.rawValue), ("Project", token.projectId ?? "-"),
                     ("Expires", token.expiresAt.map(Output.date) ?? "never"), ("Token", token.token)])
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
