import DrydockClient
import Foundation
import Synchronization

extension Components.Schemas.BuildStep {
    /// `[2/4]` in a single-stage build, `[deps 2/4]` in a multi-stage one, as buildx numbers steps.
    var label: String { label(withPlatform: false) }

    /// `[linux/arm64 deps 2/4]` when a build has several platforms, as buildx prefixes them.
    func label(withPlatform: Bool) -> String {
        let counter = "\(stageStep ?? number)\(total.map { "/\($0)" } ?? "")"
        let inner = stage.map { "\($0) \(counter)" } ?? counter
        return withPlatform ? "[\(platform) \(inner)]" : "[\(inner)]"
    }

    var key: String { "\(platform)#\(number)" }
}

/// Shows a build as it runs. On a terminal (`tty`): a live list of steps with CACHED markers and
/// timings, a header and the running step's timer that keep counting, and the latest output under
/// the running step, as buildx does. Otherwise (`plain`): numbered lines,
/// `#N [i/n] INSTRUCTION`, its output, then `#N CACHED` or `#N DONE 1.2s`. Either way a failed
/// step's last lines of output are shown again at the end, with the command for the whole log.
final class ProgressUI: Sendable {
    enum Mode { case tty, plain, quiet }

    struct State {
        var steps: [Components.Schemas.BuildStep] = []
        /// The last lines of output of each step, by `platform#number`.
        var tails: [String: [String]] = [:]
        var runningSince: [String: ContinuousClock.Instant] = [:]
        var drawnLines = 0
        var lastDraw = ContinuousClock.now - .seconds(1)
        /// The running step of each platform (log lines carry their platform).
        var currentStep: [String: String] = [:]
        var started = ContinuousClock.now
        var finished: String?
        /// Transient progress shows only once an operation has taken a moment.
        var lastProgress = ContinuousClock.now
        var progressShown = false
    }

    static let tailLines = 12
    let mode: Mode
    /// Steps carry their platform in their label when the build has several.
    let multiPlatform: Bool
    private let state = Mutex(State())
    private let ticker = Mutex<Task<Void, Never>?>(nil)

    init(mode: Build.ProgressMode, platforms: Int = 1) {
        multiPlatform = platforms > 1
        switch mode {
        case .tty: self.mode = .tty
        case .plain: self.mode = .plain
        case .quiet: self.mode = .quiet
        case .auto, .rawjson: self.mode = isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb" ? .tty : .plain
        }
    }

    static func seconds(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return String(format: "%.1fs", Double(ms) / 1000)
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// A line of the CLI's own (context, queue, result).
    func info(_ line: String) {
        guard mode != .quiet else { return }
        state.withLock { s in
            clear(&s)
            write(line + "\n")
            if mode == .tty, !s.steps.isEmpty, s.finished == nil { draw(&s, force: true) }
        }
    }

    /// A transient status line (packing, uploading): redrawn in place on a terminal, at most once
    /// a second otherwise.
    func progress(_ line: String) {
        guard mode != .quiet else { return }
        state.withLock { s in
            let now = ContinuousClock.now
            if mode == .tty {
                guard now - s.lastProgress > .milliseconds(250) else { return }
                s.lastProgress = now
                write("\r\u{1B}[K" + line)
                s.progressShown = true
            } else {
                guard now - s.lastProgress > .seconds(2) else { return }
                s.lastProgress = now
                write(line + "\n")
            }
        }
    }

    /// Starts timing a new operation whose progress is shown only once it has taken a moment.
    func beginOperation() {
        state.withLock { $0.lastProgress = .now }
    }

    /// Starts the live display's clock (tty): the header and the running step's timer keep counting
    /// while nothing is logged.
    func start() {
        guard mode == .tty else { return }
        state.withLock { $0.started = .now }
        ticker.withLock { task in
            task = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    guard let self else { return }
                    self.state.withLock { s in
                        if s.finished == nil, !s.steps.isEmpty { self.draw(&s, force: false) }
                    }
                }
            }
        }
    }

    func handle(_ entry: Components.Schemas.BuildLogEntry) {
        guard mode != .quiet else { return }
        state.withLock { s in
            switch entry.kind {
            case .step:
                guard let step = entry.step else { return }
                if let i = s.steps.firstIndex(where: { $0.key == step.key }) {
                    s.steps[i] = step
                } else {
                    s.steps.append(step)
                }
                if step.status == .running {
                    s.currentStep[step.platform] = step.key
                    s.runningSince[step.key] = .now
                } else if s.currentStep[step.platform] == step.key {
                    s.currentStep[step.platform] = nil
                }
                if mode == .plain {
                    let n = Self.number(step.key, in: s)
                    switch step.status {
                    case .running: write("#\(n) \(step.label(withPlatform: multiPlatform)) \(step.instruction)\n")
                    case .done: write(step.cached ? "#\(n) CACHED\n" : "#\(n) DONE \(Self.ms(step.durationMs))\n")
                    case .failed: write("#\(n) ERROR after \(Self.ms(step.durationMs))\n")
                    case .canceled: write("#\(n) CANCELED after \(Self.ms(step.durationMs))\n")
                    }
                }
            case .log:
                guard let line = entry.line else { return }
                let key = s.currentStep[entry.platform ?? ""] ?? (s.currentStep.count == 1 ? s.currentStep.values.first : nil)
                if let key, !line.hasPrefix("#drydock") {
                    var tail = s.tails[key, default: []]
                    tail.append(line)
                    if tail.count > Self.tailLines { tail.removeFirst(tail.count - Self.tailLines) }
                    s.tails[key] = tail
                }
                if mode == .plain {
                    let prefix = multiPlatform && line.hasPrefix("#drydock") ? "[\(entry.platform ?? "")] " : ""
                    if let key, !line.hasPrefix("#drydock") {
                        write("#\(Self.number(key, in: s)) \(line)\n")
                    } else {
                        write("\(prefix)\(line)\n")
                    }
                }
            case .status:
                if mode == .plain, let line = entry.line { write("\(line)\n") }
            }
            if mode == .tty { draw(&s, force: entry.kind == .step) }
        }
    }

    /// A step's number in the display: its place among every platform's steps, as buildx numbers them.
    static func number(_ key: String, in s: State) -> Int {
        (s.steps.firstIndex { $0.key == key } ?? s.steps.count) + 1
    }

    static func ms(_ value: Int64?) -> String {
        String(format: "%.1fs", Double(value ?? 0) / 1000)
    }

    private func clear(_ s: inout State) {
        if mode == .tty, s.progressShown {
            write("\r\u{1B}[K")
            s.progressShown = false
        }
        guard mode == .tty, s.drawnLines > 0 else { return }
        write("\u{1B}[\(s.drawnLines)F\u{1B}[J")
        s.drawnLines = 0
    }

    private func draw(_ s: inout State, force: Bool) {
        let now = ContinuousClock.now
        guard force || now - s.lastDraw > .milliseconds(100) else { return }
        s.lastDraw = now
        clear(&s)
        let width = 120
        let finishedCount = s.steps.filter { $0.status != .running }.count
        var header = "[+] Building \(Self.seconds(now - s.started)) (\(finishedCount)/\(s.steps.count))"
        if let finished = s.finished { header += " \(finished)" }
        var lines: [String] = [header]
        for step in s.steps {
            let marker: String
            switch step.status {
            case .running: marker = s.runningSince[step.key].map { " \(Self.seconds(now - $0))" } ?? ""
            case .done: marker = step.cached ? " CACHED" : " \(Self.ms(step.durationMs))"
            case .failed: marker = " ERROR"
            case .canceled: marker = " CANCELED"
            }
            let prefix = step.status == .done ? " => " : "=> "
            lines.append(String((prefix + "\(step.label(withPlatform: multiPlatform)) \(step.instruction)").prefix(width - 12)) + marker)
            if step.status == .running, s.finished == nil {
                for line in (s.tails[step.key] ?? []).suffix(6) { lines.append("    " + String(line.prefix(width - 4))) }
            }
        }
        write(lines.joined(separator: "\n") + "\n")
        s.drawnLines = lines.count
    }

    /// Ends the live display with its final line (tty) and, when a step failed, shows that step's
    /// last lines of output as buildx does.
    func finish(status: Components.Schemas.BuildStatus) {
        ticker.withLock { $0?.cancel() }
        guard mode != .quiet else { return }
        state.withLock { s in
            s.finished = switch status {
            case .succeeded: "FINISHED"
            case .canceled: "CANCELED"
            case .failed: "FAILED"
            case .queued, .running: nil
            }
            if mode == .tty {
                draw(&s, force: true)
                s.drawnLines = 0
            }
            for step in s.steps where step.status == .failed {
                let n = Self.number(step.key, in: s)
                var report = ["------", " > \(step.label(withPlatform: multiPlatform)) \(step.instruction):"]
                report += (s.tails[step.key] ?? []).map { "#\(n) \($0)" }
                report.append("------")
                write(report.joined(separator: "\n") + "\n")
            }
        }
    }
}
