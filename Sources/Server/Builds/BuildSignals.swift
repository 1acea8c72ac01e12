import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Wakes waiters inside this server when PostgreSQL says something happened: a job was queued
/// (`jobs`) or a build's log grew (`build:<id>`). Every server LISTENs on one channel, so a job
/// queued through one server wakes workers long-polling another, with no polling delay.
///
/// Waiting is race-free: take a `ticket` before looking at the database, then `wait` with it;
/// a signal that arrived in between makes `wait` return at once.
public final class BuildSignals: Service, Sendable {
    static let channel = "drydock_events"

    private struct State {
        var generation: [String: UInt64] = [:]
        var waiters: [String: [UUID: CheckedContinuation<Void, Never>]] = [:]
        var fired: Set<UUID> = []
        var closed = false
    }

    private let state = Mutex(State())
    let client: PostgresClient
    let logger: Logger
    /// Opens once the database can be reached: listening starts then, not before the pool runs.
    let databaseReady: StartupGate

    public init(client: PostgresClient, databaseReady: StartupGate, logger: Logger) {
        self.client = client
        self.databaseReady = databaseReady
        self.logger = logger
    }

    public struct Ticket: Sendable {
        let key: String
        let generation: UInt64
    }

    public func ticket(_ key: String) -> Ticket {
        Ticket(key: key, generation: state.withLock { $0.generation[key] ?? 0 })
    }

    /// Returns when `key` is signalled after the ticket was taken, or after `timeout`.
    public func wait(_ ticket: Ticket, timeout: Duration) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.release(ticket.key, id)
            }
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state -> Bool in
                        if state.closed { return true }
                        if state.fired.remove(id) != nil { return true }
                        if (state.generation[ticket.key] ?? 0) != ticket.generation { return true }
                        state.waiters[ticket.key, default: [:]][id] = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            await group.next()
            group.cancelAll()
            self.release(ticket.key, id)
            await group.next()
        }
        state.withLock { _ = $0.fired.remove(id) }
    }

    private func release(_ key: String, _ id: UUID) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let c = state.waiters[key]?.removeValue(forKey: id) {
                if state.waiters[key]?.isEmpty == true { state.waiters[key] = nil }
                return c
            }
            state.fired.insert(id)
            return nil
        }
        continuation?.resume()
    }

    /// Cache invalidations other replicas (and this one) publish on the same channel.
    private let invalidations = Mutex<[@Sendable (String) -> Void]>([])

    func onInvalidation(_ handler: @escaping @Sendable (String) -> Void) {
        invalidations.withLock { $0.append(handler) }
    }

    /// Wakes everyone waiting on `key` in this process.
    func fire(_ key: String) {
        if key.hasPrefix("invalidate:") {
            for handler in invalidations.withLock({ $0 }) { handler(key) }
            return
        }
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if state.generation.count > 100_000 { state.generation.removeAll() }
            state.generation[key, default: 0] &+= 1
            return Array((state.waiters.removeValue(forKey: key) ?? [:]).values)
        }
        for c in continuations { c.resume() }
    }

    /// Sends a signal to every server once the caller's transaction commits: batched after the
    /// commit by a server's `Database` (`SignalPublisher`), else inside the transaction.
    static func notify(_ key: String, on connection: PostgresConnection, logger: Logger) async throws {
        if let pending = PendingSignals.current {
            pending.add(key)
            return
        }
        try await connection.query("SELECT pg_notify(\(channel), \(key))", logger: logger)
    }

    /// True once the server is shutting down: long-polls and log follows end at once, so they
    /// never hold a graceful shutdown back (clients simply ask again).
    public var isClosed: Bool { state.withLock { $0.closed } }

    public func run() async throws {
        defer {
            state.withLock { $0.closed = true }
            fireAll()
        }
        try await databaseReady.wait()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            // Whatever happened while we were not listening: wake everyone once,
                            // and drop cached grants another replica may have revoked meanwhile.
                            self.fireAll()
                            self.fire("invalidate:tokens")
                            for try await notification in notifications {
                                self.fire(notification.payload)
                            }
                        }
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                logger.warning("listening for build events failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    private func fireAll() {
        let keys = state.withLock { Array($0.waiters.keys) }
        for key in keys { fire(key) }
    }
}
