import Foundation
import ServiceLifecycle

/// Reads a build's log from a position and, when following, waits for more until the build ends.
actor LogFollower {
    let log: BuildLog
    let builds: BuildStore
    let signals: BuildSignals
    let buildId: String
    var position: Int64
    let follow: Bool
    var done = false

    init(log: BuildLog, builds: BuildStore, signals: BuildSignals, buildId: String, position: Int64, follow: Bool) {
        self.log = log
        self.builds = builds
        self.signals = signals
        self.buildId = buildId
        self.position = position
        self.follow = follow
    }

    func next() async throws -> ArraySlice<UInt8>? {
        while !done {
            let ticket = signals.ticket("build:\(buildId)")
            let entries = try await log.entries(buildId: buildId, from: position, limit: 500)
            if !entries.isEmpty {
                position += Int64(entries.count)
                var bytes: [UInt8] = []
                for entry in entries {
                    bytes += entry.utf8
                    bytes.append(UInt8(ascii: "\n"))
                }
                return bytes[...]
            }
            guard follow else { break }
            // The final status entry is written in the transaction that closes the build, so a
            // finished build with nothing past `position` has nothing more to say.
            if let status = try await builds.status(buildId: buildId), status.isFinished {
                if try await log.entries(buildId: buildId, from: position, limit: 1).isEmpty { break }
                continue
            }
            // A server shutting down ends the stream; the client resumes from its last offset.
            guard !signals.isClosed, !Task.isShuttingDownGracefully else { break }
            let signals = self.signals
            try? await cancelWhenGracefulShutdown { await signals.wait(ticket, timeout: .seconds(10)) }
            try Task.checkCancellation()
        }
        done = true
        return nil
    }
}
