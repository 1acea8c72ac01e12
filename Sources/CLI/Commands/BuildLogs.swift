import ArgumentParser
import DrydockClient
import Foundation

struct BuildLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a build's log; --follow waits for more until it ends.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: [.short, .customLong("follow")], help: "Keep printing until the build ends.")
    var follow = false

    @Option(help: "Start at this log entry (0 is the first).")
    var offset: Int64 = 0

    @Argument(help: "Build ID.")
    var id: String

    func run() async throws {
        let base = try await connection.client()
        let client = DrydockClient(baseURL: base.baseURL, token: base.token, timeout: .seconds(7 * 24 * 3600))
        let entries: AsyncThrowingStream<Components.Schemas.BuildLogEntry, any Error> =
            follow ? client.followBuildLog(id, from: offset) : try await client.buildLogs(id, offset: offset)
        for try await entry in entries {
            switch entry.kind {
            case .log: print(entry.line ?? "")
            case .step:
                guard let step = entry.step else { break }
                if step.status == .running {
                    print("#\(step.number) \(step.label) \(step.instruction)")
                } else {
                    print("#\(step.number) \(step.cached ? "CACHED" : "\(step.status.rawValue.uppercased()) \(ProgressUI.ms(step.durationMs))")")
                }
            case .status:
                print("== \(entry.status?.rawValue ?? "?")\(entry.line.map { ": \($0)" } ?? "")\(entry.error.map { ": \($0)" } ?? "")\(entry.digest.map { " \($0)" } ?? "")")
            }
        }
    }
}
