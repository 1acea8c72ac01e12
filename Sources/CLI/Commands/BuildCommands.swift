import ArgumentParser
import DrydockClient
import Foundation

struct BuildCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "builds",
        abstract: "List, inspect, follow and cancel builds.",
        subcommands: [BuildList.self, BuildGet.self, BuildLogs.self, BuildCancel.self]
    )
}
