import Foundation
import Logging
import PostgresNIO

/// A build's log: entries numbered in order (log lines, step events, status changes), appended
/// inside the transaction of whatever produced them and announced to followers.
public struct BuildLog: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Log entries from `position`, at most `limit`.
    func entries(buildId: String, from position: Int64, limit: Int) async throws -> [String] {
        let rows = try await client.query(
            "SELECT entry FROM build_log WHERE build_id = \(buildId) AND position >= \(position) ORDER BY position LIMIT \(limit)",
            logger: logger)
        var out: [String] = []
        for try await text in rows.decode(String.self) { out.append(text) }
        return out
    }

    /// Appends entries (without positions) to a build's log, numbering them, in one statement: the
    /// positions are taken from the build's row (which locks it until commit) and each stored
    /// entry gets its position as its `offset`. Followers are signalled once it commits.
    static func append(_ entries: [LogEntry], buildId: String, on tx: PostgresConnection, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        let kinds = entries.map(\.kind.rawValue)
        let texts = try entries.map(stored)
        let count = Int64(entries.count)
        for try await _ in try await tx.prepared(
            Append.self,
            """
            WITH taken AS (
                UPDATE builds SET next_log_position = next_log_position + \(count) WHERE id = \(buildId)
                RETURNING next_log_position - \(count) AS first
            ), written AS (
                INSERT INTO build_log (build_id, position, kind, entry)
                SELECT \(buildId), taken.first + e.n - 1, e.kind,
                       replace(e.text, \(Self.offsetPattern), '"offset":' || (taken.first + e.n - 1))
                FROM taken, unnest(\(kinds)::text[], \(texts)::text[]) WITH ORDINALITY AS e(kind, text, n)
            )
            SELECT first FROM taken
            """, logger: logger) {}
        try await BuildSignals.notify("build:\(buildId)", on: tx, logger: logger)
    }

    /// The append, prepared once per connection (`StatementShape`).
    enum Append: StatementShape {}

    /// Appends entries to the logs of many builds in one statement (each build's in the order
    /// given), numbered as `append` numbers them; their followers are signalled once it commits.
    /// The lease reaper tells thousands of waiting builds why they wait: one transaction each
    /// cost a commit per build, every 30 s, while claims needed the same cores.
    static func append(_ entries: [(buildId: String, entry: LogEntry)], on tx: PostgresConnection, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        let builds = entries.map(\.buildId)
        let kinds = entries.map(\.entry.kind.rawValue)
        let texts = try entries.map { try stored($0.entry) }
        for try await _ in try await tx.prepared(
            AppendMany.self,
            """
            WITH input AS (
                SELECT * FROM unnest(\(builds)::text[], \(kinds)::text[], \(texts)::text[]) WITH ORDINALITY AS e(build_id, kind, text, n)
            ), counts AS (
                SELECT build_id, count(*) AS c FROM input GROUP BY build_id
            ), taken AS (
                UPDATE builds b SET next_log_position = b.next_log_position + c.c FROM counts c WHERE b.id = c.build_id
                RETURNING b.id, b.next_log_position - c.c AS first
            ), written AS (
                INSERT INTO build_log (build_id, position, kind, entry)
                SELECT e.build_id, t.first + e.k - 1, e.kind, replace(e.text, \(Self.offsetPattern), '"offset":' || (t.first + e.k - 1))
                FROM (SELECT input.*, row_number() OVER (PARTITION BY build_id ORDER BY n) AS k FROM input) e
                JOIN taken t ON t.id = e.build_id
            )
            SELECT count(*) FROM taken
            """, logger: logger) {}
        for buildId in Set(builds) { try await BuildSignals.notify("build:\(buildId)", on: tx, logger: logger) }
    }

    enum AppendMany: StatementShape {}

    /// An entry as stored, before its position is known: the statement that writes it replaces
    /// `offsetPattern` with `"offset":<position>` (JSON keys come in no set order; a string value
    /// cannot hold the unescaped quotes of the pattern).
    static func stored(_ entry: LogEntry) throws -> String {
        var entry = entry
        entry.offset = offsetSentinel
        return String(decoding: try BuildJSON.encoder.encode(entry), as: UTF8.self)
    }

    /// The offset entries are encoded with before the statement gives them their position.
    static let offsetSentinel: Int64 = -4_611_686_018_427_387_904
    static let offsetPattern = #""offset":-4611686018427387904"#
}
