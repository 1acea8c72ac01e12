import DrydockAPITypes
import Foundation
import Logging
import PostgresNIO

public enum BuildStatus: String, Sendable, Codable {
    case queued, running, succeeded, failed, canceled

    var isFinished: Bool { self == .succeeded || self == .failed || self == .canceled }
}

/// What was asked of a build, stored as JSON beside it.
struct BuildSpec: Codable, Sendable {
    var dockerfile: String
    var target: String?
    var platforms: [String]
    var tags: [String]
    /// `tags` resolved to full destinations (bare names inside the project registry).
    var pushTags: [String]
    var buildArgs: [String: String]
    var labels: [String: String]
    var noCache: Bool
    var pull: String
    var push: Bool
}

struct JobRecord: Sendable {
    var id: String
    var buildId: String
    var platform: String
    var status: BuildStatus
    var workerName: String?
    var startedAt: Date?
    var finishedAt: Date?
    var digest: String?
    var error: String?
}

struct BuildRecord: Sendable {
    var id: String
    var projectId: String
    var organizationId: String
    var status: BuildStatus
    var contextDigest: String
    var spec: BuildSpec
    var digest: String?
    var error: String?
    var createdAt: Date
    var startedAt: Date?
    var finishedAt: Date?
    var jobs: [JobRecord] = []
    var steps: [Components.Schemas.BuildStep] = []
}

/// A job handed to a worker, with everything it needs.
struct ClaimedJob: Sendable {
    var job: JobRecord
    var build: BuildRecord
    var buildToken: String
    var secrets: BuildSecrets
}

/// Builds, their jobs and logs in PostgreSQL. The queue is the `build_jobs` table: a job is
/// claimed with `FOR UPDATE SKIP LOCKED` (never by two workers), kept by a lease the worker
/// renews, and failed by `expireLeases` when the worker vanishes.
public struct BuildStore: Sendable {
    let client: Database
    let logger: Logger
    let secretBox: BuildSecretBox
    let lease: Duration

    public init(client: Database, logger: Logger, secretBox: BuildSecretBox, lease: Duration) {
        self.client = client
        self.logger = logger
        self.secretBox = secretBox
        self.lease = lease
    }

    var leaseSeconds: Int { Int(lease.components.seconds) }

    /// Until its first heartbeat a claimed job has a short lease: a worker that vanished while
    /// its long-poll was answered (the job went to nobody) costs seconds, not a whole lease.
    static let firstLeaseSeconds = 5

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(try RFC3339DateTranscoder().encode(date))
        }
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return try RFC3339DateTranscoder().decode(text)
        }
        return d
    }()

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
        let spec = try decoder.decode(BuildSpec.self, from: Data(r.5.utf8))
        return (r.11, BuildRecord(
            id: r.0, projectId: r.1, organizationId: r.2, status: BuildStatus(rawValue: r.3) ?? .failed, contextDigest: r.4,
            spec: spec, digest: r.6, error: r.7, createdAt: r.8, startedAt: r.9, finishedAt: r.10))
    }

    static let jobColumns = "id, build_id, platform, status, worker_name, started_at, finished_at, digest, error"
    typealias JobRow = (String, String, String, String, String?, Date?, Date?, String?, String?)

    static func job(_ r: JobRow) -> JobRecord {
        JobRecord(id: r.0, buildId: r.1, platform: r.2, status: BuildStatus(rawValue: r.3) ?? .failed, workerName: r.4,
                  startedAt: r.5, finishedAt: r.6, digest: r.7, error: r.8)
    }

    func create(id: String, projectId: String, organizationId: String, contextDigest: String, spec: BuildSpec,
                secrets: BuildSecrets, createdByTokenId: String) async throws -> BuildRecord {
        let specText = String(decoding: try Self.encoder.encode(spec), as: UTF8.self)
        let sealed = secrets.isEmpty ? nil : ByteBuffer(bytes: try secretBox.seal(secrets))
        try await client.transaction(logger: logger) { tx in
            // Caps and plan limits, checked under the organization's lock: concurrent creations
            // all see the same figures.
            if let refusal = try await UsageStore.refusal(organizationId: organizationId, on: tx, logger: logger) {
                throw APIError(status: .paymentRequired, code: "usage_limit", detail: refusal)
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
                    VALUES (\(Identifier.generate()), \(id), \(organizationId), \(platform), 'queued')
                    """, logger: logger)
            }
            try await tx.query("UPDATE build_contexts SET last_used_at = now() WHERE project_id = \(projectId) AND digest = \(contextDigest)", logger: logger)
            try await BuildSignals.notify("jobs", on: tx, logger: logger)
        }
        guard let build = try await build(id: id) else { throw APIError(status: .internalServerError, code: "internal", detail: "build vanished") }
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
    private func steps(buildId: String) async throws -> [Components.Schemas.BuildStep] {
        let rows = try await client.query(
            "SELECT entry FROM build_log WHERE build_id = \(buildId) AND kind = 'step' ORDER BY position", logger: logger)
        var order: [String] = []
        var latest: [String: Components.Schemas.BuildStep] = [:]
        for try await text in rows.decode(String.self) {
            guard let step = try? Self.decoder.decode(Components.Schemas.BuildLogEntry.self, from: Data(text.utf8)).step else { continue }
            let key = "\(step.platform)#\(step.number)"
            if latest[key] == nil { order.append(key) }
            latest[key] = step
        }
        return order.compactMap { latest[$0] }
    }

    /// Log entries from `position`, at most `limit`.
    func log(buildId: String, from position: Int64, limit: Int) async throws -> [String] {
        let rows = try await client.query(
            "SELECT entry FROM build_log WHERE build_id = \(buildId) AND position >= \(position) ORDER BY position LIMIT \(limit)",
            logger: logger)
        var out: [String] = []
        for try await text in rows.decode(String.self) { out.append(text) }
        return out
    }

    func status(buildId: String) async throws -> BuildStatus? {
        let rows = try await client.query("SELECT status FROM builds WHERE id = \(buildId)", logger: logger)
        for try await status in rows.decode(String.self) { return BuildStatus(rawValue: status) }
        return nil
    }

    /// Appends entries (without positions) to a build's log, numbering them, and signals followers.
    static func append(_ entries: [Components.Schemas.BuildLogEntry], buildId: String, on tx: PostgresConnection, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        var next: Int64 = 0
        for try await value in try await tx.query(
            "SELECT next_log_position FROM builds WHERE id = \(buildId) FOR UPDATE", logger: logger).decode(Int64.self) { next = value }
        var positions: [Int64] = []
        var kinds: [String] = []
        var texts: [String] = []
        for var entry in entries {
            entry.offset = next
            positions.append(next)
            kinds.append(entry.kind.rawValue)
            texts.append(String(decoding: try encoder.encode(entry), as: UTF8.self))
            next += 1
        }
        try await tx.query(
            """
            INSERT INTO build_log (build_id, position, kind, entry)
            SELECT \(buildId), * FROM unnest(\(positions)::bigint[], \(kinds)::text[], \(texts)::text[])
            """, logger: logger)
        try await tx.query("UPDATE builds SET next_log_position = \(next) WHERE id = \(buildId)", logger: logger)
        try await BuildSignals.notify("build:\(buildId)", on: tx, logger: logger)
    }

    /// Closes a build once none of its jobs is left to run: its status follows its jobs'.
    static func closeIfDone(buildId: String, on tx: PostgresConnection, logger: Logger) async throws {
        var jobs: [(BuildStatus, String?, String?)] = []
        for try await (status, digest, error) in try await tx.query(
            "SELECT status, digest, error FROM build_jobs WHERE build_id = \(buildId) ORDER BY seq", logger: logger
        ).decode((String, String?, String?).self) {
            jobs.append((BuildStatus(rawValue: status) ?? .failed, digest, error))
        }
        guard !jobs.isEmpty, jobs.allSatisfy({ $0.0.isFinished }) else { return }
        let status: BuildStatus =
            jobs.allSatisfy { $0.0 == .succeeded } ? .succeeded : jobs.contains { $0.0 == .failed } ? .failed : .canceled
        let digest = jobs.count == 1 ? jobs[0].1 : nil
        let error = jobs.compactMap(\.2).first
        var closed = false
        for try await _ in try await tx.query(
            """
            UPDATE builds SET status = \(status.rawValue), digest = \(digest), error = \(error), finished_at = now(),
                   sealed_secrets = NULL
            WHERE id = \(buildId) AND status NOT IN ('succeeded', 'failed', 'canceled')
            RETURNING id
            """, logger: logger).decode(String.self) { closed = true }
        guard closed else { return }
        try await append(
            [.init(offset: 0, time: Date(), kind: .status, status: .init(rawValue: status.rawValue), error: error, digest: digest)],
            buildId: buildId, on: tx, logger: logger)
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

    // MARK: the queue

    /// Gives the oldest queued job of these platforms to this worker, or nil.
    /// `organizationId` nil means a server-wide worker.
    func claim(organizationId: String?, platforms: [String], workerName: String, workerTokenId: String) async throws -> ClaimedJob? {
        try await client.transaction(logger: logger) { tx -> ClaimedJob? in
            var picked: (jobId: String, buildId: String)?
            while picked == nil {
                var candidate: (jobId: String, buildId: String, organizationId: String)?
                for try await (job, build, org) in try await tx.query(
                    """
                    SELECT id, build_id, organization_id FROM build_jobs
                    WHERE status = 'queued' AND platform = ANY(\(platforms))
                      AND (\(organizationId)::text IS NULL OR organization_id = \(organizationId))
                    ORDER BY seq LIMIT 1
                    FOR UPDATE SKIP LOCKED
                    """, logger: logger).decode((String, String, String).self) { candidate = (job, build, org) }
                guard let candidate else { return nil }
                // A queued build does not start past a cap reached since it was queued.
                if let refusal = try await UsageStore.refusal(organizationId: candidate.organizationId, on: tx, logger: logger) {
                    try await tx.query(
                        """
                        UPDATE build_jobs SET status = 'failed', error = \("not started: " + refusal), finished_at = now()
                        WHERE id = \(candidate.jobId)
                        """, logger: logger)
                    try await Self.closeIfDone(buildId: candidate.buildId, on: tx, logger: logger)
                    continue
                }
                picked = (candidate.jobId, candidate.buildId)
            }
            guard let picked else { return nil }
            var buildRow: BuildRow?
            var sealed: ByteBuffer?
            for try await row in try await tx.query(
                "SELECT \(unescaped: Self.buildColumns), sealed_secrets FROM builds WHERE id = \(picked.buildId) FOR UPDATE",
                logger: logger).decode((String, String, String, String, String, String, String?, String?, Date, Date?, Date?, Int64, ByteBuffer?).self)
            {
                buildRow = (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11)
                sealed = row.12
            }
            guard let buildRow else { return nil }
            var build = try Self.build(buildRow).item
            // The job's own credential: this project only, revoked when the job ends.
            let token = NewToken(kind: .build, name: "build \(build.id) job \(picked.jobId)", organizationId: build.organizationId,
                                 projectId: build.projectId, expiresAt: Date().addingTimeInterval(6 * 3600))
            _ = try await PostgresTokenRepository.insert(token, on: tx, logger: logger)
            var job: JobRecord?
            for try await row in try await tx.query(
                """
                UPDATE build_jobs SET status = 'running', worker_name = \(workerName), worker_token_id = \(workerTokenId),
                       build_token_id = \(token.id), started_at = now(),
                       lease_expires_at = now() + make_interval(secs => \(Double(min(leaseSeconds, Self.firstLeaseSeconds))))
                WHERE id = \(picked.jobId)
                RETURNING \(unescaped: Self.jobColumns)
                """, logger: logger).decode(JobRow.self) { job = Self.job(row) }
            guard let job else { return nil }
            if build.status == .queued {
                try await tx.query("UPDATE builds SET status = 'running', started_at = now() WHERE id = \(build.id)", logger: logger)
                build.status = .running
                try await Self.append(
                    [.init(offset: 0, time: Date(), kind: .status, platform: job.platform,
                           line: "picked up by worker \(workerName)", status: .running)],
                    buildId: build.id, on: tx, logger: logger)
            }
            try await tx.query(
                """
                INSERT INTO workers (token_id, name, platforms) VALUES (\(workerTokenId), \(workerName), \(platforms))
                ON CONFLICT (token_id, name) DO UPDATE SET platforms = EXCLUDED.platforms, last_seen_at = now()
                """, logger: logger)
            let secrets = try sealed.map { try secretBox.open(Array(buffer: $0)) } ?? BuildSecrets()
            return ClaimedJob(job: job, build: build, buildToken: token.secret, secrets: secrets)
        }
    }

    /// The job if it belongs to this build token.
    func job(id: String, buildTokenId: String) async throws -> (job: JobRecord, projectId: String, contextDigest: String)? {
        let rows = try await client.query(
            """
            SELECT j.id, j.build_id, j.platform, j.status, j.worker_name, j.started_at, j.finished_at, j.digest, j.error,
                   b.project_id, b.context_digest
            FROM build_jobs j JOIN builds b ON b.id = j.build_id
            WHERE j.id = \(id) AND j.build_token_id = \(buildTokenId)
            """, logger: logger)
        for try await r in rows.decode((String, String, String, String, String?, Date?, Date?, String?, String?, String, String).self) {
            return (Self.job((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8)), r.9, r.10)
        }
        return nil
    }

    enum HeartbeatOutcome {
        case renewed(cancelRequested: Bool)
        case notRunning(BuildStatus)
        case unknown
    }

    func heartbeat(jobId: String, buildTokenId: String) async throws -> HeartbeatOutcome {
        let rows = try await client.query(
            """
            UPDATE build_jobs j SET lease_expires_at = now() + make_interval(secs => \(Double(leaseSeconds))),
                   confirmed_at = coalesce(j.confirmed_at, now())
            FROM builds b
            WHERE j.id = \(jobId) AND j.build_token_id = \(buildTokenId) AND j.status = 'running' AND b.id = j.build_id
            RETURNING b.cancel_requested
            """, logger: logger)
        for try await cancel in rows.decode(Bool.self) { return .renewed(cancelRequested: cancel) }
        guard let found = try await job(id: jobId, buildTokenId: buildTokenId) else { return .unknown }
        return .notRunning(found.job.status)
    }

    enum AppendOutcome {
        case appended
        case notRunning(BuildStatus)
        case unknown
    }

    /// Appends a worker's events; those at or below the job's last recorded sequence are ignored.
    func appendEvents(jobId: String, buildTokenId: String, events: [Components.Schemas.JobEvent]) async throws -> AppendOutcome {
        try await client.transaction(logger: logger) { tx -> AppendOutcome in
            var found: (buildId: String, platform: String, status: String, last: Int64)?
            for try await row in try await tx.query(
                """
                SELECT build_id, platform, status, last_event_sequence FROM build_jobs
                WHERE id = \(jobId) AND build_token_id = \(buildTokenId) FOR UPDATE
                """, logger: logger).decode((String, String, String, Int64).self) { found = row }
            guard let found else { return .unknown }
            guard found.status == "running" else { return .notRunning(BuildStatus(rawValue: found.status) ?? .failed) }
            let fresh = events.filter { $0.sequence > found.last }.sorted { $0.sequence < $1.sequence }
            guard let last = fresh.last?.sequence else { return .appended }
            let entries = fresh.map { event -> Components.Schemas.BuildLogEntry in
                var step = event.step
                step?.platform = found.platform
                return .init(offset: 0, time: event.time ?? Date(), kind: event.kind == .step ? .step : .log,
                             platform: found.platform, line: event.line, step: step)
            }
            try await Self.append(entries, buildId: found.buildId, on: tx, logger: logger)
            try await tx.query("UPDATE build_jobs SET last_event_sequence = \(last) WHERE id = \(jobId)", logger: logger)
            return .appended
        }
    }

    /// Records a job's result, revokes its build token and closes the build when it was the last.
    func finish(jobId: String, buildTokenId: String, status: BuildStatus, digest: String?, error: String?, cacheBytes: Int64?) async throws -> Bool {
        try await client.transaction(logger: logger) { tx -> Bool in
            var buildId: String?
            for try await (build, current) in try await tx.query(
                "SELECT build_id, status FROM build_jobs WHERE id = \(jobId) AND build_token_id = \(buildTokenId) FOR UPDATE",
                logger: logger).decode((String, String).self)
            {
                buildId = build
                // Already closed (finished before, or failed by an expired lease): nothing to change.
                if current != "running" { return true }
            }
            guard let buildId else { return false }
            try await tx.query(
                """
                UPDATE build_jobs SET status = \(status.rawValue), digest = \(digest), error = \(error),
                       cache_bytes = \(cacheBytes), finished_at = now(), lease_expires_at = NULL
                WHERE id = \(jobId)
                """, logger: logger)
            try await UsageStore.recordBuild(jobId: jobId, on: tx, logger: logger)
            if let cacheBytes { try await UsageStore.recordCache(jobId: jobId, bytes: cacheBytes, on: tx, logger: logger) }
            try await tx.query("UPDATE tokens SET revoked_at = now() WHERE id = \(buildTokenId) AND revoked_at IS NULL", logger: logger)
            try await Self.closeIfDone(buildId: buildId, on: tx, logger: logger)
            return true
        }
    }

    /// Gives every confirmed running job a whole lease from now; run once when the server starts.
    func extendRunningLeases() async throws -> Int {
        var count = 0
        for try await n in try await client.query(
            """
            WITH renewed AS (
                UPDATE build_jobs SET lease_expires_at = GREATEST(lease_expires_at, now() + make_interval(secs => \(Double(leaseSeconds))))
                WHERE status = 'running' AND confirmed_at IS NOT NULL AND lease_expires_at IS NOT NULL
                RETURNING 1
            ) SELECT count(*)::int FROM renewed
            """, logger: logger).decode(Int.self) { count = n }
        return count
    }

    /// Fails running jobs whose worker stopped renewing its lease, and queues again those whose
    /// worker never confirmed them (it vanished while its long-poll was being answered).
    /// Returns how many jobs it touched.
    func expireLeases() async throws -> Int {
        try await client.transaction(logger: logger) { tx -> Int in
            var expired: [(id: String, buildId: String, worker: String?, token: String?, platform: String, confirmed: Bool)] = []
            for try await row in try await tx.query(
                """
                SELECT id, build_id, worker_name, build_token_id, platform, confirmed_at IS NOT NULL FROM build_jobs
                WHERE status = 'running' AND lease_expires_at < now()
                FOR UPDATE SKIP LOCKED
                """, logger: logger).decode((String, String, String?, String?, String, Bool).self) { expired.append(row) }
            for job in expired {
                if let token = job.token {
                    try await tx.query("UPDATE tokens SET revoked_at = now() WHERE id = \(token) AND revoked_at IS NULL", logger: logger)
                }
                if !job.confirmed {
                    try await tx.query(
                        """
                        UPDATE build_jobs SET status = 'queued', worker_name = NULL, worker_token_id = NULL, build_token_id = NULL,
                               lease_expires_at = NULL, started_at = NULL, last_event_sequence = -1
                        WHERE id = \(job.id)
                        """, logger: logger)
                    try await tx.query(
                        """
                        UPDATE builds SET status = 'queued', started_at = NULL
                        WHERE id = \(job.buildId) AND status = 'running'
                          AND NOT EXISTS (SELECT 1 FROM build_jobs WHERE build_id = \(job.buildId) AND status <> 'queued')
                        """, logger: logger)
                    try await Self.append(
                        [.init(offset: 0, time: Date(), kind: .log, platform: job.platform,
                               line: "#drydock worker '\(job.worker ?? "?")' did not take up the job; queued again")],
                        buildId: job.buildId, on: tx, logger: logger)
                    try await BuildSignals.notify("jobs", on: tx, logger: logger)
                    continue
                }
                let reason = "worker '\(job.worker ?? "?")' stopped responding (no heartbeat for \(leaseSeconds) s); the build was failed"
                try await tx.query(
                    """
                    UPDATE build_jobs SET status = 'failed', error = \(reason), finished_at = now(), lease_expires_at = NULL
                    WHERE id = \(job.id)
                    """, logger: logger)
                try await UsageStore.recordBuild(jobId: job.id, on: tx, logger: logger)
                try await Self.append([.init(offset: 0, time: Date(), kind: .log, platform: job.platform, line: "error: \(reason)")],
                                      buildId: job.buildId, on: tx, logger: logger)
                try await Self.closeIfDone(buildId: job.buildId, on: tx, logger: logger)
            }
            return expired.count
        }
    }
}
