import Foundation
import Logging
import PostgresNIO

/// The job queue: the `build_jobs` table. A job is claimed with `FOR UPDATE SKIP LOCKED` (never
/// by two workers), kept by a lease the worker renews with heartbeats, and failed by
/// `expireLeases` when the worker vanishes; workers report events and the result through it.
public struct JobQueue: Sendable {
    let client: Database
    let logger: Logger
    let secretBox: BuildSecretBox
    let lease: Duration
    /// How long a job waits for a native builder before an emulating one may take it.
    var emulationFallback: Duration = .seconds(10)
    /// Workers recorded online in the last seconds (a worker claims many times a second under
    /// load; once in a while is enough to say it is online).
    let recentWorkers = ExpiringCache<String, Bool>(ttl: .seconds(10), capacity: 10_000)
    /// Claims waiting together for the same jobs, answered by one transaction per batch.
    let claims = ClaimBatcher<ClaimKey, ClaimWorker, ClaimedJob>()

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


    /// Gives the oldest queued job of these platforms to this worker, or nil.
    /// `organizationId` nil means a server-wide worker.
    /// A worker's emulated platforms get a job only once it has waited `emulationFallback` for a
    /// native builder.
    /// `projectId` (a builder an agent started) limits it to that project's jobs.
    ///
    /// Claims that wait at the same time for the same jobs are answered together, by one
    /// transaction (`ClaimBatcher`, `claimBatch`): fifty builders woken at once by new work cost
    /// a few transactions, not fifty queued for connections.
    func claim(organizationId: String?, projectId: String? = nil, platforms requested: [Platform], emulated: [Platform] = [], workerName: String,
               workerTokenId: String) async throws -> ClaimedJob? {
        let platforms = requested.map(\.description)
        let key = ClaimKey(organizationId: organizationId, projectId: projectId, platforms: platforms,
                           emulatedPlatforms: emulated.map(\.description).filter { !platforms.contains($0) })
        // That the worker is online (and what it serves) is written by its claim's transaction,
        // at most every 10 s per worker: fifty builders starting together are one write, not fifty
        // transactions ahead of their claims.
        var worker = ClaimWorker(name: workerName, tokenId: workerTokenId, platforms: platforms, emulated: emulated.map(\.description))
        worker.record = recentWorkers.cachedValue(for: worker.recordKey) == nil
        let queue = self
        return try await claims.claim(key, worker) { key, workers in
            try await queue.claimBatch(key, workers: workers)
        }
    }

    /// What a claim asks for: claims with equal keys may be answered by one transaction.
    struct ClaimKey: Hashable, Sendable {
        var organizationId: String?
        var projectId: String?
        var platforms: [String]
        var emulatedPlatforms: [String]
    }

    struct ClaimWorker: Sendable {
        var name: String
        var tokenId: String
        /// What it serves, natively and emulated, as it said.
        var platforms: [String] = []
        var emulated: [String] = []
        /// Its online record is due (none written in the last seconds).
        var record = false
        /// Its entry in `recentWorkers`, set once its record is committed.
        var recordKey: String { "\(tokenId) \(name) \(platforms) \(emulated)" }
    }

    /// Starts up to one job for each of these workers, oldest first, in one transaction; the
    /// i-th job goes to the i-th worker (fewer jobs than workers: the last ones get none).
    /// A queued build does not start past a cap reached since it was queued: the picked jobs of
    /// an organization its usage check refuses fail with the reason, and others are picked.
    func claimBatch(_ key: ClaimKey, workers: [ClaimWorker]) async throws -> [ClaimedJob] {
        var claimed: [ClaimedJob] = []
        var records = workers.filter(\.record)
        while claimed.count < workers.count {
            let (started, refused) = try await claimOnce(key, workers: Array(workers[claimed.count...]), records: records)
            for worker in records { recentWorkers.insert(true, for: worker.recordKey) }
            records = []
            claimed += started
            // Jobs that failed a usage check leave room for others; without such, no more are
            // queued for these workers.
            if !refused { break }
        }
        return claimed
    }

    private func claimOnce(_ key: ClaimKey, workers: [ClaimWorker], records: [ClaimWorker]) async throws -> (started: [ClaimedJob], refused: Bool) {
        let agentBuilder = key.projectId != nil
        let fallback = Double(emulationFallback.components.seconds)
        return try await client.transaction(logger: logger) { tx -> ([ClaimedJob], Bool) in
            if !records.isEmpty { try await Self.record(records, on: tx, logger: logger) }
            var candidates: [Candidate] = []
            // First among the oldest queued jobs as this statement sees them (read without
            // locks), then, if all of those are taken by claims in flight, among all. With each
            // job come its build's project and isolation, and its organization's usage facts.
            let monthFrom = UsagePeriod.month(containing: Date()).from
            for bounded in [true, false] where candidates.isEmpty {
                let query = Self.candidateQuery(platforms: key.platforms, emulatedPlatforms: key.emulatedPlatforms, fallback: fallback,
                                                organizationId: key.organizationId, projectId: key.projectId, bounded: bounded,
                                                monthFrom: monthFrom, limit: workers.count)
                let rows = key.emulatedPlatforms.isEmpty
                    ? try await tx.prepared(ClaimCandidates.self, query, logger: logger)
                    : try await tx.prepared(ClaimCandidatesEmulated.self, query, logger: logger)
                for try await row in rows {
                    let r = try row.decode((String, String, String, String, Bool, Bool, String, String,
                                            String, String, Int64, Int?, Int64, Int64?, Int64, Int64?, Bool, String?, Int64?, Int64?, Int64).self)
                    let facts = UsageStore.usageFacts((r.8, r.9, r.10, r.11, r.12, r.13, r.14, r.15, r.16, r.17, r.18, r.19, r.20))
                    candidates.append(Candidate(jobId: r.0, buildId: r.1, projectId: r.3, isolated: r.4, emulated: r.5, platform: r.6,
                                                usage: (organizationId: r.2, facts: facts)))
                }
            }
            guard !candidates.isEmpty else { return ([], false) }
            // A queued build does not start past a cap reached since it was queued: one check per
            // organization.
            var refusals: [String: String?] = [:]
            for candidate in candidates where refusals[candidate.usage.organizationId] == nil {
                refusals[candidate.usage.organizationId] = .some(try await UsageStore.refusal(
                    candidate.usage.facts, organizationId: candidate.usage.organizationId, on: tx, logger: logger))
            }
            var picked: [Candidate] = []
            var refusedBuilds: Set<String> = []
            for candidate in candidates {
                guard let refusal = refusals[candidate.usage.organizationId] ?? nil else {
                    picked.append(candidate)
                    continue
                }
                try await tx.query(
                    """
                    UPDATE build_jobs SET status = 'failed', error = \("not started: " + refusal), finished_at = now()
                    WHERE id = \(candidate.jobId)
                    """, logger: logger)
                refusedBuilds.insert(candidate.buildId)
            }
            if !refusedBuilds.isEmpty {
                // Their builds locked (in id order) before their jobs are read, as a finish does:
                // two claims refusing the two jobs of one build at once each saw the other's job
                // still queued, and the build stayed queued for ever.
                try await tx.query("SELECT id FROM builds WHERE id = ANY(\(refusedBuilds.sorted())) ORDER BY id FOR UPDATE", logger: logger)
            }
            for buildId in refusedBuilds.sorted() {
                try await Self.cancelSiblings(buildId: buildId, on: tx, logger: logger)
                try await BuildStore.closeIfDone(buildId: buildId, on: tx, logger: logger)
            }
            guard !picked.isEmpty else { return ([], true) }
            return (try await start(picked, workers: workers, agentBuilder: agentBuilder, on: tx), !refusedBuilds.isEmpty)
        }
    }

    /// Starts these jobs for these workers (the i-th job for the i-th worker) in one statement:
    /// their builds locked (in id order) and marked running where this is their first job to
    /// start (with "picked up" in the log then), each job's build token, the jobs started (and
    /// how long they waited), and each project's cache generation and policy.
    private func start(_ picked: [Candidate], workers: [ClaimWorker], agentBuilder: Bool, on tx: PostgresConnection) async throws -> [ClaimedJob] {
        // Each job's own credential: its project only, revoked when the job ends. An isolated
        // build's token may push its own image only (`<project>/build:<its tag>`, set below
        // once the job's platform is read).
        let expiresAt = Date().addingTimeInterval(6 * 3600)
        var tokens: [(id: String, secret: String)] = []
        var columns = (jobs: [String](), builds: [String](), projects: [String](), organizations: [String](), emulated: [Bool](),
                       workerNames: [String](), workerTokens: [String](), tokenIds: [String](), tokenNames: [String](),
                       hashes: [ByteBuffer](), prefixes: [String](), isolated: [Bool](), entries: [String]())
        for (candidate, worker) in zip(picked, workers) {
            let secret = TokenSecret.generate(kind: .build)
            let tokenId = Identifier.generate()
            tokens.append((tokenId, secret))
            columns.jobs.append(candidate.jobId)
            columns.builds.append(candidate.buildId)
            columns.projects.append(candidate.projectId)
            columns.organizations.append(candidate.usage.organizationId)
            columns.emulated.append(candidate.emulated)
            columns.workerNames.append(worker.name)
            columns.workerTokens.append(worker.tokenId)
            columns.tokenIds.append(tokenId)
            columns.tokenNames.append("build \(candidate.buildId) job \(candidate.jobId)")
            columns.hashes.append(ByteBuffer(bytes: TokenSecret.hash(secret)))
            columns.prefixes.append(TokenSecret.displayPrefix(secret))
            columns.isolated.append(candidate.isolated)
            columns.entries.append(try BuildLog.stored(LogEntry(kind: .status, platform: candidate.platform,
                                                                line: "picked up by worker \(worker.name)", status: .running)))
        }
        var started: [(build: BuildStore.BuildRow, sealed: ByteBuffer?, wasQueued: Bool, job: JobRecord, policy: (Int, Int), generation: Int)] = []
        for try await row in try await tx.prepared(
            StartJobs.self,
            """
            WITH input AS (
                SELECT * FROM unnest(\(columns.jobs)::text[], \(columns.builds)::text[], \(columns.projects)::text[], \(columns.organizations)::text[],
                                     \(columns.emulated)::boolean[], \(columns.workerNames)::text[], \(columns.workerTokens)::text[],
                                     \(columns.tokenIds)::text[], \(columns.tokenNames)::text[], \(columns.hashes)::bytea[], \(columns.prefixes)::text[],
                                     \(columns.isolated)::boolean[], \(columns.entries)::text[])
                    WITH ORDINALITY AS i(job_id, build_id, project_id, organization_id, emulated, worker_name, worker_token_id,
                                         token_id, token_name, secret_hash, prefix, isolated, entry, n)
                -- Changes nothing (the arrays hold this many), but tells the planner how few rows
                -- come: otherwise a plan made without the values assumes ten, costs more than the
                -- ones made for them, and PostgreSQL plans the statement anew at every claim.
                LIMIT \(Int64(picked.count))
            ), locked AS (
                SELECT id AS old_id, status AS old_status FROM builds WHERE id IN (SELECT build_id FROM input) ORDER BY id FOR UPDATE
            ), started AS (
                UPDATE builds b SET status = CASE WHEN o.old_status = 'queued' THEN 'running' ELSE b.status END,
                                    started_at = CASE WHEN o.old_status = 'queued' THEN now() ELSE b.started_at END,
                                    next_log_position = b.next_log_position + CASE WHEN o.old_status = 'queued' THEN 1 ELSE 0 END
                FROM locked o
                WHERE b.id = o.old_id
                RETURNING \(unescaped: BuildStore.buildColumns), sealed_secrets, o.old_status = 'queued' AS was_queued,
                          b.next_log_position - 1 AS log_position
            ), logged AS (
                INSERT INTO build_log (build_id, position, kind, entry)
                SELECT s.id, s.log_position, \(LogEntry.Kind.status.rawValue),
                       replace(f.entry, \(BuildLog.offsetPattern), '"offset":' || s.log_position)
                FROM started s JOIN (SELECT DISTINCT ON (build_id) build_id, entry FROM input ORDER BY build_id, n) f ON f.build_id = s.id
                WHERE s.was_queued
            ), new_tokens AS (
                INSERT INTO tokens (id, organization_id, kind, name, secret_hash, prefix, project_id, expires_at, isolated)
                SELECT token_id, organization_id, \(TokenKind.build.rawValue), token_name, secret_hash, prefix, project_id, \(expiresAt), isolated
                FROM input
            ), job AS (
                UPDATE build_jobs j SET status = 'running', worker_name = i.worker_name, worker_token_id = i.worker_token_id, emulated = i.emulated,
                       build_token_id = i.token_id, started_at = now(),
                       lease_expires_at = now() + make_interval(secs => \(Double(min(leaseSeconds, Self.firstLeaseSeconds))))
                FROM input i JOIN projects p ON p.id = i.project_id
                WHERE j.id = i.job_id
                RETURNING i.n, j.id, j.build_id, j.platform, j.status, j.worker_name, j.started_at, j.finished_at, j.digest, j.error, j.emulated,
                          extract(epoch FROM now() - j.queued_at)::float8, p.cache_keep_gb, p.cache_keep_days,
                          coalesce((SELECT c.generation FROM project_caches c WHERE c.project_id = p.id AND c.platform = j.platform), 0)
            )
            SELECT started.*, job.* FROM job JOIN started ON started.id = job.build_id ORDER BY job.n
            """, logger: logger)
        {
            let r = try row.decode((String, String, String, String, String, String, String?, String?, Date, Date?, Date?, Int64, ByteBuffer?, Bool, Int64,
                                    Int64, String, String, String, String, String?, Date?, Date?, String?, String?, Bool, Double, Int, Int, Int).self)
            started.append(((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11), r.12, r.13,
                            BuildStore.job((r.16, r.17, r.18, r.19, r.20, r.21, r.22, r.23, r.24, r.25)), (r.27, r.28), r.29))
            Observability.queueToStart.recordNanoseconds(Int64(max(r.26, 0) * 1e9))
        }
        guard started.count == picked.count else {
            throw DomainError.internal("\(picked.count) jobs were picked for a claim but \(started.count) started")
        }
        var claimed: [ClaimedJob] = []
        var buildTags: (tokens: [String], tags: [String]) = ([], [])
        var signals: Set<String> = []
        for (i, start) in started.enumerated() {
            let build = try BuildStore.build(start.build).item
            let job = start.job
            let token = tokens[i]
            var buildTag: String?
            if picked[i].isolated {
                let tag = String(build.image(forJobOn: job.platform).split(separator: ":").last ?? "")
                buildTags.tokens.append(token.id)
                buildTags.tags.append(tag)
                buildTag = tag
            }
            if start.wasQueued { signals.insert("build:\(build.id)") }
            // The worker itself was recorded (`record`) by this transaction or one in the last seconds.
            let secrets = try start.sealed.map { try secretBox.open(Array(buffer: $0)) } ?? BuildSecrets()
            let grant = TokenGrant(tokenId: token.id, kind: .build, organizationId: build.organizationId, projectId: build.projectId,
                                   userId: nil, role: nil, expiresAt: expiresAt, revoked: false, lastUsedAt: nil,
                                   isolated: picked[i].isolated, buildTag: buildTag)
            claimed.append(ClaimedJob(job: job, build: build, buildToken: token.secret, secrets: secrets, cacheGeneration: start.generation,
                                      keepGigabytes: start.policy.0, keepDays: start.policy.1, buildGrant: grant))
        }
        if !buildTags.tokens.isEmpty {
            try await tx.query(
                "UPDATE tokens t SET build_tag = v.tag FROM unnest(\(buildTags.tokens)::text[], \(buildTags.tags)::text[]) AS v(id, tag) WHERE t.id = v.id",
                logger: logger)
        }
        // A builder an agent started counts the jobs it served.
        if agentBuilder {
            try await tx.query(
                """
                UPDATE agent_builders a SET jobs_served = jobs_served + c.n
                FROM (SELECT t, count(*)::int AS n FROM unnest(\(columns.workerTokens)::text[]) AS t GROUP BY t) c
                WHERE a.worker_token_id = c.t
                """, logger: logger)
        }
        for signal in signals.sorted() { try await BuildSignals.notify(signal, on: tx, logger: logger) }
        return claimed
    }

    /// The statements every job runs, prepared once per connection (`StatementShape`).
    enum ClaimCandidates: StatementShape {}
    enum ClaimCandidatesEmulated: StatementShape {}
    enum StartJobs: StatementShape {}
    enum Heartbeat: StatementShape {}
    enum AppendEvents: StatementShape {}
    enum FinishJob: StatementShape {}

    /// A job a claim may take, with what deciding needs.
    struct Candidate {
        var jobId: String
        var buildId: String
        var projectId: String
        var isolated: Bool
        var emulated: Bool
        var platform: String
        var usage: (organizationId: String, facts: UsageStore.UsageFacts)
    }

    /// The `limit` oldest claimable jobs, locked (`SKIP LOCKED`: claims in flight do not wait for
    /// each other), each with its build's project and isolation and its organization's usage facts
    /// (`UsageStore.usageFactsColumns`, read once per organization): the job id, build id,
    /// organization id, project id, isolated, emulated, platform, the organization id again,
    /// then the facts; oldest first.
    ///
    /// `bounded` looks only at the 64 oldest queued jobs of these platforms, read without locks.
    /// Unbounded, the locking scan walks the queued-jobs index from its start, where entries of
    /// jobs claimed moments ago linger until vacuum: PostgreSQL locks such a row's newest version
    /// before it sees it is no longer queued, and keeps that lock until the claim commits, so the
    /// job's first heartbeat waited for an unrelated claim. Emulated platforms follow each
    /// project's setting (native-only, fallback after a delay, allowed); a worker without any
    /// takes the short path.
    static func candidateQuery(platforms: [String], emulatedPlatforms: [String], fallback: Double, organizationId: String?,
                               projectId: String?, bounded: Bool, monthFrom: Int64, limit: Int) -> PostgresQuery {
        let all = platforms + emulatedPlatforms
        // The usage facts are read once per organization, not per job.
        let facts = """
            , organization_facts AS MATERIALIZED (
                SELECT f.* FROM (SELECT DISTINCT organization_id FROM picked) d CROSS JOIN m
                CROSS JOIN LATERAL (SELECT o.id AS fact_organization, \(UsageStore.usageFactsColumns)
                                    FROM \(UsageStore.usageFactsFrom) WHERE o.id = d.organization_id) f
            )
            SELECT picked.id, picked.build_id, picked.organization_id, bb.project_id,
                   coalesce((bb.spec::jsonb ->> 'isolated')::boolean, false), picked.emulated, picked.platform, f.*
            FROM picked JOIN builds bb ON bb.id = picked.build_id JOIN organization_facts f ON f.fact_organization = picked.organization_id
            ORDER BY picked.seq
            """
        return emulatedPlatforms.isEmpty
            ? """
              WITH m AS (SELECT \(monthFrom)::bigint AS month_from), picked AS MATERIALIZED (
                  SELECT j.id, j.build_id, j.organization_id, false AS emulated, j.platform, j.seq FROM build_jobs j
                  WHERE j.status = 'queued' AND NOT j.blocked AND j.platform = ANY(\(platforms))
                    AND (\(organizationId)::text IS NULL OR j.organization_id = \(organizationId))
                    AND (\(projectId)::text IS NULL OR j.build_id IN (SELECT id FROM builds WHERE project_id = \(projectId)))
                    AND (NOT \(bounded) OR j.id IN (SELECT q.id FROM build_jobs q WHERE q.status = 'queued' AND NOT q.blocked AND q.platform = ANY(\(all))
                                                     AND (\(organizationId)::text IS NULL OR q.organization_id = \(organizationId))
                                                     ORDER BY q.seq LIMIT 64))
                  ORDER BY j.seq LIMIT \(limit)
                  FOR UPDATE SKIP LOCKED
              )
              \(unescaped: facts)
              """
            : """
              WITH m AS (SELECT \(monthFrom)::bigint AS month_from), picked AS MATERIALIZED (
                  SELECT j.id, j.build_id, j.organization_id, NOT (j.platform = ANY(\(platforms))) AS emulated, j.platform, j.seq FROM build_jobs j
                  JOIN builds b ON b.id = j.build_id JOIN projects p ON p.id = b.project_id
                  WHERE j.status = 'queued' AND NOT j.blocked
                    AND (j.platform = ANY(\(platforms))
                         OR (j.platform = ANY(\(emulatedPlatforms))
                             AND (p.emulation = 'allowed'
                                  OR (p.emulation = 'fallback'
                                      AND j.queued_at <= now() - make_interval(secs => coalesce(p.emulation_fallback_seconds, \(fallback)::double precision))))))
                    AND (\(organizationId)::text IS NULL OR j.organization_id = \(organizationId))
                    AND (\(projectId)::text IS NULL OR b.project_id = \(projectId))
                    AND (NOT \(bounded) OR j.id IN (SELECT q.id FROM build_jobs q WHERE q.status = 'queued' AND NOT q.blocked AND q.platform = ANY(\(all))
                                                     AND (\(organizationId)::text IS NULL OR q.organization_id = \(organizationId))
                                                     ORDER BY q.seq LIMIT 64))
                  ORDER BY j.seq LIMIT \(limit)
                  FOR UPDATE OF j SKIP LOCKED
              )
              \(unescaped: facts)
              """
    }

    /// The job if it belongs to this build token.
    func job(id: String, buildTokenId: String) async throws -> (job: JobRecord, projectId: String, contextDigest: String)? {
        let rows = try await client.query(
            """
            SELECT j.id, j.build_id, j.platform, j.status, j.worker_name, j.started_at, j.finished_at, j.digest, j.error, j.emulated,
                   b.project_id, b.context_digest
            FROM build_jobs j JOIN builds b ON b.id = j.build_id
            WHERE j.id = \(id) AND j.build_token_id = \(buildTokenId)
            """, logger: logger)
        for try await r in rows.decode((String, String, String, String, String?, Date?, Date?, String?, String?, Bool, String, String).self) {
            return (BuildStore.job((r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9)), r.10, r.11)
        }
        return nil
    }

    enum HeartbeatOutcome {
        case renewed(cancelRequested: Bool)
        case notRunning(BuildStatus)
        case unknown
    }

    func heartbeat(jobId: String, buildTokenId: String) async throws -> HeartbeatOutcome {
        let rows = try await client.prepared(
            Heartbeat.self,
            """
            UPDATE build_jobs j SET lease_expires_at = now() + make_interval(secs => \(Double(leaseSeconds))),
                   confirmed_at = coalesce(j.confirmed_at, now())
            FROM builds b
            WHERE j.id = \(jobId) AND j.build_token_id = \(buildTokenId) AND j.status = 'running' AND b.id = j.build_id
            RETURNING b.cancel_requested
            """, logger: logger)
        for try await row in rows { return .renewed(cancelRequested: try row.decode(Bool.self)) }
        guard let found = try await job(id: jobId, buildTokenId: buildTokenId) else { return .unknown }
        return .notRunning(found.job.status)
    }

    enum AppendOutcome {
        case appended
        case notRunning(BuildStatus)
        case unknown
    }

    /// Appends a worker's events; those at or below the job's last recorded sequence are ignored.
    func appendEvents(jobId: String, buildTokenId: String, events: [WorkerEvent]) async throws -> AppendOutcome {
        try await client.transaction(logger: logger) { tx -> AppendOutcome in
            // The job locked, its last recorded sequence read and the new one written, in one
            // statement (the sub-select takes the row lock and reads the latest committed value).
            let highest = events.map(\.sequence).max() ?? -1
            var found: (buildId: String, platform: String, status: String, last: Int64, projectId: String)?
            for try await row in try await tx.prepared(
                AppendEvents.self,
                """
                UPDATE build_jobs j SET last_event_sequence = CASE WHEN o.status = 'running' THEN greatest(o.last, \(highest)) ELSE o.last END
                FROM (SELECT id, status, last_event_sequence AS last FROM build_jobs
                      WHERE id = \(jobId) AND build_token_id = \(buildTokenId) FOR UPDATE) o, builds b
                WHERE j.id = o.id AND b.id = j.build_id
                RETURNING j.build_id, j.platform, o.status, o.last, b.project_id
                """, logger: logger) { found = try row.decode((String, String, String, Int64, String).self) }
            guard let found else { return .unknown }
            guard found.status == "running" else { return .notRunning(BuildStatus(rawValue: found.status) ?? .failed) }
            let fresh = events.filter { $0.sequence > found.last }.sorted { $0.sequence < $1.sequence }
            guard !fresh.isEmpty else { return .appended }
            var entries = fresh.map { event -> LogEntry in
                var step = event.step
                step?.platform = found.platform
                step?.savedMs = nil
                return LogEntry(time: event.time ?? Date(), kind: event.kind == .step ? .step : .log,
                                platform: found.platform, line: event.line, step: step)
            }
            try await StepTimings.record(&entries, projectId: found.projectId, platform: found.platform, on: tx, logger: logger)
            try await BuildLog.append(entries, buildId: found.buildId, on: tx, logger: logger)
            return .appended
        }
    }

    enum FinishOutcome {
        /// No such job for this build token.
        case unknown
        /// Recorded; `needsIndex` when it was the last job of a multi-platform build that succeeded.
        case recorded(buildId: String, needsIndex: Bool)
    }

    /// Records a job's result, revokes its build token and closes the build when it was the last.
    /// A failed job of a multi-platform build cancels the others: the build has failed.
    func finish(jobId: String, buildTokenId: String, status: BuildStatus, digest: String?, error: String?, cacheBytes: Int64?,
                cacheImages: Int? = nil) async throws -> FinishOutcome {
        try await client.transaction(logger: logger) { tx -> FinishOutcome in
            // The running job closed, metered and its build token revoked, in one statement (every
            // server's cache is told once it commits). It also locks the build's row, as cancels,
            // claims, log appends and the lease reaper do before they look at a build's jobs: the
            // next statement (a fresh snapshot) then sees every sibling job whose own finish
            // committed first. Without the lock, the two jobs of a build finishing at the same
            // moment each saw the other still running, and the build stayed open: for ever when
            // one was canceled, until the lease reaper's sweep assembled the index when both
            // succeeded.
            var buildId: String?
            var revoked: String?
            for try await row in try await tx.prepared(
                FinishJob.self,
                """
                WITH closed AS (
                    UPDATE build_jobs SET status = \(status.rawValue), digest = \(digest), error = \(error),
                           cache_bytes = \(cacheBytes), finished_at = now(), lease_expires_at = NULL
                    WHERE id = \(jobId) AND build_token_id = \(buildTokenId) AND status = 'running'
                    RETURNING id, build_id, organization_id, platform, started_at, finished_at
                ), metered AS (
                    \(unescaped: UsageStore.recordBuildFrom("closed"))
                ), revoked AS (
                    UPDATE tokens SET revoked_at = now()
                    WHERE id = \(buildTokenId) AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM closed)
                    RETURNING id
                ), locked AS (
                    SELECT b.id FROM builds b JOIN closed ON b.id = closed.build_id FOR NO KEY UPDATE OF b
                )
                SELECT closed.build_id, (SELECT id FROM revoked) FROM closed JOIN locked ON locked.id = closed.build_id
                """, logger: logger)
            {
                (buildId, revoked) = try row.decode((String, String?).self)
            }
            if let revoked { try await BuildSignals.notify("invalidate:token:\(revoked)", on: tx, logger: logger) }
            guard let buildId else {
                // Already closed (finished before, or failed by an expired lease): nothing to change.
                for try await build in try await tx.query(
                    "SELECT build_id FROM build_jobs WHERE id = \(jobId) AND build_token_id = \(buildTokenId)", logger: logger
                ).decode(String.self) { return .recorded(buildId: build, needsIndex: false) }
                return .unknown
            }
            if let cacheBytes { try await UsageStore.recordCache(jobId: jobId, bytes: cacheBytes, on: tx, logger: logger) }
            if cacheBytes != nil || cacheImages != nil {
                try await AgentStore.recordCache(jobId: jobId, bytes: cacheBytes, images: cacheImages, on: tx, logger: logger)
            }
            if status == .failed { try await Self.cancelSiblings(buildId: buildId, on: tx, logger: logger) }
            let outcome = try await BuildStore.closeIfDone(buildId: buildId, on: tx, logger: logger)
            return .recorded(buildId: buildId, needsIndex: outcome == .needsIndex)
        }
    }

    /// The other jobs of a build one of whose jobs failed (reported so, past a cap, its worker
    /// gone, or no builder for it): queued ones are canceled at once, running ones when their
    /// worker next heartbeats. The caller holds the build's row lock.
    static func cancelSiblings(buildId: String, on tx: PostgresConnection, logger: Logger) async throws {
        try await BuildStore.requestCancel(buildId: buildId, queuedError: nil, on: tx, logger: logger)
    }

    /// Records that these workers are online and which platforms they serve (a claim does, with or
    /// without a job to hand out: an idle builder in its long-poll is online), in one statement,
    /// rows in key order. Platforms hold no commas (`Platform`), so each worker's list travels as
    /// one comma-joined string.
    static func record(_ workers: [ClaimWorker], on tx: PostgresConnection, logger: Logger) async throws {
        try await tx.query(
            """
            INSERT INTO workers (token_id, name, platforms, emulated_platforms)
            SELECT DISTINCT ON (w.token_id, w.name) w.token_id, w.name, string_to_array(w.platforms, ','), string_to_array(w.emulated, ',')
            FROM unnest(\(workers.map(\.tokenId))::text[], \(workers.map(\.name))::text[], \(workers.map { $0.platforms.joined(separator: ",") })::text[],
                        \(workers.map { $0.emulated.joined(separator: ",") })::text[]) AS w(token_id, name, platforms, emulated)
            ORDER BY w.token_id, w.name
            ON CONFLICT (token_id, name) DO UPDATE SET platforms = EXCLUDED.platforms, emulated_platforms = EXCLUDED.emulated_platforms,
                last_seen_at = now()
            """, logger: logger)
    }

    struct BuilderRecord: Sendable {
        struct RunningJob: Sendable {
            var jobId: String, buildId: String, projectId: String, platform: String, emulated: Bool
        }
        var name: String
        var platforms: [String]
        var emulated: [String]
        var online: Bool
        var lastSeenAt: Date
        var serverWide: Bool
        var running: [RunningJob] = []
    }

    /// The builders serving an organization (its own worker tokens' and server-wide ones) seen in
    /// the last day, online ones first, with this organization's jobs each is running.
    func builders(organizationId: String) async throws -> [BuilderRecord] {
        var out: [BuilderRecord] = []
        var tokens: [String] = []
        for try await (tokenId, name, platforms, emulated, seen, online, serverWide) in try await client.query(
            """
            SELECT w.token_id, w.name, w.platforms, w.emulated_platforms, w.last_seen_at,
                   w.last_seen_at > now() - make_interval(secs => \(Double(Self.onlineWindowSeconds))), t.organization_id IS NULL
            FROM workers w JOIN tokens t ON t.id = w.token_id
            WHERE t.revoked_at IS NULL AND (t.organization_id IS NULL OR t.organization_id = \(organizationId))
              AND w.last_seen_at > now() - interval '1 day'
              AND NOT EXISTS (SELECT 1 FROM agent_builders ab WHERE ab.worker_token_id = w.token_id)
            ORDER BY 6 DESC, w.name
            """, logger: logger).decode((String, String, [String], [String], Date, Bool, Bool).self) {
            out.append(BuilderRecord(name: name, platforms: platforms, emulated: emulated, online: online, lastSeenAt: seen, serverWide: serverWide))
            tokens.append(tokenId)
        }
        for try await (tokenId, name, jobId, buildId, projectId, platform, emulated) in try await client.query(
            """
            SELECT j.worker_token_id, j.worker_name, j.id, j.build_id, b.project_id, j.platform, j.emulated
            FROM build_jobs j JOIN builds b ON b.id = j.build_id
            WHERE j.status = 'running' AND j.organization_id = \(organizationId) AND j.worker_token_id = ANY(\(tokens))
            ORDER BY j.seq
            """, logger: logger).decode((String, String, String, String, String, String, Bool).self) {
            if let i = out.indices.first(where: { tokens[$0] == tokenId && out[$0].name == name }) {
                out[i].running.append(.init(jobId: jobId, buildId: buildId, projectId: projectId, platform: platform, emulated: emulated))
            }
        }
        return out
    }

    /// A worker that claimed within this long is online (a claim's long-poll lasts at most 60 s).
    static let onlineWindowSeconds = 90

    /// A queued job no online builder serves, and how long its build has waited.
    struct WaitingJob: Sendable {
        let id: String
        let buildId: String
        let platform: String
        let ageSeconds: Int64
        /// The project's queue timeout, when it sets one.
        var timeoutSeconds: Int64? = nil
    }

    /// Queued jobs whose platform no online builder (of their organization, or server-wide)
    /// serves. Read without locks: a claim in progress is never held up or skipped because of it.
    ///
    /// What the online builders and agents serve is read once, as a few (organization,
    /// platform, emulated) rows, and each queued job is checked against those. Checked per job
    /// through each builder's token instead, PostgreSQL read every token of the job's
    /// organization (one per job it ever ran) for every queued job: with 2,000 queued jobs in an
    /// organization of 2,000 finished ones the sweep took 0.6–2.0 s of a core every 2 s, and it
    /// grew with the organization's history.
    func unservedJobs() async throws -> [WaitingJob] {
        var out: [WaitingJob] = []
        for try await row in try await client.prepared(
            UnservedJobs.self,
            """
            WITH builders AS (
                SELECT t.organization_id, w.platforms, w.emulated_platforms FROM workers w JOIN tokens t ON t.id = w.token_id
                WHERE w.last_seen_at > now() - make_interval(secs => \(Double(Self.onlineWindowSeconds))) AND t.revoked_at IS NULL
                UNION ALL
                SELECT t.organization_id, a.platforms, a.emulated_platforms FROM agents a JOIN tokens t ON t.id = a.token_id
                WHERE a.last_seen_at > now() - make_interval(secs => \(Double(AgentStore.onlineWindowSeconds))) AND t.revoked_at IS NULL
            ), online AS MATERIALIZED (
                SELECT DISTINCT b.organization_id, s.platform, s.emulated
                FROM builders b CROSS JOIN LATERAL (
                    SELECT unnest(b.platforms), false UNION ALL SELECT unnest(b.emulated_platforms), true) s(platform, emulated)
            )
            SELECT j.id, j.build_id, j.platform, extract(epoch FROM now() - b.created_at)::bigint, p.queue_timeout_seconds::bigint
            FROM build_jobs j JOIN builds b ON b.id = j.build_id JOIN projects p ON p.id = b.project_id
            WHERE j.status = 'queued' AND NOT j.blocked AND NOT EXISTS (
                SELECT 1 FROM online o
                WHERE o.platform = j.platform
                  AND (o.organization_id IS NULL OR o.organization_id = j.organization_id)
                  AND (NOT o.emulated OR p.emulation <> 'native-only'))
            """, logger: logger) {
            let r = try row.decode((String, String, String, Int64, Int64?).self)
            out.append(WaitingJob(id: r.0, buildId: r.1, platform: r.2, ageSeconds: r.3, timeoutSeconds: r.4))
        }
        return out
    }

    enum UnservedJobs: StatementShape {}

    /// Queued jobs per platform (not those waiting for another build), for /metrics.
    func waitingCounts() async throws -> [String: Int] {
        var out: [String: Int] = [:]
        for try await (platform, n) in try await client.query(
            "SELECT platform, count(*)::int FROM build_jobs WHERE status = 'queued' AND NOT blocked GROUP BY platform", logger: logger).decode((String, Int).self) {
            out[platform] = n
        }
        return out
    }

    /// Tells waiting jobs' builds why they wait, in one transaction: one log line each.
    ///
    /// Under the builds' locks (the ones cancels and claims take), and only for jobs still
    /// queued: nothing is said after a build's final status. The locks first, then the jobs'
    /// statuses in a statement of their own: a status read in the locking statement could be the
    /// one from before a cancel that held the lock (PostgreSQL re-reads only the locked row), and
    /// the notice would follow the end. A build locked right now (a claim starting it, a cancel)
    /// is skipped, not waited for: the sweep never holds a claim up, and a build still waiting is
    /// told at the next sweep. Returns the jobs told.
    @discardableResult
    func tellWaiting(_ waiting: [(job: WaitingJob, timeout: Duration)]) async throws -> Set<String> {
        guard !waiting.isEmpty else { return [] }
        return try await client.transaction(logger: logger) { tx -> Set<String> in
            var locked: Set<String> = []
            for try await id in try await tx.query(
                "SELECT id FROM builds WHERE id = ANY(\(Array(Set(waiting.map(\.job.buildId))).sorted())) ORDER BY id FOR UPDATE SKIP LOCKED",
                logger: logger).decode(String.self) { locked.insert(id) }
            let candidates = waiting.filter { locked.contains($0.job.buildId) }
            guard !candidates.isEmpty else { return [] }
            var queued: Set<String> = []
            for try await id in try await tx.query(
                "SELECT id FROM build_jobs WHERE id = ANY(\(candidates.map(\.job.id))) AND status = 'queued'", logger: logger).decode(String.self) {
                queued.insert(id)
            }
            let told = candidates.filter { queued.contains($0.job.id) }
            try await BuildLog.append(told.map { item in
                let left = item.timeout.components.seconds - item.job.ageSeconds
                let line = "#drydock waiting: no online builder serves \(item.job.platform); the build fails if none comes within \(Self.duration(left))"
                return (buildId: item.job.buildId, entry: LogEntry.line(line, platform: item.job.platform))
            }, on: tx, logger: logger)
            return Set(told.map(\.job.id))
        }
    }

    /// Fails a job no builder took within the queue timeout, if it is still queued.
    func failUnserved(_ job: WaitingJob, timeout: Duration) async throws -> Bool {
        let setting = job.timeoutSeconds == nil ? "DRYDOCK_QUEUE_TIMEOUT_SECONDS" : "the project's --queue-timeout"
        let reason = "no online builder serves \(job.platform) and no agent starts one; the build waited \(Self.duration(timeout.components.seconds)) for one (\(setting)). Start a drydock-builder with DRYDOCK_BUILDER_PLATFORMS=\(job.platform), a drydock-agent with DRYDOCK_AGENT_PLATFORMS including it, or a builder that emulates it (DRYDOCK_BUILDER_EMULATE) if the project allows emulation"
        return try await client.transaction(logger: logger) { tx -> Bool in
            var failed = false
            for try await _ in try await tx.query(
                "UPDATE build_jobs SET status = 'failed', error = \(reason), finished_at = now() WHERE id = \(job.id) AND status = 'queued' RETURNING id",
                logger: logger).decode(String.self) { failed = true }
            guard failed else { return false }
            try await BuildLog.append([.line("error: \(reason)", platform: job.platform)],
                                      buildId: job.buildId, on: tx, logger: logger)
            try await Self.cancelSiblings(buildId: job.buildId, on: tx, logger: logger)
            try await BuildStore.closeIfDone(buildId: job.buildId, on: tx, logger: logger)
            return true
        }
    }

    static func duration(_ seconds: Int64) -> String {
        seconds >= 120 ? "\(seconds / 60) min" : "\(max(seconds, 0)) s"
    }

    /// How many times a job runs when the agent-started builders running it vanish.
    static let agentAttempts = 2

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
            var expired: [(id: String, buildId: String, worker: String?, token: String?, platform: String, confirmed: Bool, attempts: Int, onAgentBuilder: Bool)] = []
            for try await row in try await tx.query(
                """
                SELECT id, build_id, worker_name, build_token_id, platform, confirmed_at IS NOT NULL, attempts,
                       EXISTS (SELECT 1 FROM agent_builders ab WHERE ab.worker_token_id = j.worker_token_id)
                FROM build_jobs j
                WHERE status = 'running' AND lease_expires_at < now()
                FOR UPDATE OF j SKIP LOCKED
                """, logger: logger).decode((String, String, String?, String?, String, Bool, Int, Bool).self) { expired.append(row) }
            for job in expired {
                if let token = job.token {
                    try await PostgresTokenStore.revokeBuildToken(id: token, on: tx, logger: logger)
                }
                // A builder an agent started that vanished mid-job (its agent died, its machine went
                // away): the job is not the build's fault, so it runs again once on another builder.
                let retry = job.confirmed && job.onAgentBuilder && job.attempts < Self.agentAttempts
                if !job.confirmed || retry {
                    try await tx.query(
                        """
                        UPDATE build_jobs SET status = 'queued', worker_name = NULL, worker_token_id = NULL, build_token_id = NULL,
                               lease_expires_at = NULL, started_at = NULL, confirmed_at = NULL, last_event_sequence = -1,
                               attempts = attempts + \(retry ? 1 : 0), queued_at = now()
                        WHERE id = \(job.id)
                        """, logger: logger)
                    try await tx.query(
                        """
                        UPDATE builds SET status = 'queued', started_at = NULL
                        WHERE id = \(job.buildId) AND status = 'running'
                          AND NOT EXISTS (SELECT 1 FROM build_jobs WHERE build_id = \(job.buildId) AND status <> 'queued')
                        """, logger: logger)
                    let line = retry
                        ? "#drydock builder '\(job.worker ?? "?")' stopped responding mid-job (its agent or machine went away); queued again (attempt \(job.attempts + 1) of \(Self.agentAttempts))"
                        : "#drydock worker '\(job.worker ?? "?")' did not take up the job; queued again"
                    try await BuildLog.append([.line(line, platform: job.platform)], buildId: job.buildId, on: tx, logger: logger)
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
                try await BuildLog.append([.line("error: \(reason)", platform: job.platform)],
                                      buildId: job.buildId, on: tx, logger: logger)
                try await Self.cancelSiblings(buildId: job.buildId, on: tx, logger: logger)
                try await BuildStore.closeIfDone(buildId: job.buildId, on: tx, logger: logger)
            }
            return expired.count
        }
    }
}
