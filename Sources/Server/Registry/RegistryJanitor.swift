import Foundation
import Logging
import ServiceLifecycle

/// Online housekeeping for the registry: expires abandoned upload sessions (and their partial
/// files) and removes blobs no repository references once they are older than a grace period.
/// Runs as a service beside the HTTP server; never races an upload (see `RegistryStore.linkBlob`).
public struct RegistryJanitor: Service {
    let store: RegistryStore
    let blobs: any BlobStore
    let schemaReady: StartupGate
    let logger: Logger
    let interval: Duration
    let uploadExpiry: Duration
    let grace: Duration

    public init(store: RegistryStore, blobs: any BlobStore, schemaReady: StartupGate = .opened("schema"), logger: Logger,
                interval: Duration = .seconds(600), uploadExpiry: Duration = .seconds(24 * 3600), grace: Duration = .seconds(3600)) {
        self.store = store
        self.blobs = blobs
        self.schemaReady = schemaReady
        self.logger = logger
        self.interval = interval
        self.uploadExpiry = uploadExpiry
        self.grace = grace
    }

    public func run() async throws {
        try await schemaReady.wait()
        while !Task.isCancelled {
            do {
                // One replica sweeps per interval.
                if try await store.client.takeTurn("registry-janitor", every: interval, logger: logger) { try await sweep() }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("registry housekeeping failed; will retry", metadata: ["error": "\(String(reflecting: error))"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }

    /// One pass; returns (uploads expired, blobs removed).
    @discardableResult
    public func sweep() async throws -> (uploads: Int, blobs: Int) {
        // Retention first, so the blobs of what it deletes can go in a later pass.
        for (projectId, policy) in try await store.projectsWithRetention() {
            let plan = try await store.retentionPlan(projectId: projectId, policy: policy)
            let done = try await store.apply(plan, projectId: projectId)
            if done.tags > 0 || done.manifests > 0 {
                logger.info("registry retention", metadata: ["project": "\(projectId)", "tags": "\(done.tags)", "manifests": "\(done.manifests)"])
            }
        }
        let expired = try await store.expireUploads(olderThan: uploadExpiry)
        for id in expired { try await blobs.cancelUpload(id: id) }
        let removed = try await store.collectGarbage(grace: grace) { digest in try await blobs.delete(digest) }
        // Blobs in the store that no row knows: listed rarely (an object store lists slowly).
        var orphans = 0
        if try await store.client.takeTurn("registry-orphans", every: interval * 6, logger: logger) {
            orphans = try await removeOrphans()
        }
        if !expired.isEmpty || removed > 0 || orphans > 0 {
            logger.info("registry housekeeping", metadata: ["uploadsExpired": "\(expired.count)", "blobsRemoved": "\(removed)", "orphansRemoved": "\(orphans)"])
        }
        return (expired.count, removed + orphans)
    }

    /// Removes stored blobs older than the grace period that no database row knows.
    public func removeOrphans() async throws -> Int {
        let cutoff = Date().addingTimeInterval(-Double(grace.components.seconds))
        var removed = 0
        try await blobs.listBlobs { page in
            let old = page.filter { $0.modified < cutoff }.map(\.digest)
            removed += try await store.removeOrphans(old) { digest in try await blobs.delete(digest) }
        }
        return removed
    }
}
