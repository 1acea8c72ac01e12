import Logging
import NIOConcurrencyHelpers
import PostgresNIO

/// The name of a statement the job queue runs for every job, which PostgreSQL parses and plans
/// once per connection instead of at every call (`PostgresConnection.prepared`).
///
/// An unnamed statement is parsed, analysed and planned each time it is sent: for the queue's
/// statements that was about as much of PostgreSQL's time as running them (measured with
/// `pg_stat_statements` during a 2,000-job drain: 5.0 s planning against 6.0 s executing). A
/// prepared one is bound and executed; PostgreSQL keeps its plan (after five executions it uses
/// a generic plan when that is no costlier than the ones made for the values).
///
/// Each shape is a caseless enum: `enum Heartbeat: StatementShape {}`. The statement's text is
/// the interpolated query's (`PostgresQuery.sql`, with `$1`, `$2`… for the values), so a shape
/// must always be used with the same text: values go in as bindings, never spliced in. A shape
/// used with a second text is an error (`DomainError.internal`), not a wrong answer.
protocol StatementShape {}

/// A query run as the prepared statement of its shape.
struct PreparedQuery<Shape: StatementShape>: PostgresPreparedStatement {
    typealias Row = PostgresRow

    /// Short and unique in this process (PostgreSQL keeps 63 bytes of a statement's name).
    static var name: String { PreparedTexts.shared.entry(for: Shape.self)?.name ?? "" }
    static var sql: String { PreparedTexts.shared.entry(for: Shape.self)?.sql ?? "" }

    let binds: PostgresBindings

    /// The query's text registered for its shape (the first use registers it).
    init(_ query: PostgresQuery) throws {
        try PreparedTexts.shared.register(Shape.self, sql: query.sql)
        self.binds = query.binds
    }

    func makeBindings() throws -> PostgresBindings { binds }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// The text of each shape, set at its first use and never changed.
final class PreparedTexts: Sendable {
    static let shared = PreparedTexts()

    struct Entry: Sendable {
        var name: String
        var sql: String
    }

    private let entries = NIOLockedValueBox<[ObjectIdentifier: Entry]>([:])

    func entry(for shape: (some StatementShape).Type) -> Entry? {
        entries.withLockedValue { $0[ObjectIdentifier(shape)] }
    }

    func register(_ shape: (some StatementShape).Type, sql: String) throws {
        let conflict = entries.withLockedValue { entries -> Bool in
            let key = ObjectIdentifier(shape)
            if let known = entries[key] { return known.sql != sql }
            entries[key] = Entry(name: "dd\(entries.count)_\(String(describing: shape).prefix(40))", sql: sql)
            return false
        }
        if conflict { throw DomainError.internal("the prepared statement \(String(reflecting: shape)) was used with a second text") }
    }
}

extension PostgresConnection {
    /// Runs `query` as the prepared statement of `shape` (see `StatementShape`).
    func prepared<Shape: StatementShape>(
        _ shape: Shape.Type, _ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, PostgresRow> {
        try await execute(PreparedQuery<Shape>(query), logger: logger, file: file, line: line)
    }
}

extension Database {
    /// Runs `query` on a pooled connection as the prepared statement of `shape`, with the pool's
    /// two rules (`Database.execute`).
    func prepared<Shape: StatementShape>(
        _ shape: Shape.Type, _ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, PostgresRow> {
        try await execute(PreparedQuery<Shape>(query), logger: logger, file: file, line: line)
    }
}
