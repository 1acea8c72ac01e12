import Foundation
import Logging
import PostgresNIO

/// Build contexts and builds in PostgreSQL: creation (with one job per platform, under the
/// organization's caps), reads, listing and cancel. The jobs' queue is `JobQueue`; the log is
/// `BuildLog`.
public struct BuildStore: Sendable {
    let client: Database
    let logger: Logger
    let secretBox: BuildSecretBox

    public init(client: Database, logger: Logger, secretBox: BuildSecretBox) {
        self.client = client
        self.logger = logger
        self.secretBox = secretBox
    }

    // MARK: contexts

    func context(projectId: String, digest: String) async throws -> (size: Int64, createdAt: Date)? {
        let rows = try await client.query(
            "SELECT size, created_at FROM build_contexts WHERE project_id = \(projectId) AND digest = \(digest)", logger: logger)
        for try await (size, created) in rows.decode((Int64, Date).self) { return (size, created) }
        return nil
    }

    func recordContext(projectId: String, digest: String, size: Int64) async throws -> Date {
        let rows = try await client.query(
            """
            INSERT INTO build_contexts (project_id, digest, size) VALUES (\(projectId), \(digest), \(size))
            ON CONFLICT (project_id, digest) DO UPDATE SET last_used_at = now()
            RETURNING created_at
            """, logger: logger)
        for try await created in rows.decode(Date.self) { return created }
        return Date()
    }

    // MARK: builds

    static let buildColumns = "id, project_id, organization_id, status, context_digest, spec, digest, error, created_at, started_at, finished_at, seq"
    typealias BuildRow = (String, String, String, String, String, String, String?, String?, Date, Date?, Date?, Int64)

    static func build(_ r: BuildRow) throws -> (seq: Int64, item: BuildRecord) {
        let spec = try BuildJSON.decoder.decode(BuildSpec.self, from: Data(r.5.utf8))
        return (r.11, BuildRecord(
            id: r.0, projectId: r.1, organizationId: r.2, status: BuildStatus(rawValue: r.3) ?? .failed, contextDigest: r.4,
            spec: spec, digest: r.6, error: r.7, createdAt: r.8, startedAt: r.9, finishedAt: r.10))
    }

    static let jobColumns = "id, build_id, platform, status, worker_name, started_at, finished_at, digest, error, emulated"
    typealias JobRow = (String, String, String, String, String?, Date?, Date?, String?, String?, Bool)

    static func job(_ r: JobRow) -> JobRecord {
        JobRecord(id: r.0, buildId: r.1, platform: r.2, status: BuildStatus(rawValue: r.3) ?? .failed, workerName: r.4,
                  startedAt: r.5, finishedAt: r.6, digest: r.7, error: r.8, emulated: r.9)
    }

    func create(id: String, projectId: String, organizationId: String, contextDigest: String, spec: BuildSpec,
                secrets: BuildSecrets, createdByTokenId: String) async throws -> BuildRecord {
        let specText = String(decoding: try BuildJSON.encoder.encode(spec), as: UTF8.self)
        let sealed = secrets.isEmpty ? nil : ByteBuffer(bytes: try secretBox.seal(secrets))
        try await client.transaction(logger: logger) { tx in
            // Caps and plan limits, checked under the organization's lock: concurrent creations
            // all see the same figures.
            if let refusal = try await UsageStore.refusal(organizationId: organizationId, on: tx, logger: logger) {
                throw DomainError.limit("usage_limit", refusal)
            }
            try await tx.query(
                """
                INSERT INTO builds (id, project_id, organization_id, status, context_digest, spec, sealed_secrets, created_by_token_id)
                VALUES (\(id), \(projectId), \(organizationId), 'queued', \(contextDigest), \(specText), \(sealed), \(createdByTokenId))
                """, logger: logger)
            for platform in spec.platforms {
                try await tx.query(
                    """
                    INSERT INTO build_jobs (id, build_id, organization_id, platform, status)
                    VALUES (\(Identifier.generate()), \(id), \(organizationId), \(platform.description), 'queued')
                    """, logger: logger)
            }
            try await tx.query("UPDATE build_contexts SET last_used_at = now() WHERE project_id = \(projectId) AND digest = \(contextDigest)", logger: logger)
            try await BuildSignals.notify("jobs", on: tx, logger: logger)
        }
        guard let build = try await build(id: id) else { throw DomainError.internal("build vanished") }
        return build
    }

    func build(id: String) async throws -> BuildRecord? {
        let rows = try await client.query("SELECT \(unescaped: Self.buildColumns) FROM builds WHERE id = \(id)", logger: logger)
        var found: BuildRecord?
        for try await row in rows.decode(BuildRow.self) { found = try Self.build(row).item }
        guard var build = found else { return nil }
        build.jobs = try await jobs(buildIds: [build.id])[build.id] ?? []
        build.steps = try await steps(buildId: build.id)
        return build
    }

    func list(projectId: String, status: BuildStatus?, cursor: Int64, limit: Int) async throws -> Page<BuildRecord> {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.buildColumns) FROM builds
            WHERE project_id = \(projectId) AND seq < \(cursor) AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
            ORDER BY seq DESC LIMIT \(limit + 1)
            """, logger: logger)
        var out: [(seq: Int64, item: BuildRecord)] = []
        for try await row in rows.decode(BuildRow.self) { out.append(try Self.build(row)) }
        var page = PageCursor.page(out, limit: limit)
        let jobs = try await jobs(buildIds: page.items.map(\.id))
        for i in page.items.indices { page.items[i].jobs = jobs[page.items[i].id] ?? [] }
        return page
    }

    private func jobs(buildIds: [String]) async throws -> [String: [JobRecord]] {
        guard !buildIds.isEmpty else { return [:] }
        let rows = try await client.query(
            "SELECT \(unescaped: Self.jobColumns) FROM build_jobs WHERE build_id = ANY(\(buildIds)) ORDER BY seq", logger: logger)
        var out: [String: [JobRecord]] = [:]
        for try await row in rows.decode(JobRow.self) { out[row.1, default: []].append(Self.job(row)) }
        return out
    }

    /// The latest state of each step, from the step events in the log.
    private func steps(buildId: String) async throws -> [StepRecord] {
        let rows = try await client.query(
            "SELECT entry FROM build_log WHERE build_id = \(buildId) AND kind = 'step' ORDER BY position", logger: logger)
        var order: [String] = []
        var latest: [String: StepRecord] = [:]
        for try await text in rows.decode(String.self) {
            guard let step = try? BuildJSON.decoder.decode(LogEntry.self, from: Data(text.utf8)).step else { continue }
            let key = "\(step.platform)#\(step.number)"
            if latest[key] == nil { order.append(key) }
            latest[key] = step
        }
        return order.compactMap { latest[$0] }
    }

    func status(buildId: String) async throws -> BuildStatus? {
        let rows = try await client.query("SELECT status FROM builds WHERE id = \(buildId)", logger: logger)
        for try await status in rows.decode(String.self) { return BuildStatus(rawValue: status) }
        return nil
    }

    /// Closes a build once none of its jobs is left to run: its status follows its jobs'. A
    /// multi-platform build whose jobs all succeeded is not closed here: its image index is
    /// assembled first (`IndexAssembler`), which closes it; the answer says so.
    @discardableResult
    static func closeIfDone(buildId: String, on tx: PostgresConnection, logger: Logger) async throws -> CloseOutcome {
        var jobs: [(status: BuildStatus, digest: String?, error: String?, platform: String)] = []
        for try await (status, digest, error, platform) in try await tx.query(
            "SELECT status, digest, error, platform FROM build_jobs WHERE build_id = \(buildId) ORDER BY seq", logger: logger
        ).decode((String, String?, String?, String).self) {
            jobs.append((BuildStatus(rawValue: status) ?? .failed, digest, error, platform))
        }
        guard !jobs.isEmpty, jobs.allSatisfy({ $0.status.isFinished }) else { return .open }
        let status: BuildStatus =
            jobs.allSatisfy { $0.status == .succeeded } ? .succeeded : jobs.contains { $0.status == .failed } ? .failed : .canceled
        if status == .succeeded, jobs.count > 1 { return .needsIndex }
        let digest = jobs.count == 1 ? jobs[0].digest : nil
        // The failure that decided it, named by its platform when there are several.
        let failed = jobs.first { $0.status == .failed && $0.error != nil } ?? jobs.first { $0.error != nil }
        let error = failed.map { jobs.count > 1 ? "\($0.platform): \($0.error ?? "")" : ($0.error ?? "") }
        try await close(buildId: buildId, status: status, digest: digest, error: error, on: tx, logger: logger)
        return .closed
    }

    enum CloseOutcome {
        case open, closed, needsIndex
    }

    /// Records a build's final status (once) and ends its log with it.
    static func close(buildId: String, status: BuildStatus, digest: String?, error: String?, on tx: PostgresConnection, logger: Logger) async throws {
        var closed = false
        for try await _ in try await tx.query(
            """
            UPDATE builds SET status = \(status.rawValue), digest = \(digest), error = \(error), finished_at = now(),
                   sealed_secrets = NULL
            WHERE id = \(buildId) AND status NOT IN ('succeeded', 'failed', 'canceled')
            RETURNING id
            """, logger: logger).decode(String.self) { closed = true }
        guard closed else { return }
        try await BuildLog.append(
            [LogEntry(kind: .status, status: status, error: error, digest: digest)],
            buildId: buildId, on: tx, logger: logger)
    }

    /// The registry credentials a build was sent with, while it runs (erased when it closes).
    func credentials(buildId: String) async throws -> [BuildSecrets.Credential] {
        let rows = try await client.query("SELECT sealed_secrets FROM builds WHERE id = \(buildId)", logger: logger)
        for try await sealed in rows.decode(ByteBuffer?.self) {
            guard let sealed else { return [] }
            return try secretBox.open(Array(buffer: sealed)).credentials
        }
        return []
    }

    /// Closes a multi-platform build once its index is written (or writing it failed).
    func closeAssembled(buildId: String, status: BuildStatus, digest: String?, error: String?) async throws {
        try await client.transaction(logger: logger) { tx in
            try await Self.close(buildId: buildId, status: status, digest: digest, error: error, on: tx, logger: logger)
        }
    }

    /// Multi-platform builds whose jobs all succeeded but whose index is not written yet (the
    /// server stopped in between): the lease reaper assembles them.
    func awaitingIndex() async throws -> [String] {
        let rows = try await client.query(
            """
            SELECT b.id FROM builds b
            WHERE b.status = 'running'
              AND (SELECT count(*) FROM build_jobs j WHERE j.build_id = b.id) > 1
              AND NOT EXISTS (SELECT 1 FROM build_jobs j WHERE j.build_id = b.id AND j.status <> 'succeeded')
            """, logger: logger)
        var out: [String] = []
        for try await id in rows.decode(String.self) { out.append(id) }
        return out
    }

    /// Cancels a build: queued jobs at once, running ones when their worker next checks in.
    func cancel(buildId: String) async throws {
        try await client.transaction(logger: logger) { tx in
            var status: BuildStatus?
            for try await value in try await tx.query("SELECT status FROM builds WHERE id = \(buildId) FOR UPDATE", logger: logger).decode(String.self) {
                status = BuildStatus(rawValue: value)
            }
            guard let status, !status.isFinished else { return }
            try await tx.query("UPDATE builds SET cancel_requested = true WHERE id = \(buildId)", logger: logger)
            try await tx.query(
                """
                UPDATE build_jobs SET status = 'canceled', finished_at = now(), error = 'canceled before it started'
                WHERE build_id = \(buildId) AND status = 'queued'
                """, logger: logger)
            try await Self.closeIfDone(buildId: buildId, on: tx, logger: logger)
            try await BuildSignals.notify("cancel", on: tx, logger: logger)
        }
    }
}
