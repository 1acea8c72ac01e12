import DrydockClient
import Foundation
import Synchronization

/// Shows a build as it runs. On a terminal (`tty`): a live list of steps with CACHED markers and
/// timings and the latest output under the running step, as buildx does. Otherwise (`plain`):
/// numbered lines, `#N [i/n] INSTRUCTION`, its output, then `#N CACHED` or `#N DONE 1.2s`.
final class ProgressUI: Sendable {
    enum Mode { case tty, plain, quiet }

    struct State {
        var steps: [Components.Schemas.BuildStep] = []
        var recent: [String] = []
        var drawnLines = 0
        var lastDraw = ContinuousClock.now - .seconds(1)
        var currentStep = 0
        var started = ContinuousClock.now
    }

    let mode: Mode
    private let state = Mutex(State())

    init(mode: Build.ProgressMode) {
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
        }
    }

    func handle(_ entry: Components.Schemas.BuildLogEntry) {
        guard mode != .quiet else { return }
        state.withLock { s in
            switch entry.kind {
            case .step:
                guard let step = entry.step else { return }
                if let i = s.steps.firstIndex(where: { $0.number == step.number && $0.platform == step.platform }) {
                    s.steps[i] = step
                } else {
                    s.steps.append(step)
                    s.recent = []
                }
                s.currentStep = step.status == .running ? step.number : 0
                if mode == .plain {
                    switch step.status {
                    case .running: write("#\(step.number) \(step.total.map { "[\(step.number)/\($0)] " } ?? "")\(step.instruction)\n")
                    case .done: write(step.cached ? "#\(step.number) CACHED\n" : "#\(step.number) DONE \(Self.ms(step.durationMs))\n")
                    case .failed: write("#\(step.number) ERROR after \(Self.ms(step.durationMs))\n")
                    }
                }
            case .log:
                guard let line = entry.line else { return }
                if mode == .plain {
                    write(s.currentStep > 0 && !line.hasPrefix("#drydock") ? "#\(s.currentStep) \(line)\n" : "\(line)\n")
                } else {
                    s.recent.append(line)
                    if s.recent.count > 6 { s.recent.removeFirst(s.recent.count - 6) }
                }
            case .status:
                if mode == .plain, let line = entry.line { write("\(line)\n") }
            }
            if mode == .tty { draw(&s, force: entry.kind == .step) }
        }
    }

    static func ms(_ value: Int64?) -> String {
        String(format: "%.1fs", Double(value ?? 0) / 1000)
    }

    private func clear(_ s: inout State) {
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
        var lines: [String] = ["[+] Building \(Self.seconds(now - s.started))"]
        for step in s.steps {
            let marker: String
            switch step.status {
            case .running: marker = ""
            case .done: marker = step.cached ? " CACHED" : " \(Self.ms(step.durationMs))"
            case .failed: marker = " ERROR"
            }
            let prefix = step.status == .running ? "=> " : (step.status == .failed ? "=> " : " => ")
            lines.append(String((prefix + "[\(step.number)\(step.total.map { "/\($0)" } ?? "")] \(step.instruction)").prefix(width - 12)) + marker)
            if step.status == .running {
                for line in s.recent { lines.append("    " + String(line.prefix(width - 4))) }
            }
        }
        write(lines.joined(separator: "\n") + "\n")
        s.drawnLines = lines.count
    }

    /// Leaves the final step list on screen.
    func finish() {
        guard mode == .tty else { return }
        state.withLock { s in
            s.recent = []
            draw(&s, force: true)
            s.drawnLines = 0
        }
    }
}
