import ArgumentParser
import DrydockClient
import Foundation

struct UsageCapsSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set caps (admins). Options left out keep their value.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Organization ID (default: the token's).") var org: String?
    @Option(help: "Build minutes per calendar month.") var minutes: Int64?
    @Option(help: "Dollars per calendar month, e.g. 250.00.") var spend: String?
    @Option(name: .customLong("warn-at"), help: "Percent of a cap that shows a warning (default 80).") var warnAt: Int?

    func validate() throws {
        if minutes == nil, spend == nil, warnAt == nil { throw ValidationError("give --minutes, --spend or --warn-at") }
    }

    func run() async throws {
        let client = try await connection.client()
        let orgId: String
        if let org { orgId = org } else { orgId = try await client.whoami().organization.id }
        Output.keyValues(UsageCapsShow.fields(try await client.setUsageCaps(orgId: orgId, minutes: minutes, spend: spend, softThreshold: warnAt)))
    }
}
