import ArgumentParser
import DrydockProcess
import DrydockServer
import Foundation

/// `drydock-server`: `serve` (the default) and the operator commands, one file each.
public struct DrydockServerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "drydock-server",
        abstract: "The Drydock server: management API, registry and build queue.",
        discussion: HelpText.reflow("""
            With no DRYDOCK_DATABASE_URL the server runs its own PostgreSQL cluster inside the data
            directory (needs the 'postgresql' package). Create the first organization and its
            owner's token with 'drydock-server bootstrap --org NAME', and a token for builders that
            serve every organization with 'drydock-server worker-token --name NAME'.
            """),
        version: drydockVersion,
        subcommands: [Serve.self, Bootstrap.self, SetPlan.self, WorkerToken.self, AgentToken.self, RotateKeys.self],
        defaultSubcommand: Serve.self
    )

    public init() {}

    /// What `main` runs: process-wide settings first (before any task starts), then the command.
    public static func launch() async {
        ServerRunner.tuneAllocator()
        // DRYDOCK_TASKS_ON_EVENT_LOOPS=0 keeps Swift's own thread pool (for comparisons).
        if ProcessInfo.processInfo.environment["DRYDOCK_TASKS_ON_EVENT_LOOPS"] != "0" {
            _ = ServerRunner.runTasksOnEventLoops()
        }
        await main(nil)
    }
}

/// The version `--version` prints for drydock-server and drydock-builder.
public let drydockVersion = "0.6.0"
