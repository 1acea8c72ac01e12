import ArgumentParser
import DrydockClient
import Foundation

struct UsageCapsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show the caps.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption
    @Option(help: "Organization ID (default: the token's).") var org: String?

    func run() async throws {
        let client = try await connection.client()
        let orgId: String
        if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
        let caps = try await client.usageCaps(orgId: orgId)
        try output.details(caps, Self.fields(caps))
    }

    static func fields(_ caps: Components.Schemas.UsageCaps) -> [(String, String)] {
        [
            ("Minutes per month", caps.minutesPerMonth.map { "\($0) (\(caps.minutesUsedPercent ?? 0)% used)" } ?? "no cap"),
            ("Spend per month", caps.spendPerMonth.map { "\($0) (\(caps.spendUsedPercent ?? 0)% used)" } ?? "no cap"),
            ("Warn at", "\(caps.softThresholdPercent)%"),
        ]
    }
}
