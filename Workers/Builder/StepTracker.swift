import Foundation

/// Turns buildah's build output into step events: a step starts at `STEP n/m: …` (prefixed
/// `[stage/stages]` in multi-stage builds), is cached when buildah says `--> Using cache`, and
/// ends when the next step starts, the image is committed, or the build ends.
///
/// In a multi-stage build each step carries its stage's name (`FROM … AS deps`, or `stage-N` as
/// buildx calls unnamed stages) and its number within the stage, and a `FROM` of an earlier stage
/// names that stage instead of the image id buildah prints for it.
public struct StepTracker: Sendable {
    public struct Step: Sendable, Equatable {
        /// Counts every step of the build, across stages: the step's identity in the log.
        public var number: Int
        /// Steps in this step's stage (in the whole build when it has one stage).
        public var total: Int?
        public var instruction: String
        public var cached: Bool
        public var status: String  // running, done, failed
        public var durationMs: Int64?
        /// The stage's name in a multi-stage build; nil in a single-stage one.
        public var stage: String?
        /// The step's number within its stage (multi-stage builds).
        public var stageStep: Int?

        public init(number: Int, total: Int?, instruction: String, cached: Bool, status: String, durationMs: Int64? = nil,
                    stage: String? = nil, stageStep: Int? = nil) {
            self.number = number
            self.total = total
            self.instruction = instruction
            self.cached = cached
            self.status = status
            self.durationMs = durationMs
            self.stage = stage
            self.stageStep = stageStep
        }

        /// `[2/4]` in a single-stage build, `[deps 2/4]` in a multi-stage one.
        public var label: String {
            let counter = "\(stageStep ?? number)\(total.map { "/\($0)" } ?? "")"
            return stage.map { "[\($0) \(counter)]" } ?? "[\(counter)]"
        }
    }

    struct Parsed: Equatable {
        var stageIndex: Int?  // 1-based, as buildah prints it
        var step: Int
        var total: Int
        var instruction: String
    }

    var current: Step?
    var started: ContinuousClock.Instant?
    var count = 0
    var currentStage: Int?
    /// Names of stages by their 1-based index.
    var stageNames: [Int: String] = [:]
    /// The image id each finished stage produced (from buildah's `--> <id>` lines).
    var stageImages: [Int: String] = [:]
    var lastImageId: String?

    public init() {}

    /// Feeds one line; returns the step events it causes (zero, one or two).
    public mutating func feed(_ line: String, now: ContinuousClock.Instant = .now) -> [Step] {
        var out: [Step] = []
        if let parsed = Self.parseStep(line) {
            if let done = finish(status: "done", now: now) { out.append(done) }
            if let previous = currentStage, previous != parsed.stageIndex, let id = lastImageId { stageImages[previous] = id }
            currentStage = parsed.stageIndex
            lastImageId = nil
            count += 1
            var instruction = parsed.instruction
            var stage: String?
            if let index = parsed.stageIndex {
                if parsed.step == 1, let name = Self.stageName(instruction) { stageNames[index] = name }
                instruction = namingEarlierStage(instruction)
                stage = stageNames[index] ?? "stage-\(index - 1)"
            }
            let step = Step(number: count, total: parsed.total, instruction: instruction, cached: false, status: "running",
                            stage: stage, stageStep: parsed.stageIndex == nil ? nil : parsed.step)
            current = step
            started = now
            out.append(step)
        } else if line.hasPrefix("--> Using cache") {
            current?.cached = true
            lastImageId = line.split(separator: " ").last.map(String.init)
        } else if line.hasPrefix("--> ") {
            lastImageId = String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces)
        } else if Self.isCommit(line) {
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

    /// `FROM <id of an earlier stage> AS x` → `FROM <that stage's name> AS x`.
    func namingEarlierStage(_ instruction: String) -> String {
        guard instruction.hasPrefix("FROM ") else { return instruction }
        let words = instruction.split(separator: " ", omittingEmptySubsequences: true)
        guard words.count >= 2 else { return instruction }
        let image = words[1].hasPrefix("sha256:") ? words[1].dropFirst(7) : words[1]
        guard image.count >= 12, image.allSatisfy(\.isHexDigit) else { return instruction }
        for (index, id) in stageImages {
            let full = id.hasPrefix("sha256:") ? id.dropFirst(7) : Substring(id)
            if full.hasPrefix(image) || image.hasPrefix(full) {
                let name = stageNames[index] ?? "stage-\(index - 1)"
                return (["FROM", name] + words.dropFirst(2).map(String.init)).joined(separator: " ")
            }
        }
        return instruction
    }

    /// `FROM image AS name` → `name`.
    static func stageName(_ instruction: String) -> String? {
        let words = instruction.split(separator: " ", omittingEmptySubsequences: true)
        guard words.count == 4, words[0].uppercased() == "FROM", words[2].uppercased() == "AS" else { return nil }
        return String(words[3])
    }

    static func isCommit(_ line: String) -> Bool {
        var text = Substring(line)
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { text = text[text.index(after: close)...].drop { $0 == " " } }
        return text.hasPrefix("COMMIT")
    }

    /// `STEP 2/5: RUN make` or `[1/2] STEP 2/5: RUN make`.
    static func parseStep(_ line: String) -> Parsed? {
        var rest = Substring(line)
        var stageIndex: Int?
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            let inner = rest[rest.index(after: rest.startIndex)..<close].split(separator: "/")
            guard inner.count == 2, let index = Int(inner[0]), Int(inner[1]) != nil else { return nil }
            stageIndex = index
            rest = rest[rest.index(after: close)...].drop { $0 == " " }
        }
        guard rest.hasPrefix("STEP "), let colon = rest.firstIndex(of: ":") else { return nil }
        let counter = rest[rest.index(rest.startIndex, offsetBy: 5)..<colon]
        let parts = counter.split(separator: "/")
        guard parts.count == 2, let step = Int(parts[0]), let total = Int(parts[1]) else { return nil }
        let instruction = rest[rest.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        return Parsed(stageIndex: stageIndex, step: step, total: total, instruction: instruction)
    }
}
