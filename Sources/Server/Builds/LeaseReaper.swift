import Logging
import ServiceLifecycle

/// Fails jobs whose worker stopped sending heartbeats, so a build never stays "running" because
/// its builder died; the build says which worker and why.
struct LeaseReaper: Service {
    let jobs: JobQueue
    let authenticator: TokenAuthenticator
    let interval: Duration
    /// How long a queued job waits when no online builder serves its platform.
    let queueTimeout: Duration
    let schemaReady: StartupGate
    var indexes: IndexAssembler? = nil
    /// Stops the builders of agents that stopped polling.
    var agents: AgentStore? = nil
    let logger: Logger

    /// Waiting builds told why in one transaction.
    static let tellBatch = 250

    func run() async throws {
        try await schemaReady.wait()
        // Leases count from when this server came back: a worker that kept building through a
        // restart (its heartbeats failing meanwhile) is not failed for the server's own outage.
        var graceGiven = false
        // When each waiting job's build was last told why (kept here: telling locks no job row).
        var told: [String: ContinuousClock.Instant] = [:]
        // When builds whose jobs had all ended were last looked for (at the first turn, then
        // every minute).
        var repaired: ContinuousClock.Instant?
        while !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            do {
                if !graceGiven {
                    let extended = try await jobs.extendRunningLeases()
                    graceGiven = true
                    if extended > 0 { logger.info("renewed the leases of running jobs after start-up", metadata: ["jobs": "\(extended)"]) }
                }
                // One replica checks per interval (the others' turns come when it stops).
                guard try await jobs.client.takeTurn("lease-reaper", every: interval, logger: logger) else { continue }
                let unserved = try await jobs.unservedJobs()
                var telling: [(job: JobQueue.WaitingJob, timeout: Duration)] = []
                for job in unserved {
                    let timeout = job.timeoutSeconds.map { Duration.seconds($0) } ?? queueTimeout
                    if job.ageSeconds >= timeout.components.seconds {
                        if try await jobs.failUnserved(job, timeout: timeout) {
                            logger.notice("failed a job no online builder serves", metadata: ["job": "\(job.id)", "platform": "\(job.platform)"])
                        }
                    } else if told[job.id].map({ ContinuousClock.now - $0 >= .seconds(30) }) ?? true {
                        telling.append((job, timeout))
                    }
                }
                // A few hundred builds per transaction: 2,000 builds queued before any builder
                // came were 2,000 commits, still being written while the first builders claimed.
                for start in stride(from: 0, to: telling.count, by: Self.tellBatch) {
                    let batch = Array(telling[start..<min(start + Self.tellBatch, telling.count)])
                    for id in try await jobs.tellWaiting(batch) { told[id] = .now }
                }
                let waitingIds = Set(unserved.map(\.id))
                told = told.filter { waitingIds.contains($0.key) }
                // Multi-platform builds whose index a stopped server did not write.
                if let indexes {
                    for buildId in try await indexes.builds.awaitingIndex() { await indexes.assemble(buildId: buildId) }
                    if repaired.map({ ContinuousClock.now - $0 >= .seconds(60) }) ?? true {
                        repaired = .now
                        let closed = try await indexes.builds.closeEnded()
                        if closed > 0 { logger.notice("closed builds left open after all their jobs had ended", metadata: ["builds": "\(closed)"]) }
                    }
                }
                if let agents, try await agents.stopBuildersOfSilentAgents() > 0 {
                    authenticator.invalidate()  // their worker tokens were revoked
                    logger.notice("stopped the builders of agents that stopped reporting")
                }
                let expired = try await jobs.expireLeases()
                if expired > 0 {
                    authenticator.invalidate()  // their build tokens were revoked
                    logger.warning("failed jobs whose worker stopped responding", metadata: ["jobs": "\(expired)"])
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("lease check failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}
