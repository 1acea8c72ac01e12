import Foundation
import Logging
import PostgresNIO

/// drydock-agent's side of the server: agents report what they can start, and the server decides
/// from the queue which builders they start (one project and platform each) and stop. Decisions
/// are taken under one transaction-level lock, so what one agent is told to start is counted
/// before the next agent asks: two agents never start a builder for the same demand.
public struct AgentStore: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// An agent that polled within this long is online (a poll lasts at most 60 s).
    static let onlineWindowSeconds = 90
    static let decisionLock: Int64 = 7_411_954

    struct Report: Sendable {
        var name: String
        var launcher: String
        var platforms: [String]
        var emulated: [String] = []
        var maxBuilders: Int
        var cpus: Int?
        var memoryMegabytes: Int64?
        /// The builders it runs, with the cache size each last measured.
        var builders: [(id: String, cacheBytes: Int64?)]
        /// Shutting down: the builders it still runs are finishing their jobs before they stop.
        var draining = false
    }

    struct Launch: Sendable {
        var builderId: String
        var organizationId: String
        var projectId: String
        var platform: String
        var registrationSecret: String
        var clone: Bool
        var emulated: Bool
        var buildsPerBuilder: Int
        var idleSeconds: Int
    }

    struct Instructions: Sendable {
        var agentId: String
        var start: [Launch] = []
        var stop: [String] = []
        var isEmpty: Bool { start.isEmpty && stop.isEmpty }
    }

    /// Records the agent's report: its capacity, and which of its builders still run (one it no
    /// longer reports has exited: stopped, its worker token revoked). Returns the agent's id and the
    /// builders to stop (ones it reports that the server had stopped or never started).
    func record(tokenId: String, report: Report) async throws -> Instructions {
        try await client.transaction(logger: logger) { tx -> Instructions in
            var agentId: String?
            for try await id in try await tx.query(
                """
                INSERT INTO agents (id, token_id, name, launcher, platforms, emulated_platforms, max_builders, cpus, memory_mb)
                VALUES (\(Identifier.generate()), \(tokenId), \(report.name), \(report.launcher), \(report.platforms), \(report.emulated),
                        \(report.maxBuilders), \(report.cpus), \(report.memoryMegabytes))
                ON CONFLICT (token_id, name) DO UPDATE SET launcher = EXCLUDED.launcher, platforms = EXCLUDED.platforms,
                    emulated_platforms = EXCLUDED.emulated_platforms,
                    max_builders = EXCLUDED.max_builders, cpus = EXCLUDED.cpus, memory_mb = EXCLUDED.memory_mb, last_seen_at = now()
                RETURNING id
                """, logger: logger).decode(String.self) { agentId = id }
            guard let agentId else { throw DomainError(.internal, code: "internal", "the agent was not recorded") }
            let reported = Set(report.builders.map(\.id))
            var live: [String] = []
            for try await id in try await tx.query(
                "SELECT id FROM agent_builders WHERE agent_id = \(agentId) AND state <> 'stopped' FOR UPDATE",
                logger: logger).decode(String.self) { live.append(id) }
            for id in live where !reported.contains(id) {
                try await Self.stop(builderId: id, reason: "exited", on: tx, logger: logger)
            }
            for builder in report.builders where live.contains(builder.id) {
                if let bytes = builder.cacheBytes {
                    try await tx.query("UPDATE agent_builders SET cache_bytes = \(bytes) WHERE id = \(builder.id)", logger: logger)
                }
                // A draining agent's builders finish their jobs and stop: they take no new demand.
                if report.draining {
                    try await tx.query(
                        "UPDATE agent_builders SET state = 'stopping', state_since = now() WHERE id = \(builder.id) AND state <> 'stopping'",
                        logger: logger)
                }
            }
            var instructions = Instructions(agentId: agentId)
            // What it runs that the server does not know as running (stopped meanwhile, or
            // another server's): stop it.
            instructions.stop = report.builders.map(\.id).filter { !live.contains($0) }
            return instructions
        }
    }

    /// Stops a builder in the server's books: its worker token and unused registration secret are
    /// revoked (a builder still alive can claim nothing more; its running jobs keep their build
    /// tokens to the end or to their lease).
    static func stop(builderId: String, reason: String, on tx: PostgresConnection, logger: Logger) async throws {
        for try await (worker, registration) in try await tx.query(
            """
            UPDATE agent_builders SET state = 'stopped', state_since = now(), stop_reason = \(reason)
            WHERE id = \(builderId) AND state <> 'stopped'
            RETURNING worker_token_id, registration_token_id
            """, logger: logger).decode((String?, String?).self) {
            for token in [worker, registration].compactMap({ $0 }) {
                try await tx.query("UPDATE tokens SET revoked_at = now() WHERE id = \(token) AND revoked_at IS NULL", logger: logger)
            }
        }
    }

    /// Builders to start for this agent now: per project and platform it serves (its organization's,
    /// or every organization's for a server-wide agent token), enough builders for the jobs queued
    /// and running there, within the project's `max_builders` and the agent's own capacity.
    func decide(agentId: String, organizationId: String?, emulationFallbackSeconds: Double = 10) async throws -> [Launch] {
        try await client.transaction(logger: logger) { tx -> [Launch] in
            try await tx.query("SELECT pg_advisory_xact_lock(\(Self.decisionLock))", logger: logger)
            var agent: (platforms: [String], emulated: [String], max: Int, live: Int)?
            for try await row in try await tx.query(
                """
                SELECT a.platforms, a.emulated_platforms, a.max_builders,
                       (SELECT count(*)::int FROM agent_builders b WHERE b.agent_id = a.id AND b.state <> 'stopped')
                FROM agents a WHERE a.id = \(agentId)
                """, logger: logger).decode(([String], [String], Int, Int).self) { agent = row }
            // Platforms it runs natively are never started emulated.
            let emulatedOnly = agent.map { a in a.emulated.filter { !a.platforms.contains($0) } } ?? []
            guard let agent, agent.live < agent.max else { return [] }
            var room = agent.max - agent.live
            var launches: [Launch] = []
            for try await (org, project, platform, queued, maxBuilders, perBuilder, idle, live, runningJobs, mainHere) in try await tx.query(
                """
                WITH demand AS (
                    SELECT j.organization_id, b.project_id, j.platform, count(*)::int AS queued
                    FROM build_jobs j JOIN builds b ON b.id = j.build_id JOIN projects p ON p.id = b.project_id
                    WHERE j.status = 'queued' AND NOT j.blocked
                      AND (j.platform = ANY(\(agent.platforms))
                           OR (j.platform = ANY(\(emulatedOnly))
                               AND (p.emulation = 'allowed'
                                    OR (p.emulation = 'fallback'
                                        AND j.queued_at <= now() - make_interval(secs => coalesce(p.emulation_fallback_seconds, \(emulationFallbackSeconds)::double precision))))))
                      AND (\(organizationId)::text IS NULL OR j.organization_id = \(organizationId))
                    GROUP BY 1, 2, 3
                )
                SELECT d.organization_id, d.project_id, d.platform, d.queued, p.max_builders, p.builds_per_builder, p.builder_idle_seconds,
                       (SELECT count(*)::int FROM agent_builders ab
                        WHERE ab.project_id = d.project_id AND ab.platform = d.platform AND ab.state IN ('starting', 'running')),
                       (SELECT count(*)::int FROM build_jobs rj JOIN agent_builders ab ON ab.worker_token_id = rj.worker_token_id
                        WHERE rj.status = 'running' AND ab.project_id = d.project_id AND ab.platform = d.platform AND ab.state = 'running'),
                       EXISTS (SELECT 1 FROM agent_builders ab
                               WHERE ab.agent_id = \(agentId) AND ab.project_id = d.project_id AND ab.platform = d.platform
                                 AND ab.state <> 'stopped' AND NOT ab.clone)
                FROM demand d JOIN projects p ON p.id = d.project_id
                -- Builders of this agent that stopped without serving a job (they could not start,
                -- register or run here): after three in two minutes, it is not asked again for a while.
                WHERE (SELECT count(*) FROM agent_builders f
                       WHERE f.agent_id = \(agentId) AND f.project_id = d.project_id AND f.platform = d.platform
                         AND f.state = 'stopped' AND f.jobs_served = 0 AND f.state_since > now() - interval '2 minutes') < 3
                ORDER BY d.queued DESC, d.project_id, d.platform
                """, logger: logger).decode((String, String, String, Int, Int, Int, Int, Int, Int, Bool).self) {
                let perBuilder = max(perBuilder, 1)
                let wanted = min(maxBuilders, (queued + runningJobs + perBuilder - 1) / perBuilder)
                var mainTaken = mainHere
                var count = min(max(wanted - live, 0), room)
                while count > 0 {
                    launches.append(Launch(builderId: Identifier.generate(), organizationId: org, projectId: project, platform: platform,
                                           registrationSecret: "", clone: mainTaken, emulated: !agent.platforms.contains(platform),
                                           buildsPerBuilder: perBuilder, idleSeconds: idle))
                    mainTaken = true
                    count -= 1
                    room -= 1
                }
                if room == 0 { break }
            }
            for i in launches.indices {
                let launch = launches[i]
                let registration = NewToken(kind: .registration, name: "builder \(launch.builderId)", organizationId: launch.organizationId,
                                            projectId: launch.projectId, expiresAt: Date().addingTimeInterval(3600))
                _ = try await PostgresTokenStore.insert(registration, on: tx, logger: logger)
                launches[i].registrationSecret = registration.secret
                try await tx.query(
                    """
                    INSERT INTO agent_builders (id, agent_id, organization_id, project_id, platform, clone, emulated, state, registration_token_id)
                    VALUES (\(launch.builderId), \(agentId), \(launch.organizationId), \(launch.projectId), \(launch.platform), \(launch.clone),
                            \(launch.emulated), 'starting', \(registration.id))
                    """, logger: logger)
            }
            return launches
        }
    }

    struct Registered: Sendable {
        var builderId: String
        var workerToken: String
        var organizationId: String
        var projectId: String
        var platform: String
        var emulated: Bool
        var buildsPerBuilder: Int
        var idleSeconds: Int
    }

    /// A builder trades its registration secret (once) for a worker token of its project.
    func register(registrationTokenId: String, name: String) async throws -> Registered? {
        try await client.transaction(logger: logger) { tx -> Registered? in
            var found: (id: String, org: String, project: String, platform: String, emulated: Bool, perBuilder: Int, idle: Int)?
            for try await row in try await tx.query(
                """
                SELECT ab.id, ab.organization_id, ab.project_id, ab.platform, ab.emulated, p.builds_per_builder, p.builder_idle_seconds
                FROM agent_builders ab JOIN projects p ON p.id = ab.project_id
                WHERE ab.registration_token_id = \(registrationTokenId) AND ab.state = 'starting'
                FOR UPDATE OF ab
                """, logger: logger).decode((String, String, String, String, Bool, Int, Int).self) { found = row }
            // Used once: revoked whatever the outcome.
            try await tx.query("UPDATE tokens SET revoked_at = now() WHERE id = \(registrationTokenId) AND revoked_at IS NULL", logger: logger)
            guard let found else { return nil }
            let worker = NewToken(kind: .worker, name: "\(name) (builder \(found.id))", organizationId: found.org, projectId: found.project)
            _ = try await PostgresTokenStore.insert(worker, on: tx, logger: logger)
            try await tx.query(
                """
                UPDATE agent_builders SET state = 'running', state_since = now(), worker_token_id = \(worker.id), registration_token_id = NULL
                WHERE id = \(found.id)
                """, logger: logger)
            return Registered(builderId: found.id, workerToken: worker.secret, organizationId: found.org, projectId: found.project,
                              platform: found.platform, emulated: found.emulated, buildsPerBuilder: found.perBuilder, idleSeconds: found.idle)
        }
    }

    /// The project and platform a builder's worker token serves, if an agent started it.
    func scope(workerTokenId: String) async throws -> (builderId: String, projectId: String, platform: String, emulated: Bool)? {
        for try await row in try await client.query(
            "SELECT id, project_id, platform, emulated FROM agent_builders WHERE worker_token_id = \(workerTokenId) AND state = 'running'",
            logger: logger).decode((String, String, String, Bool).self) { return row }
        return nil
    }

    /// Stops the builders of agents that stopped polling, so their demand goes to others.
    func stopBuildersOfSilentAgents() async throws -> Int {
        try await client.transaction(logger: logger) { tx -> Int in
            var ids: [String] = []
            for try await id in try await tx.query(
                """
                SELECT b.id FROM agent_builders b JOIN agents a ON a.id = b.agent_id
                WHERE b.state <> 'stopped' AND a.last_seen_at < now() - make_interval(secs => \(Double(Self.onlineWindowSeconds)))
                FOR UPDATE OF b SKIP LOCKED
                """, logger: logger).decode(String.self) { ids.append(id) }
            for id in ids { try await Self.stop(builderId: id, reason: "its agent stopped reporting", on: tx, logger: logger) }
            return ids.count
        }
    }

    struct BuilderRow: Sendable {
        var id: String
        var agentId: String
        var agentName: String
        var projectId: String
        var platform: String
        var state: String
        var since: Date
        var jobsServed: Int
        var cacheBytes: Int64?
        var clone: Bool
        var emulated: Bool = false
        var lastSeenAt: Date?
        var serverWide: Bool
        var running: [JobQueue.BuilderRecord.RunningJob] = []
    }

    /// An organization's agent-started builders: live ones and those stopped in the last hour.
    /// Running ones are `busy` while they run a job and `idle` otherwise.
    func builders(organizationId: String) async throws -> [BuilderRow] {
        var out: [BuilderRow] = []
        for try await r in try await client.query(
            """
            SELECT b.id, a.id, a.name, b.project_id, b.platform,
                   CASE WHEN b.state <> 'running' THEN b.state
                        WHEN EXISTS (SELECT 1 FROM build_jobs j WHERE j.worker_token_id = b.worker_token_id AND j.status = 'running') THEN 'busy'
                        ELSE 'idle' END,
                   CASE WHEN b.state <> 'running' THEN b.state_since
                        ELSE greatest(b.state_since,
                            coalesce((SELECT max(greatest(j.started_at, coalesce(j.finished_at, j.started_at))) FROM build_jobs j
                                      WHERE j.worker_token_id = b.worker_token_id), b.state_since)) END,
                   b.jobs_served, b.cache_bytes, b.clone, b.emulated,
                   (SELECT w.last_seen_at FROM workers w WHERE w.token_id = b.worker_token_id ORDER BY w.last_seen_at DESC LIMIT 1),
                   t.organization_id IS NULL
            FROM agent_builders b JOIN agents a ON a.id = b.agent_id JOIN tokens t ON t.id = a.token_id
            WHERE b.organization_id = \(organizationId)
              AND (b.state <> 'stopped' OR b.state_since > now() - interval '1 hour')
            ORDER BY b.state = 'stopped', b.seq
            """, logger: logger).decode((String, String, String, String, String, String, Date, Int, Int64?, Bool, Bool, Date?, Bool).self) {
            out.append(BuilderRow(id: r.0, agentId: r.1, agentName: r.2, projectId: r.3, platform: r.4, state: r.5, since: r.6, jobsServed: r.7,
                                  cacheBytes: r.8, clone: r.9, emulated: r.10, lastSeenAt: r.11, serverWide: r.12))
        }
        for try await (builderId, jobId, buildId, projectId, platform, emulated) in try await client.query(
            """
            SELECT ab.id, j.id, j.build_id, b.project_id, j.platform, j.emulated
            FROM build_jobs j JOIN agent_builders ab ON ab.worker_token_id = j.worker_token_id JOIN builds b ON b.id = j.build_id
            WHERE j.status = 'running' AND ab.organization_id = \(organizationId) AND ab.state <> 'stopped'
            ORDER BY j.seq
            """, logger: logger).decode((String, String, String, String, String, Bool).self) {
            if let i = out.firstIndex(where: { $0.id == builderId }) {
                out[i].running.append(.init(jobId: jobId, buildId: buildId, projectId: projectId, platform: platform, emulated: emulated))
            }
        }
        return out
    }

    struct AgentRow: Sendable {
        var id: String
        var name: String
        var launcher: String
        var platforms: [String]
        var emulated: [String]
        var maxBuilders: Int
        var cpus: Int?
        var memoryMegabytes: Int64?
        var lastSeenAt: Date
        var online: Bool
        var serverWide: Bool
    }

    /// The agents serving an organization (its own agent tokens' and server-wide ones) seen in the last day.
    func agents(organizationId: String) async throws -> [AgentRow] {
        var out: [AgentRow] = []
        for try await r in try await client.query(
            """
            SELECT a.id, a.name, a.launcher, a.platforms, a.emulated_platforms, a.max_builders, a.cpus, a.memory_mb, a.last_seen_at,
                   a.last_seen_at > now() - make_interval(secs => \(Double(Self.onlineWindowSeconds))), t.organization_id IS NULL
            FROM agents a JOIN tokens t ON t.id = a.token_id
            WHERE t.revoked_at IS NULL AND (t.organization_id IS NULL OR t.organization_id = \(organizationId))
              AND a.last_seen_at > now() - interval '1 day'
            ORDER BY 10 DESC, a.name
            """, logger: logger).decode((String, String, String, [String], [String], Int, Int?, Int64?, Date, Bool, Bool).self) {
            out.append(AgentRow(id: r.0, name: r.1, launcher: r.2, platforms: r.3, emulated: r.4, maxBuilders: r.5, cpus: r.6, memoryMegabytes: r.7,
                                lastSeenAt: r.8, online: r.9, serverWide: r.10))
        }
        return out
    }

    /// Builders per state across the server, for /metrics.
    func builderCounts() async throws -> [String: Int] {
        var out: [String: Int] = ["starting": 0, "idle": 0, "busy": 0, "stopping": 0]
        for try await (state, n) in try await client.query(
            """
            SELECT CASE WHEN b.state <> 'running' THEN b.state
                        WHEN EXISTS (SELECT 1 FROM build_jobs j WHERE j.worker_token_id = b.worker_token_id AND j.status = 'running') THEN 'busy'
                        ELSE 'idle' END, count(*)::int
            FROM agent_builders b WHERE b.state <> 'stopped' GROUP BY 1
            """, logger: logger).decode((String, Int).self) { out[state] = n }
        return out
    }

    // MARK: caches

    struct CacheRow: Sendable {
        var platform: String
        var bytes: Int64
        var images: Int
        var lastUsedAt: Date?
        var generation: Int
        var resetAt: Date?
    }

    func caches(projectId: String) async throws -> [CacheRow] {
        var out: [CacheRow] = []
        for try await r in try await client.query(
            "SELECT platform, bytes, images, last_used_at, generation, reset_at FROM project_caches WHERE project_id = \(projectId) ORDER BY platform",
            logger: logger).decode((String, Int64, Int, Date?, Int, Date?).self) {
            out.append(CacheRow(platform: r.0, bytes: r.1, images: r.2, lastUsedAt: r.3, generation: r.4, resetAt: r.5))
        }
        return out
    }

    /// Raises the cache generation of one platform (or every platform the project has built for):
    /// the next builder to take a job there starts on an empty cache and deletes the old one.
    func resetCache(projectId: String, platform: String?) async throws {
        if let platform {
            try await client.query(
                """
                INSERT INTO project_caches (project_id, platform, generation, reset_at) VALUES (\(projectId), \(platform), 1, now())
                ON CONFLICT (project_id, platform) DO UPDATE SET generation = project_caches.generation + 1, bytes = 0, images = 0, reset_at = now()
                """, logger: logger)
        } else {
            try await client.query(
                "UPDATE project_caches SET generation = generation + 1, bytes = 0, images = 0, reset_at = now() WHERE project_id = \(projectId)",
                logger: logger)
        }
    }

    /// What a job's builder measured of its cache afterwards.
    static func recordCache(jobId: String, bytes: Int64?, images: Int?, on tx: PostgresConnection, logger: Logger) async throws {
        try await tx.query(
            """
            INSERT INTO project_caches (project_id, platform, bytes, images, last_used_at)
            SELECT b.project_id, j.platform, coalesce(\(bytes), 0), coalesce(\(images), 0), now()
            FROM build_jobs j JOIN builds b ON b.id = j.build_id WHERE j.id = \(jobId)
            ON CONFLICT (project_id, platform) DO UPDATE SET
                bytes = coalesce(\(bytes), project_caches.bytes), images = coalesce(\(images), project_caches.images), last_used_at = now()
            """, logger: logger)
        if let bytes {
            try await tx.query(
                """
                UPDATE agent_builders ab SET cache_bytes = \(bytes)
                FROM build_jobs j WHERE j.id = \(jobId) AND ab.worker_token_id = j.worker_token_id
                """, logger: logger)
        }
    }
}
