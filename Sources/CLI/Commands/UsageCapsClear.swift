import ArgumentParser
import DrydockClient
import Foundation

struct UsageCapsClear: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Remove both caps (admins).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Organization ID (default: the token's).") var org: String?

    func run() async throws {
        let client = try await connection.client()
        let orgId: String
        if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
        try await client.clearUsageCaps(orgId: orgId)
        print("Usage caps cleared.")
    }
}
