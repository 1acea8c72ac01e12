import Foundation

/// A child process in its own process group (so a cancel reaches everything it started), with
/// standard output and error merged into one stream of lines. posix_spawn and waitpid on
/// dedicated threads: blocking never happens on Swift's cooperative pool.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private let outputFD: Int32
    private let exit: Task<Int32, Never>

    public init(_ argv: [String], environment: [String: String], directory: String? = nil) throws {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        // Glibc's addchdir_np is not exported to Swift: change directory through env -C.
        let argv = directory.map { ["/usr/bin/env", "-C", $0] + argv } ?? argv
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        close(pipeFDs[1])
        guard rc == 0 else {
            close(pipeFDs[0])
            throw ChildProcessError.spawn(argv[0], String(cString: strerror(rc)))
        }
        self.pid = pid
        self.outputFD = pipeFDs[0]
        let childPID = pid
        self.exit = Task.detached {
            await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    var status: Int32 = 0
                    while waitpid(childPID, &status, 0) == -1, errno == EINTR {}
                    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                    continuation.resume(returning: code)
                }
            }
        }
    }

    /// Lines of output as they come (without their newline), ending when the process closes them.
    public func lines() -> AsyncStream<String> {
        let fd = outputFD
        return AsyncStream(bufferingPolicy: .unbounded) { continuation in
            Thread.detachNewThread {
                defer { close(fd) }
                var pending: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(fd, &buffer, buffer.count)
                    if n < 0, errno == EINTR { continue }
                    if n <= 0 { break }
                    pending += buffer[0..<n]
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        var line = Array(pending[..<newline])
                        if line.last == UInt8(ascii: "\r") { line.removeLast() }
                        continuation.yield(String(decoding: line, as: UTF8.self))
                        pending.removeFirst(newline + 1)
                    }
                }
                if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
                continuation.finish()
            }
        }
    }

    /// The exit code (128 + signal when killed).
    public func wait() async -> Int32 { await exit.value }

    /// SIGTERM to the whole group, then SIGKILL if it has not gone after `grace`.
    public func terminate(grace: Duration = .seconds(5)) async {
        kill(-pid, SIGTERM)
        let exited = await withTaskGroup(of: Bool.self) { group in
            group.addTask { _ = await self.wait(); return true }
            group.addTask { try? await Task.sleep(for: grace); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !exited {
            kill(-pid, SIGKILL)
            _ = await wait()
        }
    }

    /// Runs to completion and returns (exit code, output).
    public static func run(_ argv: [String], environment: [String: String], directory: String? = nil) async throws -> (Int32, String) {
        let child = try ChildProcess(argv, environment: environment, directory: directory)
        var output: [String] = []
        for await line in child.lines() { output.append(line) }
        return (await child.wait(), output.joined(separator: "\n"))
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case spawn(String, String)
    public var description: String {
        switch self {
        case .spawn(let name, let why): "could not start \(name): \(why)"
        }
    }
}
