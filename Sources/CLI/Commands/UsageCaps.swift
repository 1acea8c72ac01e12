import ArgumentParser
import DrydockClient
import Foundation

struct UsageCaps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caps",
        abstract: "Show, set or clear the organization's hard caps (Startup and Business plans).",
        discussion: "A build that would start past a cap is refused (HTTP 402) with the figures and how to raise it.",
        subcommands: [UsageCapsShow.self, UsageCapsSet.self, UsageCapsClear.self],
        defaultSubcommand: UsageCapsShow.self
    )
}
