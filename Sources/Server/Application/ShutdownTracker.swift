import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Says, while the server shuts down, which of its services it is still waiting for: once a
/// graceful shutdown has begun, every 10 seconds until each service has returned. A shutdown
/// that hangs then names what hangs instead of leaving an idle process and no clue.
final class ShutdownTracker: Sendable {
    private struct State {
        var running: [String] = []
        var watching = false
        /// A service has been told to stop: the HTTP server, which stops first, is done.
        var servicesStopping = false
    }
    private let state = Mutex(State())
    let logger: Logger
    let interval: Duration

    init(logger: Logger, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.interval = interval
    }

    /// `service` under `name`, reported while it keeps a shutdown waiting.
    func track(_ name: String, _ service: any Service) -> any Service {
        TrackedService(name: name, inner: service, tracker: self)
    }

    fileprivate func started(_ name: String) { state.withLock { $0.running.append(name) } }

    fileprivate func finished(_ name: String) {
        let shuttingDown = state.withLock { state -> Bool in
            if let i = state.running.firstIndex(of: name) { state.running.remove(at: i) }
            return state.watching
        }
        if shuttingDown { logger.info("shutdown: \(name) stopped") }
    }

    /// From the signal (`ShutdownSignals`), or from the first service told to stop.
    func shutdownBegan(servicesStopping: Bool = false) {
        let first = state.withLock { state -> Bool in
            defer { state.watching = true }
            if servicesStopping { state.servicesStopping = true }
            return !state.watching
        }
        guard first else { return }
        // Not a child of any service: it must outlive the ones it watches, and ends with them.
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: interval)
                let (left, stopping) = state.withLock { ($0.running, $0.servicesStopping) }
                if left.isEmpty { return }
                if stopping {
                    logger.warning("shutdown: still waiting for \(left.joined(separator: ", "))")
                } else {
                    logger.warning("shutdown: still waiting for the HTTP server to finish its requests and close its connections")
                }
            }
        }
    }
}

private struct TrackedService: Service, CustomStringConvertible {
    let name: String
    let inner: any Service
    let tracker: ShutdownTracker

    var description: String { name }

    func run() async throws {
        tracker.started(name)
        defer { tracker.finished(name) }
        try await withGracefulShutdownHandler {
            try await inner.run()
        } onGracefulShutdown: {
            tracker.shutdownBegan(servicesStopping: true)
        }
    }
}
