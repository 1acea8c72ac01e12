import Metrics
import Prometheus

/// One Prometheus registry per process, installed as the swift-metrics backend the first time
/// it is used, so Hummingbird's request metrics (count and latency by endpoint, method and
/// status) and PostgresNIO's land in `/metrics`.
public enum Observability {
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    public static func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        return buffer
    }
}
