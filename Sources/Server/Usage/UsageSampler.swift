import Logging
import ServiceLifecycle

/// Samples every project's registry storage for metering: shortly after start, then every
/// interval. (Cache storage comes from the builders' reports at the end of each job.)
struct UsageSampler: Service {
    let usage: UsageStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        var wait = Duration.seconds(5)  // the schema is migrated meanwhile
        while !Task.isCancelled {
            do {
                let pause = wait
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            } catch {
                return
            }
            wait = interval
            do {
                try await usage.sampleRegistry()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("sampling registry storage failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}
