import Logging
import PostgresNIO
import Synchronization

/// PostgreSQL as the stores use it: the pooled client, with two rules no request may escape.
///
/// - A request never waits for PostgreSQL longer than `waitLimit`: when no connection can be had
///   (or a query gets no first answer) in that time, the call throws `DatabaseUnavailable`, which
///   the API answers with 503 and `Retry-After`, and the registry with its `UNAVAILABLE` error.
///   Without this, an outage holds every request open for as long as it lasts.
/// - A read, or a write its caller marks idempotent, that fails because the pooled connection
///   was dropped (PostgreSQL restarted) is tried once more on a fresh connection.
public struct Database: Sendable {
    /// The pool everything uses; `heartbeatClient`, when set, serves job heartbeats only.
    public let mainClient: PostgresClient
    /// A small pool of its own for job heartbeats (`Database.heartbeat`): a lease renewal never
    /// waits for a connection behind claims that arrive in a burst.
    let heartbeatClient: PostgresClient?
    public let waitLimit: Duration

    /// The pool this task's work uses.
    public var client: PostgresClient {
        if Self.heartbeat, let heartbeatClient { return heartbeatClient }
        return mainClient
    }
    /// Set for a server: signals raised in a transaction leave after its commit, batched with
    /// other transactions' (see `SignalPublisher`). Without it they are sent inside the
    /// transaction, at its commit (one-shot commands that exit right after).
    let signals: SignalPublisher?
    /// Set for a server: while job heartbeats and claims are running, ordinary work holds only a
    /// few pooled connections at once (see `ConnectionLane`, `Database.urgent`).
    let lane: ConnectionLane?

    /// Operations of this task are urgent: they skip the lane (job heartbeats and claims).
    @TaskLocal static var urgent = false
    /// Operations of this task renew a job's lease: they use the heartbeat pool, when there is one.
    @TaskLocal static var heartbeat = false
    /// This task already holds a lane permit (an operation inside a transaction): it does not
    /// take a second one, which could wait for itself.
    @TaskLocal static var holdsPermit = false

    /// `ordinaryWhileBusy`: the connections ordinary work may hold while urgent work runs (nil:
    /// no lane, as for one-shot commands).
    public init(client: PostgresClient, waitLimit: Duration = .seconds(5), batchesSignals: Bool = false, ordinaryWhileBusy: Int? = nil,
                heartbeatClient: PostgresClient? = nil) {
        self.mainClient = client
        self.heartbeatClient = heartbeatClient
        self.waitLimit = waitLimit
        self.signals = batchesSignals ? SignalPublisher(client: client, waitLimit: waitLimit) : nil
        self.lane = ordinaryWhileBusy.map { ConnectionLane(idleLimit: DatabaseURL.poolSize, busyLimit: $0) }
    }

    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger? = nil, file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        let retry = Self.isRead(query.sql)
        return try await retryingOnDroppedConnection(retry) {
            try await firstAnswer { try await client.query(query, logger: logger, file: file, line: line) }
        }
    }

    public func execute<Statement: PostgresPreparedStatement, Row>(
        _ statement: Statement, logger: Logger? = nil, file: String = #fileID, line: Int = #line
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, Row> where Row == Statement.Row, Statement: Sendable {
        let retry = Self.isRead(Statement.sql)
        return try await retryingOnDroppedConnection(retry) {
            try await firstAnswer { UncheckedSendable(try await client.execute(statement, logger: logger, file: file, line: line)) }.value
        }
    }

    /// Runs `body` on a leased connection; only the wait for the lease is limited.
    public func withConnection<Result: Sendable>(
        idempotent: Bool = false, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        // The task group below finishes before this returns, so `body` does not outlive the call.
        try await withoutActuallyEscaping(body) { body in
            try await retryingOnDroppedConnection(idempotent) {
                try await leased { started in
                    try await client.withConnection { connection in
                        started()
                        return try await body(connection)
                    }
                }
            }
        }
    }

    /// `withTransaction`, but a failure of `body` is rethrown as itself rather than wrapped in
    /// `PostgresTransactionError`, so callers and error mapping see the domain error they threw.
    /// `idempotent` transactions are run again once if their connection was dropped.
    public func transaction<Result: Sendable>(
        logger: Logger, idempotent: Bool = false, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        guard let signals else { return try await transactionOnce(logger: logger, idempotent: idempotent, body) }
        let raised = PendingSignals()
        let result = try await PendingSignals.$current.withValue(raised) {
            try await transactionOnce(logger: logger, idempotent: idempotent, body)
        }
        signals.publish(raised.keys)
        return result
    }

    private func transactionOnce<Result: Sendable>(
        logger: Logger, idempotent: Bool, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection(idempotent: idempotent) { connection in
            do {
                return try await connection.withTransaction(logger: logger) { try await body($0) }
            } catch let error as PostgresTransactionError {
                throw error.closureError ?? error.beginError ?? error.commitError ?? error
            }
        }
    }

    /// Whether this server does the background work `name` now: true for one replica per
    /// `interval` (the first to ask once the previous turn is that old), so housekeeping that
    /// every replica runs is done once, not once per replica.
    public func takeTurn(_ name: String, every interval: Duration, logger: Logger) async throws -> Bool {
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        var taken = false
        for try await _ in try await query(
            """
            INSERT INTO housekeeping_turns AS t (name, last_run) VALUES (\(name), now())
            ON CONFLICT (name) DO UPDATE SET last_run = now()
            WHERE t.last_run <= now() - make_interval(secs => \(seconds * 0.9))
            RETURNING 1
            """, logger: logger).decode(Int.self) { taken = true }
        // One line per turn taken (of the slow ones): which replica did which housekeeping is in the logs.
        if taken { logger.log(level: interval >= .seconds(60) ? .info : .debug, "housekeeping turn", metadata: ["name": "\(name)"]) }
        return taken
    }

    // MARK: the two rules

    /// Fails with `DatabaseUnavailable` unless `operation` returns within the wait limit.
    func firstAnswer<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await leased { started in
            let value = try await operation()
            started()
            return value
        }
    }

    /// Runs `operation`, which calls `started` once it holds a connection; fails with
    /// `DatabaseUnavailable` if that has not happened within the wait limit (the lease request is
    /// then canceled). Once started, the operation runs to its end.
    func leased<T: Sendable>(_ operation: @escaping @Sendable (_ started: @escaping @Sendable () -> Void) async throws -> T) async throws -> T {
        let flag = StartedFlag()
        let limit = waitLimit
        let asked = ContinuousClock.now
        PoolFigures.waiting.add(1, ordering: .relaxed)
        defer {
            if flag.started.load(ordering: .relaxed) {
                PoolFigures.inUse.subtract(1, ordering: .relaxed)
            } else {
                PoolFigures.waiting.subtract(1, ordering: .relaxed)
                Observability.databaseGaveUp.increment()
            }
        }
        if Self.urgent { self.lane?.markUrgent() }
        let lane = Self.urgent || Self.holdsPermit ? nil : self.lane
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                if let lane { try await lane.acquire() }
                defer { lane?.release() }
                return try await Self.$holdsPermit.withValue(lane != nil || Self.holdsPermit) {
                    try await operation {
                        guard !flag.started.exchange(true, ordering: .relaxed) else { return }
                        PoolFigures.waiting.subtract(1, ordering: .relaxed)
                        PoolFigures.inUse.add(1, ordering: .relaxed)
                        Observability.databaseWait.recordNanoseconds((ContinuousClock.now - asked).nanoseconds)
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: limit)
                if flag.started.load(ordering: .relaxed) { return nil }
                throw DatabaseUnavailable(waited: limit)
            }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
            }
            throw DatabaseUnavailable(waited: limit)
        }
    }

    func retryingOnDroppedConnection<T>(_ retry: Bool, _ operation: () async throws -> T) async throws -> T {
        do {
            return try await operation()
        } catch let error as PSQLError where retry && Self.isDroppedConnection(error) {
            return try await operation()
        }
    }

    static func isDroppedConnection(_ error: PSQLError) -> Bool {
        switch error.code {
        case .serverClosedConnection, .connectionError, .uncleanShutdown, .clientClosedConnection: return true
        case .server: return error.serverInfo?[.sqlState].map { $0.hasPrefix("08") || $0 == "57P01" || $0 == "57P02" } ?? false
        default: return false
        }
    }

    static func isRead(_ sql: String) -> Bool {
        let head = sql.drop { $0 == " " || $0 == "\n" || $0 == "\t" }.prefix(6).uppercased()
        return head == "SELECT"
    }
}

/// The pool as requests see it, for `/metrics`: operations holding a connection (a transaction,
/// or a single query until its first answer) and operations waiting for one.
enum PoolFigures {
    static let inUse = Atomic<Int>(0)
    static let waiting = Atomic<Int>(0)
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

/// PostgreSQL could not be reached within the wait limit.
public struct DatabaseUnavailable: Error, CustomStringConvertible {
    public let waited: Duration
    public var description: String { "the database did not answer within \(waited)" }
}

final class StartedFlag: Sendable {
    let started = Atomic<Bool>(false)
}

/// Moves a value the compiler cannot prove sendable (a row sequence before its first read) out
/// of a child task. Only one task at a time touches it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
