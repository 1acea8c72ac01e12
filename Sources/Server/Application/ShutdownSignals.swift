import DrydockProcess
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// SIGTERM and SIGINT for `drydock-server`, through `SignalPipe` (a handler of its own, not
/// Dispatch's signal sources; see there why):
///
/// - the first signal is logged and starts the graceful shutdown;
/// - a second one stops at once: the private PostgreSQL is stopped (`pg_ctl stop -m fast`) and the
///   process exits 130;
/// - if the graceful shutdown (and the cancellation after it) has not ended the process within
///   `deadline`, the same: logged, PostgreSQL stopped, exit 1. A shutdown can take longer than
///   configured, but never forever.
///
/// Both run on threads of their own, not on tasks: they work even if every task is stuck.
public final class ShutdownSignals: Sendable {
    private struct State {
        var emergencyStops: [(name: String, argv: [String])] = []
        var tracker: ShutdownTracker?
        var installed = false
        var received = 0
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
        try SignalPipe.subscribe([SIGTERM, SIGINT]) { [self] signal in
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            guard state.withLock({ state in state.received += 1; return state.received }) == 1 else {
                stopNow("\(name) again: stopping now", status: 130)
            }
            logger.notice("\(name): shutting down gracefully (the HTTP server finishes the requests in flight, then each service stops; at most \(deadline.components.seconds) s). Send it again to stop at once")
            state.withLock { $0.tracker }?.shutdownBegan()
            let deadline = self.deadline
            let watchdog = Thread { [self] in
                Thread.sleep(forTimeInterval: Double(deadline.components.seconds) + Double(deadline.components.attoseconds) / 1e18)
                stopNow("the shutdown did not finish within \(deadline.components.seconds) s of the signal; stopping now", status: 1)
            }
            watchdog.name = "drydock-shutdown-deadline"
            watchdog.start()
            Task { await gracefulShutdown() }
        }
    }

    /// A forced stop has begun: its exit status is the process's, whatever else ends meanwhile.
    public var isForcingExit: Bool { forcing.load(ordering: .sequentiallyConsistent) }

    /// Stops what must not be left behind and exits, without waiting for anything else.
    private func stopNow(_ reason: String, status: Int32) -> Never {
        if forcing.exchange(true, ordering: .sequentiallyConsistent) {
            // Another thread is stopping the process already.
            while true { pause() }
        }
        logger.warning("\(reason)")
        for stop in state.withLock({ $0.emergencyStops }) {
            logger.warning("stopping \(stop.name)")
            let exit = ChildProcess.runWithoutTasks(stop.argv)
            if exit != 0 { logger.error("could not stop \(stop.name) (exit \(exit))") }
        }
        fflush(nil)  // every open stream: the log lines above reach the log
        _exit(status)
    }
}
