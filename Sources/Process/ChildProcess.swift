import Foundation
import Subprocess
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// The one way Drydock runs a child process, in the server (initdb, pg_ctl), the builder
/// (buildah), the CLI (skopeo, tar) and the tests; a thin layer over swift-subprocess (and, for a
/// forced stop that must not need tasks, `runWithoutTasks` over posix_spawn).
///
/// Every child starts with the default signal dispositions and an empty signal mask, no
/// descriptors but its three standard ones, and standard input from /dev/null unless given.
public enum ChildProcess {
    /// Runs `argv` to completion and returns its exit status and output (standard output and error
    /// separately, each kept up to `outputLimit` bytes; the rest is read and dropped).
    ///
    /// `environment` nil inherits this process's; otherwise it is the child's whole environment.
    /// `argv[0]` without a slash is looked up in the child's `PATH`.
    public static func run(
        _ argv: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        input: String? = nil,
        outputLimit: Int = 8 << 20
    ) async throws -> ProcessOutcome {
        let configuration = try configuration(argv, environment: environment, directory: directory, newProcessGroup: false)
        do {
            let result: ExecutionResult<(String, String), SequenceOutput, SequenceOutput>
            if let input {
                result = try await Subprocess.run(configuration, input: .string(input), output: .sequence, error: .sequence) { execution in
                    try await collect(execution, limit: outputLimit)
                }
            } else {
                result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .sequence) { execution in
                    try await collect(execution, limit: outputLimit)
                }
            }
            let (output, errorOutput) = result.closureResult
            return ProcessOutcome(status: exitCode(result.terminationStatus), output: output, errorOutput: errorOutput)
        } catch {
            throw ChildProcessError.wrapping(error, program: argv.first ?? "")
        }
    }

    /// Runs `argv` to completion with standard output and error appended to the file at `logPath`
    /// (created if missing); returns the exit status. For children that leave daemons behind
    /// (`pg_ctl start`) and for long-lived children whose output is a log.
    public static func run(_ argv: [String], environment: [String: String]? = nil, directory: String? = nil,
                           appendingOutputTo logPath: String, handle: ProcessHandle? = nil) async throws -> Int32 {
        let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ChildProcessError.start(argv.first ?? "", "cannot open \(logPath): \(String(cString: strerror(errno)))") }
        let descriptor = FileDescriptor(rawValue: fd)
        defer { try? descriptor.close() }
        let configuration = try configuration(argv, environment: environment, directory: directory, newProcessGroup: handle != nil)
        do {
            let result = try await Subprocess.run(
                configuration, input: .none,
                output: .fileDescriptor(descriptor, closeAfterSpawningProcess: false),
                error: .fileDescriptor(descriptor, closeAfterSpawningProcess: false)
            ) { execution in
                handle?.started(execution.processIdentifier.value)
            }
            handle?.exited()
            return exitCode(result.terminationStatus)
        } catch {
            handle?.failed()
            throw ChildProcessError.wrapping(error, program: argv.first ?? "")
        }
    }

    /// Runs `argv` in a process group of its own (so stopping it reaches everything it started),
    /// handing each line of its merged standard output and error to `onLine` as it comes; `handle`
    /// lets another task stop it. Returns the exit status (128 + signal when killed).
    public static func stream(
        _ argv: [String],
        environment: [String: String]? = nil,
        directory: String? = nil,
        handle: ProcessHandle = ProcessHandle(),
        onStart: (pid_t) -> Void = { _ in },
        onLine: (String) async -> Void
    ) async throws -> Int32 {
        let configuration = try configuration(argv, environment: environment, directory: directory, newProcessGroup: true)
        do {
            let result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .combinedWithOutput) { execution in
                handle.started(execution.processIdentifier.value)
                onStart(execution.processIdentifier.value)
                var splitter = LineSplitter()
                for try await buffer in execution.standardOutput {
                    for line in buffer.withUnsafeBytes({ splitter.append($0) }) { await onLine(line) }
                }
                if let last = splitter.finish() { await onLine(last) }
            }
            handle.exited()
            return exitCode(result.terminationStatus)
        } catch {
            handle.failed()
            throw ChildProcessError.wrapping(error, program: argv.first ?? "")
        }
    }

    static func configuration(_ argv: [String], environment: [String: String]?, directory: String?,
                              newProcessGroup: Bool) throws -> Configuration {
        guard let program = argv.first, !program.isEmpty else { throw ChildProcessError.start("(nothing)", "no program given") }
        var options = PlatformOptions()
        if newProcessGroup { options.processGroupID = 0 }
        // A canceled task stops its child: the group first, politely, then for good.
        options.teardownSequence = [
            .send(signal: .terminate, toProcessGroup: newProcessGroup, allowedDurationToNextStep: .seconds(5)),
        ]
        var env = Environment.inherit
        if let environment {
            env = .custom(Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), $0.value) }))
        }
        return Configuration(
            executable: program.contains("/") ? .path(FilePath(program)) : .name(program),
            arguments: Arguments(Array(argv.dropFirst())),
            environment: env,
            workingDirectory: directory.map { FilePath($0) },
            platformOptions: options
        )
    }

    static func collect<Input>(_ execution: Execution<Input, SequenceOutput, SequenceOutput>, limit: Int) async throws -> (String, String) {
        async let output = drain(execution.standardOutput, limit: limit)
        async let errorOutput = drain(execution.standardError, limit: limit)
        return try await (output, errorOutput)
    }

    static func drain(_ sequence: SubprocessOutputSequence, limit: Int) async throws -> String {
        var bytes: [UInt8] = []
        for try await buffer in sequence {
            let room = limit - bytes.count
            if room > 0 { buffer.withUnsafeBytes { bytes.append(contentsOf: $0.prefix(room)) } }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func exitCode(_ status: TerminationStatus) -> Int32 {
        switch status {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    /// Runs a command to its end on the calling thread (no task, no event loop, no output kept)
    /// and returns its exit status, or -1: for what must still work when tasks do not (a forced
    /// stop after a signal, `SignalPipe`). Everything else uses `run`. Unlike `run`'s children,
    /// this one inherits the caller's descriptors that are not close-on-exec: its caller exits
    /// right after it.
    public static func runWithoutTasks(_ argv: [String]) -> Int32 {
        guard let executable = argv.first else { return -1 }
        var arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        arguments.append(nil)
        defer { for argument in arguments { free(argument) } }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with no signal blocked and every disposition at its default.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        guard posix_spawn(&pid, executable, nil, &attributes, arguments, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        // WIFEXITED and WEXITSTATUS, which Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }

}

/// What a finished child left: its exit status (128 + signal when killed) and its output.
public struct ProcessOutcome: Sendable {
    public let status: Int32
    public let output: String
    public let errorOutput: String

    public var succeeded: Bool { status == 0 }

    /// The output to show a user when the child failed: standard error, or standard output when
    /// that is empty, trimmed to its last `limit` characters.
    public func failureText(limit: Int = 500) -> String {
        let text = errorOutput.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? output : errorOutput
        return String(text.trimmingCharacters(in: .whitespacesAndNewlines).suffix(limit))
    }
}

public enum ChildProcessError: Error, CustomStringConvertible, Equatable {
    case start(String, String)

    /// Subprocess's errors in a user's words; anything else (a cancellation) as it is.
    static func wrapping(_ error: any Error, program: String) -> any Error {
        guard let error = error as? SubprocessError else { return error }
        if error.code == .executableNotFound {
            return ChildProcessError.start(program, "it is not installed (not found)")
        }
        return ChildProcessError.start(program, "\(error)")
    }

    public var description: String {
        switch self {
        case .start(let program, let why): "could not run \(program): \(why)"
        }
    }
}

/// Stops a running child from another task: its process group gets SIGTERM, then SIGKILL if it is
/// still there after a grace period. A stop asked for before the child started is applied as soon
/// as it starts.
public final class ProcessHandle: Sendable {
    struct State {
        var pid: pid_t?
        var exited = false
        var stopRequested = false
        var startWaiters: [CheckedContinuation<pid_t?, Never>] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// The child's process id (its process group id too, when it has a group of its own).
    public var pid: pid_t? { state.withLock { $0.pid } }

    /// Whether the child has exited (or could not start).
    public var hasExited: Bool { state.withLock { $0.exited } }

    func started(_ pid: pid_t) {
        let (stop, waiters) = state.withLock { state in
            state.pid = pid
            defer { state.startWaiters = [] }
            return (state.stopRequested, state.startWaiters)
        }
        waiters.forEach { $0.resume(returning: pid) }
        if stop { kill(-pid, SIGTERM) }
    }

    func exited() {
        state.withLock { $0.exited = true }
    }

    func failed() {
        let waiters = state.withLock { state in
            state.exited = true
            defer { state.startWaiters = [] }
            return state.startWaiters
        }
        waiters.forEach { $0.resume(returning: nil) }
    }

    /// Waits until the child has started; nil when it could not start.
    public func waitUntilStarted() async -> pid_t? {
        await withCheckedContinuation { continuation in
            let known = state.withLock { state -> (Bool, pid_t?) in
                if state.pid != nil || state.exited { return (true, state.pid) }
                state.startWaiters.append(continuation)
                return (false, nil)
            }
            if known.0 { continuation.resume(returning: known.1) }
        }
    }

    /// Sends `signal` to the child's process group (or to the child alone).
    public func send(_ signal: Int32, toGroup: Bool = true) {
        guard let pid = state.withLock({ $0.exited ? nil : $0.pid }) else { return }
        kill(toGroup ? -pid : pid, signal)
    }

    /// SIGTERM to the group, then SIGKILL if anything of it is left after `grace`.
    public func terminate(grace: Duration = .seconds(5)) async {
        let pid = state.withLock { state -> pid_t? in
            state.stopRequested = true
            return state.pid
        }
        guard let pid else { return }
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        // The group is gone once kill(-pgid, 0) fails: a short poll on that condition.
        while kill(-pid, 0) == 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if kill(-pid, 0) == 0 { kill(-pid, SIGKILL) }
    }
}

/// A long-lived child (a server, a builder) running in a task of its own, its output appended to
/// a log file.
public final class RunningProcess: Sendable {
    public let handle = ProcessHandle()
    private let task: Task<Int32, any Error>
    private let status = ExitStatus()

    final class ExitStatus: Sendable {
        let value = Mutex<Int32?>(nil)
    }

    /// Starts `argv` in a process group of its own and returns once it runs.
    public init(_ argv: [String], environment: [String: String]? = nil, directory: String? = nil, log: String) async throws {
        let handle = self.handle
        let status = self.status
        task = Task {
            do {
                let code = try await ChildProcess.run(argv, environment: environment, directory: directory, appendingOutputTo: log, handle: handle)
                status.value.withLock { $0 = code }
                return code
            } catch {
                status.value.withLock { $0 = 127 }
                throw error
            }
        }
        if await handle.waitUntilStarted() == nil {
            _ = try await task.value
            throw ChildProcessError.start(argv.first ?? "", "it did not start")
        }
    }

    public var pid: pid_t { handle.pid ?? 0 }

    /// The exit status once it has exited (128 + signal when killed).
    public var exitStatus: Int32? { status.value.withLock { $0 } }
    public var isRunning: Bool { exitStatus == nil }

    /// Waits for the child to exit; its exit status.
    public func wait() async throws -> Int32 { try await task.value }

    /// Waits up to `timeout` for the child to exit; its exit status, or nil if it still runs.
    public func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return exitStatus
    }

    /// Sends `signal` to the child alone (as `kill PID` does).
    public func signal(_ signal: Int32) { handle.send(signal, toGroup: false) }

    /// SIGTERM (to the group), SIGKILL after `grace`, and waits for the exit.
    public func stop(grace: Duration = .seconds(10)) async {
        await handle.terminate(grace: grace)
        _ = try? await task.value
    }
}

/// Splits a byte stream into lines (without their newline or a trailing carriage return).
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    public mutating func append(_ bytes: UnsafeRawBufferPointer) -> [String] {
        var lines: [String] = []
        var start = bytes.startIndex
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            pending.append(contentsOf: bytes[start..<index])
            if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
            lines.append(String(decoding: pending, as: UTF8.self))
            pending.removeAll(keepingCapacity: true)
            start = index + 1
        }
        pending.append(contentsOf: bytes[start..<bytes.endIndex])
        return lines
    }

    public mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
