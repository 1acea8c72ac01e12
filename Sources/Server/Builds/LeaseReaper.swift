import Logging
import ServiceLifecycle

/// Fails jobs whose worker stopped sending heartbeats, so a build never stays "running" because
/// its builder died; the build says which worker and why.
struct LeaseReaper: Service {
    let builds: BuildStore
    let authenticator: TokenAuthenticator
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            do {
                let expired = try await builds.expireLeases()
                if expired > 0 {
                    authenticator.invalidate()  // their build tokens were revoked
                    logger.warning("failed jobs whose worker stopped responding", metadata: ["jobs": "\(expired)"])
                }
            } catch is CancellationError {
                return
            } catch {
                // The schema may not be migrated yet on the first pass.
                logger.debug("lease check failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}
