import Crypto
import Foundation

/// One step of a build on one platform, as the build's log records it.
struct StepRecord: Codable, Sendable, Equatable {
    enum Status: String, Codable, Sendable {
        case running, done, failed, canceled
    }

    var platform: String
    var number: Int
    var total: Int?
    var instruction: String
    var cached: Bool
    var status: Status
    var durationMs: Int64?
    var stage: String?
    var stageStep: Int?
    /// A cached step: what it took the last time it ran uncached in the project on this platform
    /// (set by the server when the step's end is recorded).
    var savedMs: Int64? = nil

    /// Identifies "the same step" across builds of a project on one platform: its stage and
    /// instruction.
    var timingKey: [UInt8] {
        Array(SHA256.hash(data: Data("\(stage ?? "")\n\(instruction)".utf8)))
    }
}

/// One entry of a build's log. Stored as JSON whose shape is the API's `BuildLogEntry`, so a
/// follower is sent the stored text as it is.
struct LogEntry: Codable, Sendable {
    enum Kind: String, Codable, Sendable {
        case log, step, status
    }

    var offset: Int64 = 0
    var time: Date = Date()
    var kind: Kind
    var platform: String?
    var line: String?
    var step: StepRecord?
    var status: BuildStatus?
    var error: String?
    var digest: String?

    static func line(_ text: String, platform: String?) -> LogEntry {
        LogEntry(kind: .log, platform: platform, line: text)
    }
}

/// What a worker reports about its job: a line of output or a step's progress, numbered so a
/// retried report is recorded once.
struct WorkerEvent: Sendable {
    enum Kind: Sendable {
        case log, step
    }

    var sequence: Int64
    var time: Date?
    var kind: Kind
    var line: String?
    var step: StepRecord?
}
