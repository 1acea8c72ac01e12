import DrydockProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `drydock-server` as a child process, the way an operator runs it: on the port the kernel
/// hands out (it logs the address it bound), with its output kept in a file so a failure shows
/// what the server said.
final class ServerProcess: Sendable {
    let process: RunningProcess
    let logFile: URL
    let baseURL: URL

    var pid: Int32 { process.pid }
    var port: Int { baseURL.port ?? 0 }

    /// Starts the server and waits (up to 60 s) until it logs the address it listens on.
    /// `descriptorLimit` starts it under `prlimit --nofile=N:N`.
    init(environment: [String: String], descriptorLimit: Int? = nil, logFile: URL) async throws {
        self.logFile = logFile
        let binary = packageRoot.appendingPathComponent(".build/debug/drydock-server").path
        let argv = descriptorLimit.map { ["/usr/bin/prlimit", "--nofile=\($0):\($0)", binary] } ?? [binary]
        var env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "DRYDOCK_PORT": "0"]
        for (key, value) in environment { env[key] = value }
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process = try await RunningProcess(argv, environment: env, log: logFile.path)
        baseURL = try await Self.waitForAddress(process, logFile: logFile)
    }

    var output: String { Self.output(logFile) }

    static func output(_ logFile: URL) -> String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// The last lines the server wrote, for failure messages.
    var lastOutput: String { Self.lastOutput(logFile) }

    static func lastOutput(_ logFile: URL) -> String { output(logFile).split(separator: "\n").suffix(30).joined(separator: "\n") }

    private static func waitForAddress(_ process: RunningProcess, logFile: URL) async throws -> URL {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            for line in output(logFile).split(separator: "\n") where line.contains("drydock-server listening") {
                if let range = line.range(of: "address=") {
                    let address = line[range.upperBound...].prefix { $0 != " " }
                    if let url = URL(string: String(address)) { return url }
                }
            }
            if let status = process.exitStatus {
                throw CLITestError("drydock-server exited with \(status) before listening:\n\(lastOutput(logFile))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLITestError("drydock-server did not listen within 60 s:\n\(lastOutput(logFile))")
    }

    func signal(_ signal: Int32) { process.signal(signal) }

    /// Waits for the process to end; nil if it is still running after `timeout`.
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32? {
        await process.wait(timeout: timeout)
    }

    deinit {
        if process.isRunning { process.signal(SIGKILL) }
    }
}

/// One TCP connection with plain blocking sockets: for what HTTP clients will not send (broken
/// headers, half a request, nothing at all).
final class RawConnection: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        // `self.fd` is set only once connected: a class whose initializer throws after setting
        // every property still runs its deinit, which closed the descriptor a second time (by
        // then, perhaps, a file another test's server had just opened: NIO stops the process on
        // such an EBADF).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLITestError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw CLITestError("connect: \(message)")
        }
        self.fd = fd
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw CLITestError("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Reads until the peer closes or `timeout` passes; returns what arrived and whether it closed.
    func readUntilClosed(timeout: Duration) -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<n]
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    /// Sends a whole request and returns the status line of the answer.
    func exchange(_ request: String, timeout: Duration = .seconds(10)) throws -> String {
        try send(request)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[0..<n]
            if let text = String(validating: received, as: UTF8.self), let end = text.range(of: "\r\n") {
                return String(text[..<end.lowerBound])
            }
        }
        throw CLITestError("no answer to \(request.prefix(60))")
    }

    deinit { close(fd) }
}

/// Raises this process's soft descriptor limit to its hard limit (tests open many sockets).
func raiseOwnDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// GET `path` on a new connection; the answer's status code, or nil when none comes within
/// `timeout` (or the connection is refused).
func httpStatus(port: Int, _ path: String, timeout: Duration = .seconds(3)) async -> Int? {
    try? await offCooperativePool {
        let connection = try RawConnection(port: port)
        let line = try connection.exchange("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout: timeout)
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}
