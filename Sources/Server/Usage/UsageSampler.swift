import Logging
import ServiceLifecycle

/// Samples every project's registry storage for metering: once the schema is ready, then every
/// interval. (Cache storage comes from the builders' reports at the end of each job.)
struct UsageSampler: Service {
    let usage: UsageStore
    let interval: Duration
    let schemaReady: StartupGate
    let logger: Logger

    func run() async throws {
        try await schemaReady.wait()
        var first = true
        while !Task.isCancelled {
            if !first {
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                } catch {
                    return
                }
            }
            first = false
            do {
                // One replica samples per interval.
                if try await usage.client.takeTurn("usage-sampler", every: interval, logger: logger) { try await usage.sampleRegistry() }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("sampling registry storage failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}
