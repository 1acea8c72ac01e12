import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// SIGTERM and SIGINT for Drydock's programs, through a signal handler of their own rather than
/// Dispatch's signal sources (swift-service-lifecycle's `UnixSignalsSequence`).
///
/// Dispatch on Linux reads signals from a `signalfd`, which sees only signals blocked in the thread
/// they are delivered to. A Swift program's main thread waits in `sigsuspend` with nothing blocked,
/// so the kernel hands it the signal, and Dispatch's handler passes it on with `pthread_kill` to
/// the thread that set the source up. `drydock-server` was seen idle after SIGTERM (no shutdown
/// began and nothing was logged) in a long queue run and once in CI. Here the handler only writes
/// the signal's number to a pipe, which is async-signal-safe in whichever thread runs it, and a
/// thread of its own reads the pipe and tells the subscribers. A signal nobody subscribes to
/// (any more) does what it does by default: it ends the process.
public enum SignalPipe {
    private struct State {
        var readEnd: Int32 = -1
        var handled: Set<Int32> = []
        var subscribers: [UInt64: @Sendable (Int32) -> Void] = [:]
        var nextId: UInt64 = 0
    }
    private static let state = Mutex(State())

    /// Calls `handler` on the pipe's thread for each of `signals` received from now on (not on
    /// a task: it runs even if every task is stuck). The returned function unsubscribes.
    @discardableResult
    public static func subscribe(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) throws -> @Sendable () -> Void {
        let wanted = Set(signals)
        let id = try install(signals) { state in
            state.nextId += 1
            state.subscribers[state.nextId] = { signal in if wanted.contains(signal) { handler(signal) } }
            return state.nextId
        }
        return { _ = state.withLock { $0.subscribers.removeValue(forKey: id) } }
    }

    /// The signals as they come; ending the iteration unsubscribes.
    public static func signals(_ signals: [Int32]) throws -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        let unsubscribe = try subscribe(signals) { continuation.yield($0) }
        continuation.onTermination = { _ in unsubscribe() }
        return stream
    }

    private static func install(_ signals: [Int32], _ register: (inout State) -> UInt64) throws -> UInt64 {
        let (id, startReader) = try state.withLock { state throws -> (UInt64, Int32?) in
            var startReader: Int32?
            if state.readEnd < 0 {
                var fds: [Int32] = [-1, -1]
                guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                // The handler must never block: with the pipe full, a byte is dropped (plenty wait).
                _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
                signalPipeWriteEnd.store(fds[1], ordering: .sequentiallyConsistent)
                state.readEnd = fds[0]
                startReader = fds[0]
            }
            let id = register(&state)
            for signal in signals where !state.handled.contains(signal) {
                var action = sigaction()
                action.__sigaction_handler.sa_handler = signalPipeHandler
                sigemptyset(&action.sa_mask)
                action.sa_flags = SA_RESTART
                guard sigaction(signal, &action, nil) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                state.handled.insert(signal)
            }
            return (id, startReader)
        }
        if let fd = startReader {
            let reader = Thread { read(from: fd) }
            reader.name = "drydock-signals"
            reader.start()
        }
        return id
    }

    private static func read(from fd: Int32) {
        while true {
            var byte: UInt8 = 0
            let count = Glibc.read(fd, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            guard count == 1 else { return }
            let signal = Int32(byte)
            let subscribers = state.withLock { Array($0.subscribers.values) }
            if subscribers.isEmpty {
                // Nobody listens: the default action, which for these signals ends the process.
                Glibc.signal(signal, SIG_DFL)
                raise(signal)
            }
            for subscriber in subscribers { subscriber(signal) }
        }
    }
}

/// The pipe's write end, for the handler (stored before any handler is installed).
private let signalPipeWriteEnd = Atomic<Int32>(-1)

/// Writes the signal's number to the pipe, and nothing else (async-signal-safe).
private func signalPipeHandler(_ signal: Int32) {
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: signal)
    let fd = signalPipeWriteEnd.load(ordering: .relaxed)
    if fd >= 0 { _ = write(fd, &byte, 1) }
    errno = saved
}
