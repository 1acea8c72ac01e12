import DrydockAPITypes
import Metrics
import Prometheus

/// Prometheus behind swift-metrics, so Hummingbird's request metrics (count and latency by
/// endpoint, method and status) and PostgresNIO's land in `/metrics`. `main` bootstraps it once
/// per process and hands the registry to the server's configuration.
public enum Observability {
    /// Builders agents were told to start and to stop.
    static let builderStarts = Counter(label: "drydock_builder_starts_total")
    static let builderStops = Counter(label: "drydock_builder_stops_total")
    /// Claim transactions, and the claims they answered (claims waiting together are answered
    /// by one: the second over the first is the mean batch size). Looked up at each use, so a
    /// use before the metrics system is bootstrapped (a unit test) does not bind them to nothing.
    static var claimBatches: Metrics.Counter { Metrics.Counter(label: "drydock_claim_batches_total") }
    static var claimsInBatches: Metrics.Counter { Metrics.Counter(label: "drydock_claims_in_batches_total") }
    /// From a job's queueing to a builder claiming it.
    static let queueToStart = Metrics.Timer(label: "drydock_job_queue_to_start_seconds", preferredDisplayUnit: .seconds)
    /// How long an operation waited for a pooled PostgreSQL connection (for a single query, until
    /// its first answer).
    static let databaseWait = Metrics.Timer(label: "drydock_db_pool_wait_seconds", preferredDisplayUnit: .seconds)
    /// Operations that got no connection within the wait limit (answered 503).
    static let databaseGaveUp = Counter(label: "drydock_db_pool_timeouts_total")

    /// Refreshed on each scrape: jobs waiting per platform, agent-started builders per state.
    static func refreshGauges(jobs: JobQueue, agents: AgentStore, maxConnections: Int) async {
        Gauge(label: "drydock_db_pool_connections_max").record(maxConnections)
        Gauge(label: "drydock_db_pool_in_use").record(PoolFigures.inUse.load(ordering: .relaxed))
        Gauge(label: "drydock_db_pool_waiting").record(PoolFigures.waiting.load(ordering: .relaxed))

        if let waiting = try? await jobs.waitingCounts() {
            for platform in Set(waiting.keys).union(Platform.supported.map(\.description)) {
                Gauge(label: "drydock_jobs_waiting", dimensions: [("platform", platform)]).record(waiting[platform] ?? 0)
            }
        }
        if let builders = try? await agents.builderCounts() {
            for (state, count) in builders {
                Gauge(label: "drydock_builders", dimensions: [("state", state)]).record(count)
            }
        }
    }

    /// Installs a new Prometheus registry as the process's metrics backend; call once, from `main`.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    public static func exposition(_ registry: PrometheusCollectorRegistry) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
