import Metrics
import Prometheus

/// Prometheus behind swift-metrics, so Hummingbird's request metrics (count and latency by
/// endpoint, method and status) and PostgresNIO's land in `/metrics`. `main` bootstraps it once
/// per process and hands the registry to the server's configuration.
public enum Observability {
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
