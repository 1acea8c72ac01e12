import ArgumentParser
import DrydockClient
import Foundation

struct BuildCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a build (queued at once, running within seconds).")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Build ID.")
    var id: String

    func run() async throws {
        let build = try await connection.client().cancelBuild(id)
        print("build \(build.id): \(build.status.rawValue)\(build.status == .running ? " (cancel requested; stops within seconds)" : "")")
    }
}
