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

    /// Appends entries (without positions) to a build's log, numbering them, and signals followers.
    /// Two round trips: the positions are taken (which locks the build's row until commit), then
    /// the entries are written and followers signalled in one statement.
    static func append(_ entries: [LogEntry], buildId: String, on tx: PostgresConnection, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        let count = Int64(entries.count)
        var next: Int64 = 0
        for try await value in try await tx.query(
            "UPDATE builds SET next_log_position = next_log_position + \(count) WHERE id = \(buildId) RETURNING next_log_position - \(count)",
            logger: logger).decode(Int64.self) { next = value }
        var positions: [Int64] = []
        var kinds: [String] = []
        var texts: [String] = []
        for var entry in entries {
            entry.offset = next
            positions.append(next)
            kinds.append(entry.kind.rawValue)
            texts.append(String(decoding: try BuildJSON.encoder.encode(entry), as: UTF8.self))
            next += 1
        }
        try await tx.query(
            """
            WITH written AS (
                INSERT INTO build_log (build_id, position, kind, entry)
                SELECT \(buildId), * FROM unnest(\(positions)::bigint[], \(kinds)::text[], \(texts)::text[])
            )
            SELECT pg_notify(\(BuildSignals.channel), \("build:\(buildId)"))
            """, logger: logger)
    }
}
