import Logging
import PostgresNIO
import Synchronization

/// Sends the signals of committed transactions (`BuildSignals`' keys: a log grew, jobs were
/// queued, a cached grant is stale) to every server, many in one `NOTIFY` statement.
///
/// PostgreSQL commits transactions that notified one at a time, each holding a database-wide lock
/// through its WAL flush. A `NOTIFY` in every log append, claim and finish made that lock the
/// queue's limit under load (most waiting backends waited for it at `COMMIT`). Sent after the
/// commit instead, in batches: while one batch is being sent, the next gathers (no timer), and a
/// key raised twice in the meantime is sent once.
///
/// A signal is sent after the data it announces is committed, so a woken waiter finds it. One lost
/// (this server stopped between the commit and the send, or PostgreSQL refused the send three
/// times) costs a delay, never a wrong answer: waiters give up after their timeout and look again,
/// and cached grants live five seconds.
final class SignalPublisher: Sendable {
    private struct State {
        var pending: [String] = []
        var queued: Set<String> = []
        var sending = false
    }

    private let state = Mutex(State())
    private let client: PostgresClient
    private let waitLimit: Duration
    private let logger = Logger(label: "drydock.signals")

    init(client: PostgresClient, waitLimit: Duration) {
        self.client = client
        self.waitLimit = waitLimit
    }

    func publish(_ keys: [String]) {
        guard !keys.isEmpty else { return }
        let start = state.withLock { state -> Bool in
            for key in keys where state.queued.insert(key).inserted { state.pending.append(key) }
            if state.sending { return false }
            state.sending = true
            return true
        }
        if start { Task { await self.send() } }
    }

    /// Sends until nothing is pending; whatever is raised meanwhile goes in the next batch.
    private func send() async {
        let database = Database(client: client, waitLimit: waitLimit)
        while true {
            let batch = state.withLock { state -> [String] in
                let batch = state.pending
                state.pending = []
                state.queued = []
                if batch.isEmpty { state.sending = false }
                return batch
            }
            if batch.isEmpty { return }
            var start = 0
            while start < batch.count {
                let chunk = Array(batch[start..<min(batch.count, start + 500)])
                start += chunk.count
                for attempt in 1...3 {
                    do {
                        try await database.query(
                            "SELECT pg_notify(\(BuildSignals.channel), key) FROM unnest(\(chunk)::text[]) AS key", logger: logger)
                        break
                    } catch {
                        if attempt == 3 {
                            logger.warning("could not signal other servers; their waiters will look again after their timeout",
                                           metadata: ["signals": "\(chunk.count)", "error": "\(error)"])
                        } else {
                            try? await Task.sleep(for: .milliseconds(100 * attempt))
                        }
                    }
                }
            }
        }
    }
}

/// The signals a transaction raised, sent once it has committed (nothing if it rolled back).
final class PendingSignals: Sendable {
    @TaskLocal static var current: PendingSignals?

    private let raised = Mutex<[String]>([])

    func add(_ key: String) { raised.withLock { $0.append(key) } }

    var keys: [String] { raised.withLock { $0 } }
}
