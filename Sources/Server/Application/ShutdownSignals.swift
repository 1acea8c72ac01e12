import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// SIGTERM and SIGINT for `drydock-server`, received by a signal handler of its own rather than
/// through Dispatch's signal sources.
///
/// Dispatch on Linux reads signals from a `signalfd`, which sees only signals that are blocked in
/// the thread they are delivered to. The main thread waits in `sigsuspend` with nothing blocked,
/// so the kernel hands it every SIGTERM, and Dispatch's own handler passes it on with
/// `pthread_kill` to the thread that set the source up. A server once sat idle after SIGTERM (no
/// shutdown began, nothing was logged, twice in a row, in the 9-minute queue run of issue 17 and
/// once in CI after a connection flood). Here the handler only writes the signal's number to a pipe
/// (async-signal-safe, whichever thread runs it), and a thread of its own reads the pipe:
///
/// - the first signal is logged and starts the graceful shutdown;
/// - a second one stops at once: the private PostgreSQL is stopped (`pg_ctl stop -m fast`) and the
///   process exits 130;
/// - if the graceful shutdown (and the cancellation after it) has not ended the process within
///   `deadline`, the same: logged, PostgreSQL stopped, exit 1. A shutdown can take longer than
///   configured, but never forever.
public final class ShutdownSignals: Sendable {
    private struct State {
        var emergencyStops: [(name: String, argv: [String])] = []
        var tracker: ShutdownTracker?
        var installed = false
    }
    private let state = Mutex(State())
    private let forcing = Atomic<Bool>(false)
    let logger: Logger
    /// From the first signal to the forced exit.
    let deadline: Duration

    public init(logger: Logger, deadline: Duration) {
        self.logger = logger
        self.deadline = deadline
    }

    /// A command that stops something this process started and must not leave behind (the
    /// private PostgreSQL), run before a forced exit.
    func addEmergencyStop(_ name: String, _ argv: [String]) {
        state.withLock { $0.emergencyStops.append((name, argv)) }
    }

    /// The tracker that reports which services a shutdown still waits for, told at the first signal.
    func attach(_ tracker: ShutdownTracker) {
        state.withLock { $0.tracker = tracker }
    }

    /// Installs the handlers for SIGTERM and SIGINT; `gracefulShutdown` runs at the first one.
    /// Once per process.
    public func install(gracefulShutdown: @escaping @Sendable () async -> Void) throws {
        guard !state.withLock({ state in defer { state.installed = true }; return state.installed }) else { return }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // The handler must never block: a full pipe drops the byte (more than enough are queued).
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        signalPipeWrite.store(fds[1], ordering: .sequentiallyConsistent)
        let readEnd = fds[0]
        let thread = Thread { [self] in self.watch(readEnd, gracefulShutdown: gracefulShutdown) }
        thread.name = "drydock-signals"
        thread.start()
        for signal in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = shutdownSignalHandler
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            guard sigaction(signal, &action, nil) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
    }

    private func watch(_ fd: Int32, gracefulShutdown: @escaping @Sendable () async -> Void) {
        var received = 0
        var forcedAt: ContinuousClock.Instant?
        while true {
            var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let wait: Int32 = forcedAt.map { at in
                let left = at - .now
                return left <= .zero ? 0 : Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            } ?? -1
            let ready = Glibc.poll(&poll, 1, wait)
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("signal watcher stopped: \(String(cString: strerror(errno)))")
                return
            }
            if ready == 0 {
                stopNow("the shutdown did not finish within \(deadline.components.seconds) s of the signal; stopping now", status: 1)
            }
            var byte: UInt8 = 0
            guard read(fd, &byte, 1) == 1 else { continue }
            let name = Int32(byte) == SIGINT ? "SIGINT" : "SIGTERM"
            received += 1
            if received == 1 {
                logger.notice("\(name): shutting down gracefully (the HTTP server finishes the requests in flight, then each service stops; at most \(deadline.components.seconds) s). Send it again to stop at once")
                state.withLock { $0.tracker }?.shutdownBegan()
                forcedAt = .now + deadline
                Task { await gracefulShutdown() }
            } else {
                stopNow("\(name) again: stopping now", status: 130)
            }
        }
    }

    /// A forced stop has begun: its exit status is the process's, whatever else ends meanwhile.
    public var isForcingExit: Bool { forcing.load(ordering: .sequentiallyConsistent) }

    /// Stops what must not be left behind and exits, without waiting for anything else.
    private func stopNow(_ reason: String, status: Int32) -> Never {
        forcing.store(true, ordering: .sequentiallyConsistent)
        logger.warning("\(reason)")
        for stop in state.withLock({ $0.emergencyStops }) {
            logger.warning("stopping \(stop.name)")
            let exit = Self.runAndWait(stop.argv)
            if exit != 0 { logger.error("could not stop \(stop.name) (exit \(exit))") }
        }
        fflush(nil)  // every open stream: the log lines above reach the log
        _exit(status)
    }

    /// Runs a command to its end on this thread (no task, no event loop): the exit status, or -1.
    static func runAndWait(_ argv: [String]) -> Int32 {
        guard let executable = argv.first else { return -1 }
        var arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        arguments.append(nil)
        defer { for argument in arguments { free(argument) } }
        var pid: pid_t = 0
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with no signal blocked and default dispositions.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        guard posix_spawn(&pid, executable, nil, &attributes, arguments, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }
}

/// The write end of the signal pipe, for the handler (set before the handler is installed).
private let signalPipeWrite = Atomic<Int32>(-1)

/// Writes the signal's number to the pipe; nothing else (async-signal-safe).
private func shutdownSignalHandler(_ signal: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: signal)
    let fd = signalPipeWrite.load(ordering: .relaxed)
    if fd >= 0 { _ = write(fd, &byte, 1) }
    errno = saved
}
