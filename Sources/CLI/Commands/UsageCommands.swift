import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

struct UsageCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Build minutes, storage and estimated cost; usage caps.",
        discussion: HelpText.reflow("""
            Periods are UTC. Build time is billed per second from each job's start to its finish (per
            platform) and shown in minutes; storage (builder caches and the registry) in GB-months.
            Examples:
              drydock usage                          this month, by project
              drydock usage --month 2026-10 --by day --format csv
              drydock usage caps set --minutes 3000 --spend 250.00
            """),
        subcommands: [UsageShow.self, UsageCaps.self],
        defaultSubcommand: UsageShow.self
    )
}
