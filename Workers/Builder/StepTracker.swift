import Foundation

/// Turns buildah's build output into step events: a step starts at `STEP n/m: …` (prefixed
/// `[stage/stages]` in multi-stage builds), is cached when buildah says `--> Using cache`, and
/// ends when the next step starts, the image is committed, or the build ends.
public struct StepTracker: Sendable {
    public struct Step: Sendable, Equatable {
        public var number: Int
        public var total: Int?
        public var instruction: String
        public var cached: Bool
        public var status: String  // running, done, failed
        public var durationMs: Int64?
    }

    var current: Step?
    var started: ContinuousClock.Instant?
    var count = 0
    var stagesSeen: [String: Int] = [:]

    public init() {}

    /// Feeds one line; returns the step events it causes (zero, one or two).
    public mutating func feed(_ line: String, now: ContinuousClock.Instant = .now) -> [Step] {
        var out: [Step] = []
        if let parsed = Self.parseStep(line) {
            if let done = finish(status: "done", now: now) { out.append(done) }
            count += 1
            let step = Step(number: count, total: parsed.total, instruction: parsed.instruction, cached: false, status: "running")
            current = step
            started = now
            out.append(step)
        } else if line.hasPrefix("--> Using cache") {
            current?.cached = true
        } else if line.hasPrefix("COMMIT") {
            if let done = finish(status: "done", now: now) { out.append(done) }
        }
        return out
    }

    /// Ends the open step (`done` on success, `failed` when the build failed there).
    public mutating func finish(status: String, now: ContinuousClock.Instant = .now) -> Step? {
        guard var step = current, let started else { return nil }
        step.status = status
        let elapsed = now - started
        step.durationMs = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
        current = nil
        self.started = nil
        return step
    }

    /// `STEP 2/5: RUN make` or `[1/2] STEP 2/5: RUN make` → (total across the stage?, instruction).
    static func parseStep(_ line: String) -> (total: Int?, instruction: String)? {
        var rest = Substring(line)
        var stage = ""
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            stage = String(rest[...close]) + " "
            rest = rest[rest.index(after: close)...].drop { $0 == " " }
        }
        guard rest.hasPrefix("STEP "), let colon = rest.firstIndex(of: ":") else { return nil }
        let counter = rest[rest.index(rest.startIndex, offsetBy: 5)..<colon]
        let parts = counter.split(separator: "/")
        guard parts.count == 2, Int(parts[0]) != nil, let total = Int(parts[1]) else { return nil }
        let instruction = rest[rest.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        return (stage.isEmpty ? total : nil, stage + instruction)
    }
}
