import DrydockBuildContext
import DrydockClient
import DrydockProcess
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A builder worker: claims jobs of its platforms from the server (long-poll), runs each with
/// buildah against the project's own persistent cache, streams log lines and step events, pushes
/// the image into the project's registry and reports the result. It talks to the server only
/// through `DrydockClient`: the worker token to claim, each job's build token for the rest.
///
/// It runs as a `Service`: on graceful shutdown (the first SIGTERM or SIGINT) it stops asking for
/// jobs, finishes the ones in hand, reports them and returns; `stopNow()` (the second signal)
/// kills what is running.
public final class Builder: Service, Sendable {
    /// As configured; a builder started by an agent takes its token, platform and concurrency
    /// from its registration.
    public var configuration: BuilderConfiguration { configurationState.withLock { $0 } }
    private let configurationState: Mutex<BuilderConfiguration>
    let logger: Logger
    var workerClient: DrydockClient { clientState.withLock { $0 } }
    private let clientState: Mutex<DrydockClient>
    /// Set when the agent that started this builder died: running jobs are stopped and failed.
    private let orphaned = Mutex(false)
    /// Jobs running now and when the last one ended, for the idle exit.
    private let activity = Mutex<(busy: Int, last: ContinuousClock.Instant)>((0, .now))
    /// Cache roots in use: one job at a time per project and platform in this worker.
    private let busyRoots = Mutex<Set<String>>([])
    /// The jobs running now, so a hard stop can reach their processes.
    private let running = Mutex<[String: JobRun.Control]>([:])
    /// The emulated platforms that passed the start-up check.
    private let emulatedState = Mutex<[Platform]>([])
    var emulated: [Platform] {
        get { emulatedState.withLock { $0 } }
        set { emulatedState.withLock { $0 = newValue } }
    }

    public init(configuration: BuilderConfiguration, logger: Logger) {
        self.configurationState = Mutex(configuration)
        self.logger = logger
        self.clientState = Mutex(DrydockClient(baseURL: configuration.apiURL, token: configuration.workerToken, timeout: .seconds(90)))
    }

    /// Trades the agent's one-time secret for a worker token of one project and platform; retried
    /// while the server cannot be reached. Returns false when shut down meanwhile.
    func register(secret: String) async throws -> Bool {
        let client = DrydockClient(baseURL: configuration.apiURL, token: secret, timeout: .seconds(10))
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let registered = try await cancelWhenGracefulShutdown { try await client.registerBuilder(name: self.configuration.name) }
                guard let platform = Platform(registered.platform) else {
                    throw BuilderError.configuration("the server registered this builder for '\(registered.platform)', which it does not know")
                }
                configurationState.withLock {
                    $0.workerToken = registered.workerToken
                    $0.platforms = registered.emulated == true ? [] : [platform]
                    $0.emulated = registered.emulated == true ? [platform] : []
                    $0.concurrency = max(1, registered.buildsPerBuilder)
                    $0.idleSeconds = $0.idleSeconds ?? registered.idleSeconds
                }
                clientState.withLock { $0 = DrydockClient(baseURL: configuration.apiURL, token: registered.workerToken, timeout: .seconds(90)) }
                logger.info("registered", metadata: ["builder": "\(registered.builderId)", "project": "\(registered.projectId)",
                                                     "platform": "\(registered.platform)"])
                return true
            } catch let error as DrydockClientError where error.status == 401 || error.status == 403 {
                throw BuilderError.configuration("the server refused this builder's registration secret (it works once, for an hour): \(error)")
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return false }
                failures += 1
                let delay = min(10, 1 << min(failures, 4))
                logger.error("cannot register with the server; retrying", metadata: ["error": "\(error)", "in": "\(delay)s"])
                try? await Task.sleep(for: .seconds(delay))
            }
        }
        return false
    }

    /// A builder whose agent died stops too: its running builds are killed (their jobs fail or
    /// go back to the queue within their lease) and it exits.
    func watchParent(_ parent: Int32) async {
        while !Task.isCancelled {
            if getppid() != parent {
                logger.warning("the agent that started this builder is gone; stopping now")
                orphaned.withLock { $0 = true }
                await stopNow()
                // The jobs in hand log why they stopped (a few seconds at most), then it exits.
                let deadline = ContinuousClock.now + .seconds(5)
                while !running.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(100))
                }
                Foundation.exit(3)
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Seconds left before an idle builder exits (nil: it never does).
    func idleLeft() -> Duration? {
        guard let idle = configuration.idleSeconds else { return nil }
        return activity.withLock { state in
            state.busy > 0 ? .seconds(idle) : .seconds(idle) - (ContinuousClock.now - state.last)
        }
    }

    /// Serves jobs until graceful shutdown (then finishes the jobs in hand) or cancellation.
    public func run() async throws {
        try FileManager.default.createDirectory(at: configuration.cacheDirectory, withIntermediateDirectories: true)
        let parentWatch = configuration.parentPid.map { parent in Task { await watchParent(parent) } }
        defer { parentWatch?.cancel() }
        await recoverAbandonedJobs()
        if let secret = configuration.registrationSecret {
            guard try await register(secret: secret) else { return }
        }
        guard try await waitForServer() else { return }
        emulated = Emulation.usable(configuration.emulated, logger: logger)
        guard !configuration.platforms.isEmpty || !emulated.isEmpty else {
            throw BuilderError.configuration("no platform to serve: none native (DRYDOCK_BUILDER_PLATFORMS=none) and no emulated one passed its check")
        }
        logger.info("builder ready", metadata: [
            "server": "\(configuration.apiURL.absoluteString)", "platforms": "\(configuration.platforms.map(\.description).joined(separator: ","))",
            "emulated": "\(emulated.isEmpty ? "-" : emulated.map(\.description).joined(separator: ","))",
            "cache": "\(configuration.cacheDirectory.path)", "concurrency": "\(configuration.concurrency)",
            "isolation": "\(configuration.isolation.rawValue)", "idle-exit": "\(configuration.idleSeconds.map { "\($0)s" } ?? "never")",
        ])
        activity.withLock { $0.last = .now }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for slot in 0..<configuration.concurrency {
                group.addTask { try await self.serve(slot: slot) }
            }
            try await group.waitForAll()
        }
        logger.info("builder stopped")
    }

    /// Checks the server and the worker token before saying "ready": a wrong address is retried
    /// (and said, with the reason), a refused token ends the builder with the reason. Returns false
    /// when shut down while waiting.
    func waitForServer() async throws -> Bool {
        var failures = 0
        // A short deadline: the HTTP client keeps retrying a refused connection until it passes.
        let probe = DrydockClient(baseURL: configuration.apiURL, token: configuration.workerToken, timeout: .seconds(5))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                _ = try await cancelWhenGracefulShutdown { try await probe.whoami() }
                return true
            } catch let error as DrydockClientError where error.status == 403 {
                return true  // a server-wide worker token: valid, and of no organization
            } catch let error as DrydockClientError where error.status == 401 {
                throw BuilderError.configuration(
                    "the server at \(configuration.apiURL.absoluteString) refused the worker token (revoked, expired or mistyped): \(error). "
                        + "Mint another with 'drydock tokens create --kind worker --name NAME' or 'drydock-server worker-token --name NAME'")
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return false }
                failures += 1
                let delay = min(30, 1 << min(failures, 5))
                logger.error("not ready: cannot use the server; retrying", metadata: ["error": "\(error)", "in": "\(delay)s"])
                try? await Task.sleep(for: .seconds(delay))
            }
        }
        return false
    }

    /// A hard stop: kills the build processes of every running job (the server fails those jobs
    /// when their leases expire; a restarted builder cleans up what they left).
    public func stopNow() async {
        let controls = running.withLock { Array($0.values) }
        for control in controls {
            let process = control.state.withLock { state -> ProcessHandle? in
                state.canceled = true
                return state.process
            }
            if let process { await process.terminate(grace: .milliseconds(500)) }
        }
        if configuration.isolation == .oci {
            await RuncContainers.remove(under: configuration.cacheDirectory.appendingPathComponent(".jobs").path,
                                        environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"])
        }
    }

    func serve(slot: Int) async throws {
        var failures = 0
        var refusals = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let job: Components.Schemas.JobAssignment?
            var wait = 25
            if let left = idleLeft() {
                guard left > .zero else {
                    logger.info("no job for \(configuration.idleSeconds ?? 0) s: exiting", metadata: ["slot": "\(slot)"])
                    return
                }
                wait = Int(min(max(left.components.seconds, 1), 25))
            }
            do {
                // Only the wait for a job ends at shutdown; a job in hand runs to its end. (A claim
                // answered just as it was abandoned is handed back: the server requeues claims
                // that are not confirmed by a first heartbeat.)
                let wait = wait
                job = try await cancelWhenGracefulShutdown {
                    try await self.workerClient.claimJob(name: self.configuration.name, platforms: self.configuration.platforms,
                                                         emulated: self.emulated, waitSeconds: wait)
                }
                failures = 0
                refusals = 0
            } catch let error as DrydockClientError where error.status == 401 || error.status == 403 {
                // Said at once; given up only when it stays so (a server restarting answers again soon).
                refusals += 1
                guard refusals >= 3 else {
                    logger.error("the server refused the worker token; checking again", metadata: ["error": "\(error)", "in": "5s"])
                    try? await Task.sleep(for: .seconds(5))
                    continue
                }
                throw BuilderError.configuration(
                    "the server at \(configuration.apiURL.absoluteString) refused the worker token (revoked, expired or mistyped): \(error)")
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                failures += 1
                let delay = min(30, 1 << min(failures, 5))
                logger.warning("cannot get jobs; retrying", metadata: ["error": "\(error)", "in": "\(delay)s"])
                try? await Task.sleep(for: .seconds(delay))
                continue
            }
            guard let job else { continue }
            activity.withLock { $0.busy += 1 }
            await runJob(job)
            activity.withLock {
                $0.busy -= 1
                $0.last = .now
            }
        }
    }

    /// Runs one job to its end, always reporting a result.
    public func runJob(_ job: Components.Schemas.JobAssignment) async {
        let log = logger.with(["build": "\(job.buildId)", "job": "\(job.jobId)", "project": "\(job.projectId)"])
        log.info("job started", metadata: ["platform": "\(job.platform)"])
        let client = DrydockClient(baseURL: configuration.apiURL, token: job.buildToken, timeout: .seconds(120))
        let reporter = EventReporter(client: client, jobId: job.jobId, logger: log)
        let isolated = job.isolated == true
        // An isolated build (untrusted code) gets an empty storage of its own, deleted after it:
        // it neither reads nor writes the project's cache.
        let root = isolated
            ? configuration.cacheDirectory.appendingPathComponent(".isolated").appendingPathComponent(job.jobId)
            : cacheRoot(projectId: job.projectId, platform: job.platform)
        let run = JobRun(job: job, client: client, reporter: reporter, root: root, configuration: configuration, logger: log)
        running.withLock { $0[job.jobId] = run.control }
        defer { _ = running.withLock { $0.removeValue(forKey: job.jobId) } }
        // The lease from the claim on: the first heartbeat confirms the claim at once, even when
        // the job must wait below for another one of its cache (else the server would take it
        // back after the first lease and give it to someone else while it waits here).
        let lease = Task { await run.keepLease(run.control) }
        // One job at a time per cache, except in a builder of one cache that runs several at once.
        let exclusive = !configuration.singleCache && !isolated
        if exclusive, !(await acquire(root.path, giveUp: { run.control.canceled || run.control.lost }, waiting: {
            await reporter.log("#drydock waiting for another build of this project and platform on builder '\(self.configuration.name)' to finish (they share its cache)")
        })) {
            lease.cancel()
            let lost = run.control.lost
            log.info(lost ? "job taken back by the server while it waited for its cache" : "job canceled while it waited for its cache")
            if !lost {
                try? await client.finishJob(jobId: job.jobId, .init(status: .canceled, error: "canceled before it started"))
            }
            await reporter.close()
            return
        }
        defer { if exclusive { release(root.path) } }
        let result = await run.execute(lease: lease)
        if orphaned.withLock({ $0 }), result.status != .succeeded {
            // Not reported: the server queues the job again when its lease runs out (a builder
            // whose agent died is not the build's fault).
            await reporter.log("#drydock the drydock-agent that started builder '\(configuration.name)' stopped; the build stopped with it")
            await reporter.close()
            log.warning("job stopped with the agent; the server queues it again when its lease runs out")
            return
        }
        await reporter.close()
        await report(result, of: job, client: client, log: log)
    }

    /// Reports a job's result, retrying through a server outage (a restart, a network blip) for
    /// up to ten minutes: the server keeps a job whose worker is still working through its own
    /// restart. A 401 after a failed attempt means an earlier attempt was recorded (the build
    /// token ends with its job).
    func report(_ result: Components.Schemas.JobResult, of job: Components.Schemas.JobAssignment, client: DrydockClient, log: Logger) async {
        let deadline = ContinuousClock.now + .seconds(600)
        var attempt = 0
        while true {
            attempt += 1
            do {
                try await client.finishJob(jobId: job.jobId, result)
                log.info("job finished", metadata: ["status": "\(result.status.rawValue)", "digest": "\(result.digest ?? "-")"])
                return
            } catch let error as DrydockClientError where error.status == 401 && attempt > 1 {
                log.info("job finished (the result was recorded by an earlier attempt)", metadata: ["status": "\(result.status.rawValue)"])
                return
            } catch let error as DrydockClientError where error.status.map({ (400..<500).contains($0) }) ?? false {
                log.error("the server did not take the job's result", metadata: ["error": "\(error)"])
                return
            } catch {
                guard ContinuousClock.now < deadline else {
                    log.error("could not report the job's result; giving up after 10 minutes", metadata: ["error": "\(error)"])
                    return
                }
                let delay = min(15, 1 << min(attempt, 4))
                log.warning("cannot reach the server to report the job's result; retrying", metadata: ["error": "\(error)", "in": "\(delay)s"])
                try? await Task.sleep(for: .seconds(delay))
            }
        }
    }

    /// A worker killed mid-job (kill -9, a crash, a reboot) leaves its job directory behind: stop
    /// the build processes it recorded, remove their working containers and the directory (with
    /// any secrets in it). The server has failed those jobs when their leases expired.
    func recoverAbandonedJobs() async {
        let jobs = configuration.cacheDirectory.appendingPathComponent(".jobs")
        guard let entries = try? FileManager.default.contentsOfDirectory(at: jobs, includingPropertiesForKeys: nil) else { return }
        // RUN steps' containers (OCI isolation) outlive the build's process group.
        if !entries.isEmpty {
            await RuncContainers.remove(under: jobs.path, environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"])
        }
        for entry in entries {
            if let text = try? String(contentsOf: entry.appendingPathComponent("pgid"), encoding: .utf8),
               let pgid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pgid > 1,
               // Only if that process is still the build's (pids are reused after a reboot).
               let cmdline = FileManager.default.contents(atPath: "/proc/\(pgid)/cmdline"),
               String(decoding: cmdline, as: UTF8.self).contains(configuration.buildah) {
                kill(-pgid, SIGKILL)
            }
            if let root = try? String(contentsOf: entry.appendingPathComponent("root"), encoding: .utf8) {
                let storage = [configuration.buildah, "--root", root + "/storage", "--runroot", root + "/run", "--storage-driver", "overlay"]
                _ = try? await ChildProcess.run(storage + ["rm", "--all"], environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
            }
            try? FileManager.default.removeItem(at: entry)
            logger.notice("cleaned up a job a previous run of this worker left behind", metadata: ["job": "\(entry.lastPathComponent)"])
        }
    }

    /// `CACHE/<project-id>/<os-arch[-variant]>`: one buildah storage per project and platform.
    func cacheRoot(projectId: String, platform: String) -> URL {
        // A builder an agent started works on that project's volume for its platform.
        if configuration.singleCache { return configuration.cacheDirectory }
        return configuration.cacheDirectory.appendingPathComponent(projectId).appendingPathComponent(platform.replacingOccurrences(of: "/", with: "-"))
    }

    /// Takes the cache at `root` for one job; false if `giveUp` became true first. `waiting` is
    /// called once when the cache is busy.
    func acquire(_ root: String, giveUp: () -> Bool, waiting: () async -> Void) async -> Bool {
        var said = false
        while !busyRoots.withLock({ $0.insert(root).inserted }) {
            if giveUp() { return false }
            if !said {
                said = true
                await waiting()
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return true
    }

    func release(_ root: String) {
        _ = busyRoots.withLock { $0.remove(root) }
    }
}

extension Logger {
    func with(_ metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (k, v) in metadata { copy[metadataKey: k] = v }
        return copy
    }
}

/// Buffers events and sends them in batches (every 100 ms or 200 events), numbered so a retried
/// batch is not recorded twice.
actor EventReporter {
    let client: DrydockClient
    let jobId: String
    let logger: Logger
    var pending: [Components.Schemas.JobEvent] = []
    var sequence: Int64 = 0
    var flusher: Task<Void, Never>?
    var stopped = false
    var flushing = false

    init(client: DrydockClient, jobId: String, logger: Logger) {
        self.client = client
        self.jobId = jobId
        self.logger = logger
    }

    func log(_ line: String) {
        add(.init(sequence: 0, time: Date(), kind: .log, line: String(line.prefix(65536))))
    }

    func step(_ step: StepTracker.Step, platform: String) {
        add(.init(sequence: 0, time: Date(), kind: .step, step: .init(
            platform: platform, number: step.number, total: step.total, instruction: step.instruction, cached: step.cached,
            status: .init(rawValue: step.status) ?? .running, durationMs: step.durationMs, stage: step.stage, stageStep: step.stageStep)))
    }

    private func add(_ event: Components.Schemas.JobEvent) {
        var event = event
        event.sequence = sequence
        sequence += 1
        pending.append(event)
        if pending.count >= 200 {
            Task { await self.flush() }
        } else if flusher == nil {
            flusher = Task {
                try? await Task.sleep(for: .milliseconds(100))
                await self.flush()
            }
        }
    }

    func flush() async {
        flusher = nil
        guard !flushing else { return }  // the running flush sends what arrives meanwhile
        flushing = true
        defer { flushing = false }
        while !pending.isEmpty && !stopped {
            let batch = Array(pending.prefix(500))
            do {
                try await client.reportEvents(jobId: jobId, batch)
                pending.removeFirst(min(batch.count, pending.count))
            } catch let error as DrydockClientError where error.status == 409 || error.status == 404 || error.status == 401 {
                stopped = true  // the job is over on the server's side
            } catch {
                logger.warning("could not send log lines; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    func close() async {
        flusher?.cancel()
        flusher = nil
        while flushing { try? await Task.sleep(for: .milliseconds(20)) }
        await flush()
    }
}
