import Foundation
import Logging
import PostgresNIO

/// The cache's saved time: each step that ends uncached records how long it took (per project,
/// platform, stage and instruction); each step that ends cached is given the duration recorded
/// by the last uncached run before it (`savedMs`), which is what the cache saved it. Both happen
/// in the transaction that appends the step's end to the log, so a build's saved time is fixed
/// when it runs and does not move with later builds.
enum StepTimings {
    static func record(_ entries: inout [LogEntry], projectId: String, platform: String,
                       on tx: PostgresConnection, logger: Logger) async throws {
        let ended = entries.indices.filter { entries[$0].step?.status == .done }
        guard !ended.isEmpty else { return }
        // Durations of the last uncached runs, for the cached steps of this batch.
        let cachedKeys = ended.compactMap { i -> ByteBuffer? in
            guard let step = entries[i].step, step.cached else { return nil }
            return ByteBuffer(bytes: step.timingKey)
        }
        var known: [[UInt8]: Int64] = [:]
        if !cachedKeys.isEmpty {
            let rows = try await tx.query(
                """
                SELECT step_key, duration_ms FROM step_timings
                WHERE project_id = \(projectId) AND platform = \(platform) AND step_key = ANY(\(cachedKeys)::bytea[])
                """, logger: logger)
            for try await (key, duration) in rows.decode((ByteBuffer, Int64).self) {
                known[Array(key.readableBytesView)] = duration
            }
        }
        var keys: [ByteBuffer] = []
        var durations: [Int64] = []
        for i in ended {
            guard var step = entries[i].step else { continue }
            if step.cached {
                step.savedMs = known[step.timingKey]
                entries[i].step = step
            } else if let duration = step.durationMs, duration >= 0 {
                keys.append(ByteBuffer(bytes: step.timingKey))
                durations.append(duration)
                known[step.timingKey] = duration
            }
        }
        guard !keys.isEmpty else { return }
        try await tx.query(
            """
            INSERT INTO step_timings (project_id, platform, step_key, duration_ms)
            SELECT DISTINCT ON (k) \(projectId), \(platform), k, d FROM unnest(\(keys)::bytea[], \(durations)::bigint[]) WITH ORDINALITY AS t(k, d, n)
            ORDER BY k, n DESC
            ON CONFLICT (project_id, platform, step_key) DO UPDATE SET duration_ms = EXCLUDED.duration_ms, updated_at = now()
            """, logger: logger)
    }
}
