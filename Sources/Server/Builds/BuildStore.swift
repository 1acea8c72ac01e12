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

    /// A build to queue: `spec.pendingContexts` names the builds whose images it uses as named
    /// contexts (others of the same request, or existing builds of the project).
    struct NewBuild: Sendable {
        var id: String
        var projectId: String
        var organizationId: String
        var contextDigest: String
        var spec: BuildSpec
        var secrets: BuildSecrets
        var createdByTokenId: String
    }

    func create(_ new: NewBuild) async throws -> BuildRecord {
        guard let build = try await create([new]).first else { throw DomainError.internal("build vanished") }
        return build
    }

    /// Queues builds together (a bake): all or none. A build whose named contexts are unfinished
    /// builds is queued blocked, and released when they succeed (`releaseDependents`).
    func create(_ items: [NewBuild]) async throws -> [BuildRecord] {
        let batch = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        try await client.transaction(logger: logger) { tx in
            // Caps and plan limits (a read of the month's running total, without locks).
            for organizationId in Set(items.map(\.organizationId)).sorted() {
                if let refusal = try await UsageStore.refusal(organizationId: organizationId, on: tx, logger: logger) {
                    throw DomainError.limit("usage_limit", refusal)
                }
            }
            // Existing builds used as contexts, locked: one finishing now is either seen finished
            // here or, once this commits, finds this build waiting for it.
            let outside = Array(Set(items.flatMap { ($0.spec.pendingContexts ?? [:]).values }).subtracting(batch.keys)).sorted()
            var existing: [String: (projectId: String, status: BuildStatus, digest: String?)] = [:]
            if !outside.isEmpty {
                for try await (id, project, status, digest) in try await tx.query(
                    "SELECT id, project_id, status, digest FROM builds WHERE id = ANY(\(outside)) FOR SHARE", logger: logger
                ).decode((String, String, String, String?).self) {
                    existing[id] = (project, BuildStatus(rawValue: status) ?? .failed, digest)
                }
            }
            for item in items {
                var spec = item.spec
                var waiting: [String] = []
                var notes: [String] = []
                for (name, dependency) in (spec.pendingContexts ?? [:]).sorted(by: { $0.key < $1.key }) {
                    if let other = batch[dependency] {
                        if !waiting.contains(dependency) { waiting.append(dependency) }
                        notes.append("'\(name)' (target \(other.spec.bakeTarget ?? dependency), build \(dependency))")
                        continue
                    }
                    guard let found = existing[dependency], found.projectId == item.projectId else {
                        throw DomainError.invalidField("contexts.\(name)", "build \(dependency) is not a build of this project")
                    }
                    switch found.status {
                    case .succeeded:
                        guard let digest = found.digest else {
                            throw DomainError.invalidField("contexts.\(name)", "build \(dependency) made no image")
                        }
                        spec.namedImages = (spec.namedImages ?? [:]).merging([name: "\(item.projectId)/build:\(dependency)@\(digest)"]) { $1 }
                        spec.pendingContexts?[name] = nil
                    case .failed, .canceled:
                        throw DomainError.invalidField("contexts.\(name)", "build \(dependency) \(found.status == .failed ? "failed" : "was canceled"); its image cannot be a context")
                    case .queued, .running:
                        if !waiting.contains(dependency) { waiting.append(dependency) }
                        notes.append("'\(name)' (build \(dependency))")
                    }
                }
                if spec.pendingContexts?.isEmpty == true { spec.pendingContexts = nil }
                let specText = String(decoding: try BuildJSON.encoder.encode(spec), as: UTF8.self)
                let sealed = item.secrets.isEmpty ? nil : ByteBuffer(bytes: try secretBox.seal(item.secrets))
                try await tx.query(
                    """
                    INSERT INTO builds (id, project_id, organization_id, status, context_digest, spec, sealed_secrets, created_by_token_id,
                                        bake_id, waiting_for)
                    VALUES (\(item.id), \(item.projectId), \(item.organizationId), 'queued', \(item.contextDigest), \(specText), \(sealed),
                            \(item.createdByTokenId), \(spec.bakeId), \(waiting))
                    """, logger: logger)
                for platform in spec.platforms {
                    try await tx.query(
                        """
                        INSERT INTO build_jobs (id, build_id, organization_id, platform, status, blocked)
                        VALUES (\(Identifier.generate()), \(item.id), \(item.organizationId), \(platform.description), 'queued', \(!waiting.isEmpty))
                        """, logger: logger)
                }
                if !notes.isEmpty {
                    try await BuildLog.append([.line("#drydock waiting for the image\(notes.count == 1 ? "" : "s") of named context\(notes.count == 1 ? "" : "s") \(notes.joined(separator: ", "))", platform: nil)],
                                              buildId: item.id, on: tx, logger: logger)
                }
                // To the minute: builds queued together from one context do not wait for each other on its row.
                try await tx.query(
                    "UPDATE build_contexts SET last_used_at = now() WHERE project_id = \(item.projectId) AND digest = \(item.contextDigest) AND last_used_at < now() - interval '1 minute'",
                    logger: logger)
            }
            try await BuildSignals.notify("jobs", on: tx, logger: logger)
        }
        var out: [BuildRecord] = []
        for item in items {
            guard let build = try await build(id: item.id) else { throw DomainError.internal("build vanished") }
            out.append(build)
        }
        return out
    }

    /// The builds of a bake, in the order they were queued.
    func bake(id: String) async throws -> [BuildRecord] {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.buildColumns) FROM builds WHERE bake_id = \(id) ORDER BY seq", logger: logger)
        var out: [BuildRecord] = []
        for try await row in rows.decode(BuildRow.self) { out.append(try Self.build(row).item) }
        let jobs = try await jobs(buildIds: out.map(\.id))
        for i in out.indices { out[i].jobs = jobs[out[i].id] ?? [] }
        return out
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
    ///
    /// The caller's transaction holds the build's row lock, taken in an earlier statement, so the
    /// jobs read here include every other job whose end committed first: two transactions ending
    /// the two jobs of one build at once must not each see the other's job still open.
    @discardableResult
    static func closeIfDone(buildId: String, on tx: PostgresConnection, logger: Logger) async throws -> CloseOutcome {
        var jobs: [(status: BuildStatus, digest: String?, error: String?, platform: String)] = []
        for try await row in try await tx.prepared(
            JobsOfBuild.self, "SELECT status, digest, error, platform FROM build_jobs WHERE build_id = \(buildId) ORDER BY seq", logger: logger
        ) {
            let (status, digest, error, platform) = try row.decode((String, String?, String?, String).self)
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

    /// Statements every build runs as it closes, prepared once per connection (`StatementShape`).
    enum JobsOfBuild: StatementShape {}
    enum CloseBuild: StatementShape {}
    enum Dependents: StatementShape {}

    enum CloseOutcome {
        case open, closed, needsIndex
    }

    /// Records a build's final status (once) and ends its log with it.
    static func close(buildId: String, status: BuildStatus, digest: String?, error: String?, on tx: PostgresConnection, logger: Logger) async throws {
        var closed = false
        for try await _ in try await tx.prepared(
            CloseBuild.self,
            """
            UPDATE builds SET status = \(status.rawValue), digest = \(digest), error = \(error), finished_at = now(),
                   sealed_secrets = NULL
            WHERE id = \(buildId) AND status NOT IN ('succeeded', 'failed', 'canceled')
            RETURNING id
            """, logger: logger) { closed = true }
        guard closed else { return }
        try await BuildLog.append(
            [LogEntry(kind: .status, status: status, error: error, digest: digest)],
            buildId: buildId, on: tx, logger: logger)
        // A statement of its own (a fresh snapshot): a build created waiting for this one while
        // this update waited for its lock is seen.
        try await releaseDependents(of: buildId, status: status, digest: digest, on: tx, logger: logger)
    }

    /// The builds waiting for this one's image as a named context: when it succeeded, its image
    /// becomes their context and those waiting for nothing else are handed to builders; when it
    /// failed or was canceled, they are canceled (and so, in turn, theirs).
    static func releaseDependents(of buildId: String, status: BuildStatus, digest: String?, on tx: PostgresConnection, logger: Logger) async throws {
        // Through the index of waiting builds only (a few rows, whatever the history or the
        // queue's depth): with the status in the same scan the planner may walk every unfinished
        // build instead. The status is checked on the locked rows.
        var dependents: [(id: String, projectId: String, spec: String, waiting: [String])] = []
        for try await row in try await tx.prepared(
            Dependents.self,
            """
            WITH waiting AS MATERIALIZED (
                SELECT id, project_id, spec, waiting_for, status, seq FROM builds
                WHERE waiting_for <> '{}' AND waiting_for @> ARRAY[\(buildId)]::text[]
                ORDER BY seq FOR UPDATE
            )
            SELECT id, project_id, spec, waiting_for FROM waiting WHERE status = 'queued' ORDER BY seq
            """, logger: logger) { dependents.append(try row.decode((String, String, String, [String]).self)) }
        for dependent in dependents {
            var spec = try BuildJSON.decoder.decode(BuildSpec.self, from: Data(dependent.spec.utf8))
            let names = (spec.pendingContexts ?? [:]).filter { $0.value == buildId }.keys.sorted()
            let contexts = names.map { "'\($0)'" }.joined(separator: ", ")
            guard status == .succeeded, let digest else {
                let reason = "not started: build \(buildId), its named context \(contexts), \(status == .failed ? "failed" : "was canceled")"
                try await tx.query(
                    """
                    UPDATE build_jobs SET status = 'canceled', error = \(reason), finished_at = now(), blocked = false
                    WHERE build_id = \(dependent.id) AND status = 'queued'
                    """, logger: logger)
                try await BuildLog.append([.line("#drydock " + reason, platform: nil)], buildId: dependent.id, on: tx, logger: logger)
                try await closeIfDone(buildId: dependent.id, on: tx, logger: logger)
                continue
            }
            for name in names {
                spec.namedImages = (spec.namedImages ?? [:]).merging([name: "\(dependent.projectId)/build:\(buildId)@\(digest)"]) { $1 }
                spec.pendingContexts?[name] = nil
            }
            if spec.pendingContexts?.isEmpty == true { spec.pendingContexts = nil }
            let remaining = dependent.waiting.filter { $0 != buildId }
            let specText = String(decoding: try BuildJSON.encoder.encode(spec), as: UTF8.self)
            try await tx.query("UPDATE builds SET spec = \(specText), waiting_for = \(remaining) WHERE id = \(dependent.id)", logger: logger)
            guard remaining.isEmpty else {
                try await BuildLog.append([.line("#drydock build \(buildId) (context \(contexts)) succeeded; still waiting for \(remaining.joined(separator: ", "))", platform: nil)],
                                          buildId: dependent.id, on: tx, logger: logger)
                continue
            }
            try await tx.query(
                "UPDATE build_jobs SET blocked = false, queued_at = now() WHERE build_id = \(dependent.id) AND status = 'queued'", logger: logger)
            try await BuildLog.append([.line("#drydock build \(buildId) (context \(contexts)) succeeded; queued for a builder", platform: nil)],
                                      buildId: dependent.id, on: tx, logger: logger)
            try await BuildSignals.notify("jobs", on: tx, logger: logger)
        }
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

    /// How long an index assembly holds its build without renewing: a server that stopped
    /// mid-way is taken over by the lease reaper's sweep after this.
    static let assemblyHoldSeconds = 120

    /// Takes the assembly of a running build's index for this server, unless another assembly
    /// (the finishing request's or a sweep's, on any replica) holds it: with an image to push to
    /// another registry, an assembly takes longer than the sweep's interval, and a second one
    /// pushed everything again beside it.
    func claimAssembly(buildId: String) async throws -> Bool {
        var claimed = false
        for try await _ in try await client.query(
            """
            UPDATE builds SET index_claimed_at = now()
            WHERE id = \(buildId) AND status = 'running'
              AND (index_claimed_at IS NULL OR index_claimed_at < now() - make_interval(secs => \(Double(Self.assemblyHoldSeconds))))
            RETURNING id
            """, logger: logger).decode(String.self) { claimed = true }
        return claimed
    }

    /// Keeps an assembly's hold while it runs.
    func renewAssembly(buildId: String) async throws {
        try await client.query("UPDATE builds SET index_claimed_at = now() WHERE id = \(buildId) AND status = 'running'", logger: logger)
    }

    /// Multi-platform builds whose jobs all succeeded but whose index is not written yet (the
    /// server stopped in between) and no assembly holds: the lease reaper assembles them.
    func awaitingIndex() async throws -> [String] {
        let rows = try await client.query(
            """
            SELECT b.id FROM builds b
            WHERE b.status = 'running'
              AND (b.index_claimed_at IS NULL OR b.index_claimed_at < now() - make_interval(secs => \(Double(Self.assemblyHoldSeconds))))
              AND (SELECT count(*) FROM build_jobs j WHERE j.build_id = b.id) > 1
              AND NOT EXISTS (SELECT 1 FROM build_jobs j WHERE j.build_id = b.id AND j.status <> 'succeeded')
            """, logger: logger)
        var out: [String] = []
        for try await id in rows.decode(String.self) { out.append(id) }
        return out
    }

    /// Closes builds left open with none of their jobs left to run (a version before the build
    /// lock left some when two of a build's jobs ended at the same moment): the lease reaper runs
    /// this now and then. Each is closed as its jobs say, under its lock; multi-platform builds
    /// whose jobs all succeeded are left to the index assembly. Returns how many it closed.
    func closeEnded() async throws -> Int {
        var ids: [String] = []
        for try await id in try await client.query(
            """
            SELECT b.id FROM builds b
            WHERE b.status IN ('queued', 'running')
              AND EXISTS (SELECT 1 FROM build_jobs j WHERE j.build_id = b.id)
              AND NOT EXISTS (SELECT 1 FROM build_jobs j WHERE j.build_id = b.id AND j.status IN ('queued', 'running'))
            ORDER BY b.id
            """, logger: logger).decode(String.self) { ids.append(id) }
        var closed = 0
        for id in ids {
            let outcome = try await client.transaction(logger: logger) { tx -> CloseOutcome in
                try await tx.query("SELECT id FROM builds WHERE id = \(id) FOR UPDATE", logger: logger)
                return try await Self.closeIfDone(buildId: id, on: tx, logger: logger)
            }
            if outcome == .closed { closed += 1 }
        }
        return closed
    }

    /// Cancels a build: queued jobs at once, running ones when their worker next checks in.
    func cancel(buildId: String) async throws {
        try await client.transaction(logger: logger) { tx in
            var status: BuildStatus?
            for try await value in try await tx.query("SELECT status FROM builds WHERE id = \(buildId) FOR UPDATE", logger: logger).decode(String.self) {
                status = BuildStatus(rawValue: value)
            }
            guard let status, !status.isFinished else { return }
            try await Self.requestCancel(buildId: buildId, queuedError: "canceled before it started", on: tx, logger: logger)
            try await Self.closeIfDone(buildId: buildId, on: tx, logger: logger)
            try await BuildSignals.notify("cancel", on: tx, logger: logger)
        }
    }

    /// Stops a build's jobs: queued ones are canceled at once, running ones when their worker next
    /// heartbeats (a user's cancel, or a failed job of a multi-platform build: the build has
    /// failed). The caller holds the build's row lock. Queued jobs a claim holds at this moment
    /// are passed over: that claim, which locked the job before it locks the build, waits for this
    /// transaction and then starts the job, whose worker hears of the cancel at its first
    /// heartbeat. Waiting for them here instead (this holding the build, the claim waiting for it)
    /// was a deadlock, which PostgreSQL broke after a second by failing one of the two.
    static func requestCancel(buildId: String, queuedError: String?, on tx: PostgresConnection, logger: Logger) async throws {
        try await tx.query("UPDATE builds SET cancel_requested = true WHERE id = \(buildId)", logger: logger)
        try await tx.query(
            """
            UPDATE build_jobs SET status = 'canceled', finished_at = now(), error = \(queuedError)
            WHERE id IN (SELECT id FROM build_jobs WHERE build_id = \(buildId) AND status = 'queued' FOR UPDATE SKIP LOCKED)
            """, logger: logger)
    }
}
