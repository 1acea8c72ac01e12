import Logging
import Synchronization

/// Tells every replica to drop what it cached about a token or a project, through PostgreSQL's
/// `NOTIFY` on the channel `BuildSignals` listens to: a revocation, a project's deletion or a
/// member's removal on one server reaches the others' caches within the notification's delivery
/// (milliseconds), not their caches' lifetime.
///
/// Messages: `invalidate:tokens` (every grant), `invalidate:token:<id>`, `invalidate:project:<id>`.
final class CacheBroadcast: Sendable {
    private let send = Mutex<(@Sendable (String) -> Void)?>(nil)

    /// How messages leave this process (set once the database client exists).
    func connect(database: Database, logger: Logger) {
        send.withLock {
            $0 = { message in
                Task {
                    do {
                        try await database.query("SELECT pg_notify(\(BuildSignals.channel), \(message))", logger: logger)
                    } catch {
                        logger.warning("could not tell other servers to drop a cache entry", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
    }

    func publish(_ message: String) {
        send.withLock { $0 }?(message)
    }
}
