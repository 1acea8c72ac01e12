import DrydockClient
@testable import DrydockServer
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

// One test at a time: each runs a server whose pools open up to 24 connections, and ten of them at
// once beside the other suites took the shared test cluster past its 300 connections of then (the
// likely cause of a CI run in which other suites' requests waited 5 s for the database: 503).
@Suite("The queue under load", .serialized)
struct QueueLoadTests {
    static func strings(_ url: DatabaseURL, _ query: PostgresQuery) async throws -> [String] {
        try await ServerRunner.withDatabase(url, logger: TestDatabase.logger, waitLimit: TestDatabase.setupWaitLimit) { client in
            var out: [String] = []
            for try await value in try await client.query(query, logger: TestDatabase.logger).decode(String.self) { out.append(value) }
            return out
        }
    }

    /// A project of its own with `count` single-platform builds queued; its id.
    static func queueBuilds(_ server: TestServer, _ name: String, count: Int) async throws -> String {
        let project = try await server.createProject(name)
        let context = try await server.uploadZeroContext(project)
        for _ in 0..<count {
            let created = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                   json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64"]}"#)
            #expect(created.status == .created, "\(created.text)")
        }
        return project
    }

    /// A project of its own with `count` two-platform builds (linux/amd64 and linux/arm64)
    /// queued; its id and the builds' ids, oldest first.
    static func queuePairs(_ server: TestServer, _ name: String, count: Int) async throws -> (project: String, builds: [String]) {
        let project = try await server.createProject(name)
        let context = try await server.uploadZeroContext(project)
        var builds: [String] = []
        for _ in 0..<count {
            let created = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                   json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64","linux/arm64"]}"#)
            try #require(created.status == .created, "\(created.text)")
            builds.append(try created.decoded(Schemas.Build.self).id)
        }
        return (project, builds)
    }

    /// Starts `count` queued jobs of either platform, each for a worker of its own name (w0, w1…)
    /// under one worker token of the organization; their assignments, in claim order.
    static func claimJobs(_ server: TestServer, count: Int) async throws -> [Schemas.JobAssignment] {
        let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
        var jobs: [Schemas.JobAssignment] = []
        for n in 0..<count {
            let answer = try await server.requestOwn(.post, "/api/v1/workers/claim", token: worker,
                                                     json: #"{"name":"w\#(n)","platforms":["linux/amd64","linux/arm64"],"waitSeconds":0}"#)
            try #require(answer.status == .ok, "claim \(n): \(answer.text)")
            jobs.append(try answer.decoded(Schemas.JobAssignment.self))
        }
        return jobs
    }

    /// The build and queue stores on a database connection of the test's own.
    static func withStores<T: Sendable>(_ server: TestServer, _ body: @escaping @Sendable (BuildStore, JobQueue, Database) async throws -> T) async throws -> T {
        let logger = TestDatabase.logger
        return try await ServerRunner.withDatabase(server.database, logger: logger, waitLimit: TestDatabase.setupWaitLimit) { db in
            let keys = ServerKeys(dataDirectory: nil)
            try await keys.load(from: db, logger: logger)
            let box = BuildSecretBox(keys: keys)
            return try await body(BuildStore(client: db, logger: logger, secretBox: box), JobQueue(client: db, logger: logger, secretBox: box, lease: .seconds(60)), db)
        }
    }

    /// Sends `request` while a claim of `build`'s queued jobs is in flight, in a claim's lock
    /// order: the jobs locked (as picked, `FOR UPDATE SKIP LOCKED`), then, once the request has
    /// answered or waits for a lock, the build, and the jobs started. Fails if the claim fails
    /// (a deadlock PostgreSQL broke); returns the request's answer.
    static func duringClaim(of build: String, _ server: TestServer, what: String,
                            _ request: @escaping @Sendable () async throws -> JSONResponse) async throws -> JSONResponse {
        let (locked, lockedSignal) = AsyncStream<Void>.makeStream()
        let (proceed, proceedSignal) = AsyncStream<Void>.makeStream()
        let claim = Task {
            try await ServerRunner.withDatabase(server.database, logger: TestDatabase.logger, waitLimit: TestDatabase.setupWaitLimit) { client in
                try await client.transaction(logger: TestDatabase.logger) { tx in
                    let logger = TestDatabase.logger
                    try await tx.query("SELECT id FROM build_jobs WHERE build_id = \(build) AND status = 'queued' FOR UPDATE SKIP LOCKED", logger: logger)
                    lockedSignal.yield()
                    for await _ in proceed { break }
                    try await tx.query("SELECT id FROM builds WHERE id = \(build) FOR UPDATE", logger: logger)
                    try await tx.query("UPDATE build_jobs SET status = 'running', started_at = now() WHERE build_id = \(build) AND status = 'queued'", logger: logger)
                    try await tx.query("UPDATE builds SET status = 'running', started_at = now() WHERE id = \(build) AND status = 'queued'", logger: logger)
                }
            }
        }
        for await _ in locked { break }
        let sent = Task { try await request() }
        let deadline = ContinuousClock.now + .seconds(60)
        let answered = Atomic(false)
        let watch = Task { _ = try? await sent.value; answered.store(true, ordering: .sequentiallyConsistent) }
        while !answered.load(ordering: .sequentiallyConsistent),
              try await TestDatabase.count(server.database, """
                  SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                  """) == 0 {
            try #require(ContinuousClock.now < deadline, "the \(what) neither answered nor waited for the claim's lock")
            try await Task.sleep(for: .milliseconds(20))
        }
        proceedSignal.yield()
        _ = await watch.value
        await #expect(throws: Never.self, "the claim failed") { try await claim.value }
        return try await sent.value
    }

    @Test("a claim passes over jobs other claims hold: with the 64 oldest locked it takes the 65th, and the oldest once they are free")
    func claimPastHeldJobs() async throws {
        try await withTestServer { server in
            _ = try await Self.queueBuilds(server, "crowd", count: 66)
            let queued = try await Self.strings(server.database, "SELECT build_id FROM build_jobs WHERE status = 'queued' ORDER BY seq")
            try #require(queued.count == 66)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            func claim() async throws -> String? {
                let answer = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                      json: #"{"name":"w1","platforms":["linux/amd64"],"waitSeconds":0}"#)
                return answer.status == .ok ? try answer.decoded(Schemas.JobAssignment.self).buildId : nil
            }
            // Another transaction (as claims in flight do) holds the 64 oldest jobs.
            let (locked, lockedSignal) = AsyncStream<Void>.makeStream()
            let (release, releaseSignal) = AsyncStream<Void>.makeStream()
            let holder = Task {
                try await ServerRunner.withDatabase(server.database, logger: TestDatabase.logger, waitLimit: TestDatabase.setupWaitLimit) { client in
                    try await client.transaction(logger: TestDatabase.logger) { tx in
                        let rows = try await tx.query(
                            "SELECT id FROM build_jobs WHERE status = 'queued' ORDER BY seq LIMIT 64 FOR UPDATE", logger: TestDatabase.logger)
                        var held = 0
                        for try await _ in rows.decode(String.self) { held += 1 }
                        #expect(held == 64)
                        lockedSignal.yield()
                        for await _ in release { break }
                    }
                }
            }
            for await _ in locked { break }
            #expect(try await claim() == queued[64], "the claim did not take the oldest job nobody holds")
            releaseSignal.yield()
            try await holder.value
            #expect(try await claim() == queued[0], "the claim did not take the oldest job once it was free")
        }
    }

    @Test("a claim starts its job: the build runs, its log names the worker and the job's platform once, the build token works at once; on a plan without overage too")
    func claimStartsJob() async throws {
        try await withTestServer(plan: .developer) { server in
            let project = try await server.createProject("two")
            let context = try await server.uploadZeroContext(project)
            let build = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                 json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64","linux/arm64"]}"#)
                .decoded(Schemas.Build.self)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            // Each job's build token is its own and works at once: a heartbeat right after the
            // claim (as a worker sends it, within the short first lease).
            func claim(_ platform: String) async throws -> Schemas.JobAssignment? {
                let answer = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                      json: #"{"name":"w1","platforms":["\#(platform)"],"waitSeconds":0}"#)
                guard answer.status == .ok else { return nil }
                let job = try answer.decoded(Schemas.JobAssignment.self)
                let beat = try await server.request(.post, "/api/v1/jobs/\(job.jobId)/heartbeat", token: job.buildToken, json: "{}")
                #expect(beat.status == .ok, "\(beat.text)")
                return job
            }
            let arm = try #require(try await claim("linux/arm64"))
            #expect(arm.buildId == build.id && arm.platform == "linux/arm64")
            let amd = try #require(try await claim("linux/amd64"))
            #expect(amd.buildId == build.id && amd.platform == "linux/amd64" && amd.buildToken != arm.buildToken)
            #expect(try await claim("linux/amd64") == nil, "a third claim found a job in a two-platform build")
            let running = try await server.request(.get, "/api/v1/builds/\(build.id)", token: server.ownerToken).decoded(Schemas.Build.self)
            #expect(running.status == .running)
            let log = try await server.request(.get, "/api/v1/builds/\(build.id)/logs", token: server.ownerToken).text
            let pickups = log.split(separator: "\n").filter { $0.contains("picked up by worker w1") }
            #expect(pickups.count == 1, "\(log)")
            #expect(pickups.first?.contains(#""platform":"linux/arm64""#) == true, "\(log)")
            #expect(pickups.first?.contains(#""offset":"#) == true && !log.contains("-4611686018427387904") && !log.contains("@claimed-job-platform@"),
                    "\(log)")
            let names = try await Self.strings(server.database, "SELECT name FROM tokens WHERE kind = 'build' ORDER BY name")
            #expect(Set(names) == ["build \(build.id) job \(arm.jobId)", "build \(build.id) job \(amd.jobId)"])
        }
    }

    @Test("the two jobs of a build finishing at the same moment close it: twenty two-platform builds, both jobs finished at once (succeeded, or canceled as workers do after a cancel), none left running")
    func siblingsFinishingTogether() async throws {
        // A multi-platform build closes when its last job finishes; two finishes at once must not
        // each see the other's job as still running. Measured before the fix: 12 of 20 left
        // running. Canceled ones stayed so for ever; succeeded ones waited for the lease reaper's
        // sweep of unassembled indexes (turned off here, so the finish itself must close them).
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let (_, builds) = try await Self.queuePairs(server, "pair", count: 20)
            let jobs = Dictionary(grouping: try await Self.claimJobs(server, count: 40), by: \.buildId)
            try #require(jobs.count == 20 && jobs.values.allSatisfy { $0.count == 2 })
            let digest = "sha256:" + String(repeating: "ab", count: 32)
            for (n, build) in builds.enumerated() {
                let pair = try #require(jobs[build])
                let result = n % 2 == 0 ? #"{"status":"succeeded","digest":"\#(digest)"}"# : #"{"status":"canceled","error":"canceled"}"#
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for job in pair {
                        group.addTask {
                            let finished = try await server.requestOwn(.post, "/api/v1/jobs/\(job.jobId)/finish", token: job.buildToken,
                                                                       json: result)
                            #expect(finished.status == .noContent, "\(finished.text)")
                        }
                    }
                    try await group.waitForAll()
                }
            }
            // The last finish of each build closed it, or assembled its index before answering
            // (which fails here: the digests name no image), so every build has its final status now.
            let open = try await Self.strings(server.database, "SELECT id FROM builds WHERE status IN ('queued', 'running') ORDER BY id")
            #expect(open.isEmpty, "\(open.count) of 20 builds left open after both their jobs finished: \(open)")
        }
    }

    @Test("a multi-platform build's index is assembled by one server at a time: the reaper's sweep passes over a build whose assembly another holds, and takes over once that hold is stale")
    func oneAssemblyAtATime() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let build = try #require(try await Self.queuePairs(server, "assembled", count: 1).builds.first)
            _ = try await Self.claimJobs(server, count: 2)
            // Both jobs succeeded, as a server that stopped before assembling the index leaves them.
            try await TestDatabase.execute(server.database, """
                UPDATE build_jobs SET status = 'succeeded', digest = 'sha256:' || repeat('ab', 32), finished_at = now() WHERE build_id = \(build)
                """)
            @Sendable func state() async throws -> [String] {
                try await Self.strings(server.database, "SELECT status || ' ' || coalesce(error, '') FROM builds WHERE id = \(build)")
            }
            try await Self.withStores(server) { store, _, db in
                let assembler = IndexAssembler(builds: store, registry: RegistryStore(client: db, logger: TestDatabase.logger), logger: TestDatabase.logger)
                #expect(try await store.awaitingIndex() == [build])
                // One server takes the assembly; a second (a sweep on this or another replica) does not.
                #expect(try await store.claimAssembly(buildId: build))
                #expect(try await store.claimAssembly(buildId: build) == false)
                #expect(try await store.awaitingIndex().isEmpty, "the sweep would assemble the index beside the assembly that holds it")
                await assembler.assemble(buildId: build)
                #expect(try await state() == ["running "], "an assembler ran beside the one holding the build")
                // The holder stopped without renewing: the sweep finds the build again and its
                // assembly closes it (failed here: the digests name no image in the registry).
                try await TestDatabase.execute(server.database, "UPDATE builds SET index_claimed_at = now() - interval '10 minutes' WHERE id = \(build)")
                #expect(try await store.awaitingIndex() == [build])
                await assembler.assemble(buildId: build)
                let closed = try await state()
                #expect(closed.first?.hasPrefix("failed ") == true && closed.first?.contains("is not in the project registry") == true, "\(closed)")
            }
        }
    }

    @Test("builds an earlier version left open after all their jobs ended are closed by the reaper's repair, as their jobs say; open jobs and unassembled indexes are left alone")
    func repairEndedBuilds() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let (_, builds) = try await Self.queuePairs(server, "left-open", count: 4)
            _ = try await Self.claimJobs(server, count: 8)
            // As the race before the build lock left them: both jobs ended, the build still running.
            // 0: both canceled; 1: one failed, one succeeded; 2: one still running; 3: both succeeded.
            try await TestDatabase.execute(server.database, """
                UPDATE build_jobs SET status = 'canceled', error = 'canceled', finished_at = now() WHERE build_id = \(builds[0])
                """)
            try await TestDatabase.execute(server.database, """
                UPDATE build_jobs SET status = CASE WHEN platform = 'linux/amd64' THEN 'failed' ELSE 'succeeded' END,
                       error = CASE WHEN platform = 'linux/amd64' THEN 'RUN exited 1' END, digest = 'sha256:' || repeat('ab', 32),
                       finished_at = now() WHERE build_id = \(builds[1])
                """)
            try await TestDatabase.execute(server.database, """
                UPDATE build_jobs SET status = 'succeeded', digest = 'sha256:' || repeat('ab', 32), finished_at = now()
                WHERE build_id = \(builds[2]) AND platform = 'linux/amd64'
                """)
            try await TestDatabase.execute(server.database, """
                UPDATE build_jobs SET status = 'succeeded', digest = 'sha256:' || repeat('ab', 32), finished_at = now() WHERE build_id = \(builds[3])
                """)
            let closed = try await Self.withStores(server) { store, _, _ in try await store.closeEnded() }
            #expect(closed == 2)
            var states: [String] = []
            for build in builds {
                states += try await Self.strings(server.database, "SELECT status || ' ' || coalesce(error, '') FROM builds WHERE id = \(build)")
            }
            #expect(states == ["canceled linux/amd64: canceled", "failed linux/amd64: RUN exited 1", "running ", "running "], "\(states)")
            // The closed build's log ends with its status, as one closed by its last job does.
            let log = try await server.request(.get, "/api/v1/builds/\(builds[0])/logs", token: server.ownerToken).text
            #expect(log.split(separator: "\n").last?.contains(#""status":"canceled""#) == true, "\(log)")
        }
    }

    @Test("past a cap, the two jobs of a build refused by two claims at once close it: twenty two-platform builds, an amd64 and an arm64 worker claiming together, none left queued")
    func siblingsRefusedTogether() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let caps = "/api/v1/orgs/\(server.organizationId)/usage/caps"
            #expect(try await server.request(.put, caps, token: server.ownerToken, json: #"{"minutesPerMonth":10}"#).status == .ok)
            let (project, _) = try await Self.queuePairs(server, "refused-pairs", count: 20)
            // The cap is reached while they wait.
            let now = Int64(Date().timeIntervalSince1970)
            try await TestDatabase.execute(server.database, """
                INSERT INTO usage_builds (job_id, organization_id, project_id, platform, start_epoch, seconds)
                VALUES ('usedcccccccccccc', \(server.organizationId), \(project), 'linux/amd64', \(now - 1000), 600)
                """)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            // Each claim fails the jobs of its platform one transaction at a time, oldest first:
            // the two walk the same builds side by side.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for platform in ["linux/amd64", "linux/arm64"] {
                    group.addTask {
                        let claim = try await server.requestOwn(.post, "/api/v1/workers/claim", token: worker,
                                                                json: #"{"name":"\#(platform)","platforms":["\#(platform)"],"waitSeconds":0}"#)
                        #expect(claim.status == .noContent, "\(claim.text)")
                    }
                }
                try await group.waitForAll()
            }
            // Each job was refused, or canceled by its sibling's refusal (the build had failed).
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM build_jobs WHERE status NOT IN ('failed', 'canceled')") == 0)
            #expect(try await TestDatabase.count(server.database, """
                SELECT count(*)::int FROM builds b WHERE NOT EXISTS (SELECT 1 FROM build_jobs j WHERE j.build_id = b.id AND j.status = 'failed')
                """) == 0)
            let open = try await Self.strings(server.database, "SELECT id FROM builds WHERE status <> 'failed' ORDER BY id")
            #expect(open.isEmpty, "\(open.count) of 20 builds not failed after both their jobs were refused: \(open)")
        }
    }

    @Test("a cancel while a claim holds the build's job does not deadlock with it: the claim starts the job and the build runs with the cancel requested, for its worker to see")
    func cancelDuringClaim() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let project = try await Self.queueBuilds(server, "cancel-claim", count: 1)
            let build = try #require(try await Self.strings(server.database, "SELECT id FROM builds WHERE project_id = \(project)").first)
            // Before, the cancel held the build while it waited for the job, and the claim waited
            // for the build: PostgreSQL broke the deadlock after a second by failing one of them
            // (the cancel, answered 500).
            let answer = try await Self.duringClaim(of: build, server, what: "cancel") {
                try await server.requestOwn(.post, "/api/v1/builds/\(build)/cancel", token: server.ownerToken)
            }
            #expect(answer.status == .ok, "\(answer.text)")
            let state = try await Self.strings(server.database, "SELECT status || ' ' || cancel_requested FROM builds WHERE id = \(build)")
            #expect(state == ["running true"], "the running build should wait for its worker to see the cancel: \(state)")
        }
    }

    @Test("a job that fails while a claim holds its build's other job does not deadlock with that claim: the other job starts canceled-to-be and the build fails once it ends; a job failed by the lease reaper cancels its queued sibling too")
    func failingJobDuringSiblingClaim() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let (_, builds) = try await Self.queuePairs(server, "fail-claim", count: 2)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            var amd: [String: Schemas.JobAssignment] = [:]
            for n in 0..<2 {
                let claim = try await server.requestOwn(.post, "/api/v1/workers/claim", token: worker,
                                                        json: #"{"name":"w\#(n)","platforms":["linux/amd64"],"waitSeconds":0}"#)
                try #require(claim.status == .ok, "\(claim.text)")
                let job = try claim.decoded(Schemas.JobAssignment.self)
                amd[job.buildId] = job
            }
            let first = try #require(amd[builds[0]])
            let answer = try await Self.duringClaim(of: builds[0], server, what: "finish") {
                try await server.requestOwn(.post, "/api/v1/jobs/\(first.jobId)/finish", token: first.buildToken,
                                            json: #"{"status":"failed","error":"RUN exited 1"}"#)
            }
            #expect(answer.status == .noContent, "\(answer.text)")
            let state = try await Self.strings(server.database, "SELECT status || ' ' || cancel_requested FROM builds WHERE id = \(builds[0])")
            #expect(state == ["running true"], "the arm64 job's worker should hear of the cancel at its first heartbeat: \(state)")

            // The second build's amd64 worker vanished: the reaper fails its job, which cancels the
            // queued arm64 job as a failure reported by a worker does, and the build fails.
            try await TestDatabase.execute(server.database, """
                UPDATE build_jobs SET lease_expires_at = now() - interval '1 minute', confirmed_at = now()
                WHERE build_id = \(builds[1]) AND status = 'running'
                """)
            let reaped = try await Self.withStores(server) { _, queue, _ in try await queue.expireLeases() }
            #expect(reaped == 1)
            let jobs = try await Self.strings(server.database, "SELECT platform || ' ' || status FROM build_jobs WHERE build_id = \(builds[1]) ORDER BY platform")
            #expect(jobs == ["linux/amd64 failed", "linux/arm64 canceled"], "\(jobs)")
            let second = try await Self.strings(server.database, "SELECT status FROM builds WHERE id = \(builds[1])")
            #expect(second == ["failed"], "\(second)")
        }
    }

    @Test("fifty workers claiming at once for forty queued jobs: forty get one each, none twice, ten get none; every job is running with its own token")
    func burstOfClaims() async throws {
        // No lease reaping while it runs: on a loaded machine (a CI run took 83 s for this test) the
        // 5-second first lease of a just-claimed job lapsed before its heartbeat and the counts.
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            _ = try await Self.queueBuilds(server, "burst", count: 40)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            let answers = try await withThrowingTaskGroup(of: Schemas.JobAssignment?.self) { group in
                for n in 0..<50 {
                    group.addTask {
                        let answer = try await server.requestOwn(.post, "/api/v1/workers/claim", token: worker,
                                                                 json: #"{"name":"w\#(n)","platforms":["linux/amd64"],"waitSeconds":0}"#)
                        #expect(answer.status == .ok || answer.status == .noContent, "\(answer.text)")
                        guard answer.status == .ok else { return nil }
                        // A heartbeat at once, as a worker sends it: past the short first lease (5 s,
                        // which a loaded machine can outlast before the counts below) the job stays running.
                        let job = try answer.decoded(Schemas.JobAssignment.self)
                        let beat = try await server.requestOwn(.post, "/api/v1/jobs/\(job.jobId)/heartbeat", token: job.buildToken, json: "{}")
                        #expect(beat.status == .ok, "\(beat.text)")
                        return job
                    }
                }
                return try await group.reduce(into: [Schemas.JobAssignment?]()) { $0.append($1) }
            }
            let jobs = answers.compactMap { $0 }
            #expect(jobs.count == 40)
            #expect(Set(jobs.map(\.jobId)).count == 40 && Set(jobs.map(\.buildToken)).count == 40)
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM build_jobs WHERE status = 'running'") == 40)
            #expect(try await TestDatabase.count(server.database, "SELECT count(DISTINCT worker_name)::int FROM build_jobs") == 40)
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM builds WHERE status = 'running'") == 40)
            // /metrics counts claim transactions and the claims they answered (this process's
            // servers together): fifty claims at once took fewer transactions than claims.
            let metrics = try await server.request(.get, "/metrics").text
            func counter(_ name: String) -> Double {
                metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
            #expect(counter("drydock_claims_in_batches_total") >= 50, "\(metrics)")
            #expect(counter("drydock_claim_batches_total") >= 1)
            #expect(counter("drydock_claim_batches_total") < counter("drydock_claims_in_batches_total"))
        }
    }

    @Test("a server keeps its minimum of database connections open before any request (8, and the 4 of heartbeats' pool), so a burst of claims after a quiet spell does not wait for connections to open; 0 opens them on demand")
    func warmConnections() async throws {
        let others = "SELECT count(*)::int FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        try await withTestServer(configure: { $0.databaseMinConnections = 8 }) { server in
            var open = 0
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                open = try await TestDatabase.count(server.database, PostgresQuery(unsafeSQL: others))
                if open >= 12 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(open >= 12 && open <= 24, "connections open with no request made: \(open)")
        }
        try await withTestServer { server in
            // The same server with 0: after startup's own statements, a few at most.
            let open = try await TestDatabase.count(server.database, PostgresQuery(unsafeSQL: others))
            #expect(open < 12, "connections open on demand only: \(open)")
        }
    }

    @Test("the reaper's sweep for jobs no builder serves costs the same whatever the organization's history: 150 queued jobs, and 4,000 revoked build tokens of earlier jobs add no blocks to read")
    func unservedSweepIgnoresHistory() async throws {
        try await withTestServer { server in
            let project = try await Self.queueBuilds(server, "sweep", count: 150)
            // A worker of the organization online for linux/amd64: every queued job is served.
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            let claimed = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                   json: #"{"name":"w1","platforms":["linux/amd64"],"waitSeconds":0}"#)
            try #require(claimed.status == .ok, "\(claimed.text)")
            let logger = TestDatabase.logger
            // The blocks the sweep's statement reads, as PostgreSQL counts them (EXPLAIN of the
            // statement the sweep just prepared, on the same connection).
            func blocksRead() async throws -> Int {
                try await ServerRunner.withDatabase(server.database, logger: logger, waitLimit: TestDatabase.setupWaitLimit, connections: 1) { db in
                    let keys = ServerKeys(dataDirectory: nil)
                    try await keys.load(from: db, logger: logger)
                    let queue = JobQueue(client: db, logger: logger, secretBox: BuildSecretBox(keys: keys), lease: .seconds(60))
                    #expect(try await queue.unservedJobs().isEmpty, "every queued job has an online builder")
                    let name = try #require(PreparedTexts.shared.entry(for: JobQueue.UnservedJobs.self)?.name)
                    var plan = ""
                    for try await text in try await db.query(PostgresQuery(unsafeSQL:
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE \"\(name)\"(\(JobQueue.onlineWindowSeconds), \(AgentStore.onlineWindowSeconds))"),
                        logger: logger).decode(String.self) { plan += text }
                    let json = try #require(try JSONSerialization.jsonObject(with: Data(plan.utf8)) as? [[String: Any]])
                    let top = try #require(json.first?["Plan"] as? [String: Any], "\(plan)")
                    return (top["Shared Hit Blocks"] as? Int ?? 0) + (top["Shared Read Blocks"] as? Int ?? 0)
                }
            }
            let before = try await blocksRead()
            let organization = try #require(try await Self.strings(server.database,
                "SELECT organization_id FROM projects WHERE id = \(project)").first)
            try await TestDatabase.execute(server.database, """
                INSERT INTO tokens (id, organization_id, kind, name, secret_hash, prefix, revoked_at)
                SELECT 'old' || i, \(organization), 'build', 'build of an earlier job', sha256(('old' || i)::bytea), 'ddb_old', now()
                FROM generate_series(1, 4000) i
                """)
            try await TestDatabase.execute(server.database, "ANALYZE tokens")
            let after = try await blocksRead()
            // Checked per job through each builder's token, the sweep read the organization's
            // tokens for every queued job: about 150 x 40 more blocks here.
            #expect(after <= max(2 * before, before + 500), "blocks read: \(before) with no earlier tokens, \(after) with 4,000")
        }
    }

    @Test("waiting builds are told why in one transaction: one numbered line per waiting job (two for a two-platform build), none for a build a claim or cancel holds, which is told at the next sweep")
    func tellWaitingTogether() async throws {
        // The reaper sleeps for an hour first: only this test tells.
        try await withTestServer(configure: { $0.leaseCheckInterval = .seconds(3600) }) { server in
            let project = try await Self.queueBuilds(server, "tell", count: 120)
            let pairs = try await Self.queuePairs(server, "tell-pairs", count: 2)
            let logger = TestDatabase.logger
            try await ServerRunner.withDatabase(server.database, logger: logger, waitLimit: TestDatabase.setupWaitLimit, connections: 3) { db in
                let keys = ServerKeys(dataDirectory: nil)
                try await keys.load(from: db, logger: logger)
                let queue = JobQueue(client: db, logger: logger, secretBox: BuildSecretBox(keys: keys), lease: .seconds(60))
                // No builder is online: every job waits (120 + 2 x 2).
                let waiting = try await queue.unservedJobs()
                try #require(waiting.count == 124, "\(waiting.count) waiting")
                let held = pairs.builds[0]
                // A claim or cancel holds one two-platform build while the sweep tells.
                let told = try await db.transaction(logger: logger) { tx -> Set<String> in
                    for try await _ in try await tx.query("SELECT id FROM builds WHERE id = \(held) FOR UPDATE", logger: logger).decode(String.self) {}
                    return try await queue.tellWaiting(waiting.map { ($0, Duration.seconds(600)) })
                }
                let heldJobs = Set(waiting.filter { $0.buildId == held }.map(\.id))
                #expect(heldJobs.count == 2)
                #expect(told == Set(waiting.map(\.id)).subtracting(heldJobs), "\(told.count) told")
                // Every told build's log: its lines numbered in order, each entry's offset its position.
                func lines(_ build: String) async throws -> [(position: Int64, offset: Int64, line: String)] {
                    var out: [(Int64, Int64, String)] = []
                    for try await (position, entry) in try await db.query(
                        "SELECT position, entry FROM build_log WHERE build_id = \(build) ORDER BY position", logger: logger).decode((Int64, String).self) {
                        let object = try #require(try JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any])
                        out.append((position, (object["offset"] as? NSNumber)?.int64Value ?? -1, object["line"] as? String ?? ""))
                    }
                    return out
                }
                let builds = try await Self.strings(server.database, "SELECT id FROM builds WHERE project_id = \(project)")
                #expect(builds.count == 120)
                for build in builds + [pairs.builds[1]] {
                    let log = try await lines(build)
                    #expect(log.map(\.position) == Array((log.first?.position ?? 0)..<((log.first?.position ?? 0) + Int64(log.count))), "\(build): positions \(log.map(\.position))")
                    #expect(log.allSatisfy { $0.offset == $0.position }, "\(build): \(log)")
                    let said = log.filter { $0.line.hasPrefix("#drydock waiting: no online builder serves") }
                    #expect(said.count == (build == pairs.builds[1] ? 2 : 1), "\(build): \(said)")
                    #expect(said.allSatisfy { $0.line.hasSuffix("the build fails if none comes within 9 min") || $0.line.hasSuffix("within 10 min") }, "\(said)")
                }
                #expect(try await lines(held).allSatisfy { !$0.line.contains("no online builder") }, "the held build was told while locked")
                // Released, it is told at the next sweep.
                let again = try await queue.tellWaiting(waiting.filter { $0.buildId == held }.map { ($0, Duration.seconds(600)) })
                #expect(again == heldJobs)
                #expect(try await lines(held).filter { $0.line.contains("no online builder serves") }.count == 2)
            }
        }
    }

    @Test("signals raised in a transaction leave after it commits, batched; a rolled-back transaction's never leave")
    func signalsAfterCommit() async throws {
        try await withTestServer { server in
            try await ServerRunner.withDatabase(server.database, logger: TestDatabase.logger) { plain in
                let database = Database(client: plain.client, batchesSignals: true)
                let heard = Mutex<[String]>([])
                let listener = Task {
                    try await plain.client.withConnection { connection in
                        try await connection.listen(on: BuildSignals.channel) { notifications in
                            for try await notification in notifications where notification.payload.hasPrefix("test:") {
                                heard.withLock { $0.append(notification.payload) }
                                if notification.payload == "test:last" { return }
                            }
                        }
                    }
                }
                // LISTEN is in place once a signal sent now is heard.
                let started = ContinuousClock.now
                while heard.withLock({ $0.isEmpty }), ContinuousClock.now - started < .seconds(20) {
                    try await plain.query("SELECT pg_notify(\(BuildSignals.channel), 'test:ready')", logger: TestDatabase.logger)
                    try await Task.sleep(for: .milliseconds(50))
                }
                struct Rollback: Error {}
                await #expect(throws: Rollback.self) {
                    try await database.transaction(logger: TestDatabase.logger) { tx in
                        try await BuildSignals.notify("test:rolled-back", on: tx, logger: TestDatabase.logger)
                        throw Rollback()
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 0..<20 {
                        group.addTask {
                            try await database.transaction(logger: TestDatabase.logger) { tx in
                                try await BuildSignals.notify("test:\(n % 5)", on: tx, logger: TestDatabase.logger)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                try await database.transaction(logger: TestDatabase.logger) { tx in
                    try await BuildSignals.notify("test:last", on: tx, logger: TestDatabase.logger)
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await listener.value }
                    group.addTask {
                        try await Task.sleep(for: .seconds(20))
                        listener.cancel()
                    }
                    try await group.next()
                    group.cancelAll()
                }
                let got = heard.withLock { $0 }.filter { $0 != "test:ready" }
                #expect(Set(got) == ["test:0", "test:1", "test:2", "test:3", "test:4", "test:last"], "\(got)")
                // Each key at most once per batch: at most 20 for 20 raises, usually far fewer.
                #expect(got.count <= 21)
            }
        }
    }
}
