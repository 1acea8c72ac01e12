import Foundation
import Logging
import PostgresNIO

/// What the pages show beside the API's answers, read for resources the API has already shown
/// the caller (the ids come from its answers): one query per page, never one per row.
struct DashboardQueries: Sendable {
    let client: Database
    let logger: Logger

    /// A build's row in a list: its steps in short and who started it.
    struct BuildSummary: Sendable {
        var steps = 0
        var cachedSteps = 0
        var savedMs: Int64 = 0
        var startedBy: String?
    }

    /// Step counts (each step's last state) and the starting token's name (and its user's email).
    func summaries(buildIds: [String]) async throws -> [String: BuildSummary] {
        guard !buildIds.isEmpty else { return [:] }
        var out: [String: BuildSummary] = [:]
        let starters = try await client.query(
            """
            SELECT b.id, t.name, t.kind, u.email FROM builds b
            LEFT JOIN tokens t ON t.id = b.created_by_token_id
            LEFT JOIN users u ON u.id = t.user_id
            WHERE b.id = ANY(\(buildIds))
            """, logger: logger)
        for try await (id, name, kind, email) in starters.decode((String, String?, String?, String?).self) {
            var summary = BuildSummary()
            if let name {
                summary.startedBy = email.map { "\($0) (\(name))" } ?? "\(kind ?? "token") token \(name)"
            }
            out[id] = summary
        }
        // The last state of each step: the log's step entries, decoded in the database.
        let steps = try await client.query(
            """
            SELECT build_id, count(*)::bigint, count(*) FILTER (WHERE cached)::bigint, coalesce(sum(saved) FILTER (WHERE cached), 0)::bigint
            FROM (
                SELECT DISTINCT ON (build_id, e->'step'->>'platform', e->'step'->>'number')
                       build_id, (e->'step'->>'cached')::boolean AS cached, (e->'step'->>'savedMs')::bigint AS saved
                FROM (SELECT build_id, position, entry::jsonb AS e FROM build_log
                      WHERE build_id = ANY(\(buildIds)) AND kind = 'step') l
                ORDER BY build_id, e->'step'->>'platform', e->'step'->>'number', position DESC
            ) last
            GROUP BY build_id
            """, logger: logger)
        for try await (id, total, cached, saved) in steps.decode((String, Int64, Int64, Int64).self) {
            out[id, default: BuildSummary()].steps = Int(total)
            out[id, default: BuildSummary()].cachedSteps = Int(cached)
            out[id, default: BuildSummary()].savedMs = saved
        }
        return out
    }

    struct BuildLine: Sendable {
        var id: String
        var projectId: String
        var status: String
        var createdAt: Date
        var startedAt: Date?
        var finishedAt: Date?
        var platforms: [String]
    }

    private static func line(_ r: (String, String, String, Date, Date?, Date?, String)) -> BuildLine {
        let spec = try? BuildJSON.decoder.decode(BuildSpec.self, from: Data(r.6.utf8))
        return BuildLine(id: r.0, projectId: r.1, status: r.2, createdAt: r.3, startedAt: r.4, finishedAt: r.5,
                         platforms: spec?.platforms.map(\.description) ?? [])
    }

    /// The newest build of each project.
    func lastBuilds(projectIds: [String]) async throws -> [String: BuildLine] {
        guard !projectIds.isEmpty else { return [:] }
        let rows = try await client.query(
            """
            SELECT b.id, b.project_id, b.status, b.created_at, b.started_at, b.finished_at, b.spec
            FROM unnest(\(projectIds)::text[]) AS p(id)
            CROSS JOIN LATERAL (SELECT * FROM builds WHERE project_id = p.id ORDER BY seq DESC LIMIT 1) b
            """, logger: logger)
        var out: [String: BuildLine] = [:]
        for try await row in rows.decode((String, String, String, Date, Date?, Date?, String).self) {
            out[row.1] = Self.line(row)
        }
        return out
    }

    /// Builds queued or running now in the organization (only these projects when given), newest first.
    func unfinishedBuilds(organizationId: String, projectIds: [String]?, limit: Int = 50) async throws -> [BuildLine] {
        let rows = try await client.query(
            """
            SELECT id, project_id, status, created_at, started_at, finished_at, spec FROM builds
            WHERE organization_id = \(organizationId) AND status IN ('queued', 'running')
              AND (\(projectIds)::text[] IS NULL OR project_id = ANY(\(projectIds)::text[]))
            ORDER BY seq DESC LIMIT \(limit)
            """, logger: logger)
        var out: [BuildLine] = []
        for try await row in rows.decode((String, String, String, Date, Date?, Date?, String).self) { out.append(Self.line(row)) }
        return out
    }
}
