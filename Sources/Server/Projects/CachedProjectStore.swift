import Foundation

/// Keeps recently read projects in memory for a short time, so the per-request visibility check
/// of project-scoped calls (API and registry) does not cost a database round trip each time.
/// Writes through this repository drop the entry at once; another server's writes are seen
/// after at most `ttl`.
public final class CachedProjectStore: ProjectStore {
    let base: any ProjectStore
    private let entries: ExpiringCache<String, ProjectRecord?>

    public init(_ base: any ProjectStore, ttl: Duration = .seconds(2)) {
        self.base = base
        self.entries = ExpiringCache(ttl: ttl, capacity: 50_000)
    }

    public func project(id: String) async throws -> ProjectRecord? {
        try await entries.value(for: id) { [base] in try await base.project(id: id) }
    }

    public func list(organizationId: String, onlyProjectIds: [String]?, cursor: Int64, limit: Int) async throws -> Page<ProjectRecord> {
        try await base.list(organizationId: organizationId, onlyProjectIds: onlyProjectIds, cursor: cursor, limit: limit)
    }

    public func create(organizationId: String, name: String, keepGigabytes: Int, keepDays: Int) async throws -> ProjectRecord {
        let project = try await base.create(organizationId: organizationId, name: name, keepGigabytes: keepGigabytes, keepDays: keepDays)
        forget(project.id)
        return project
    }

    public func update(id: String, _ changes: ProjectChanges) async throws -> ProjectRecord? {
        defer { forget(id) }
        return try await base.update(id: id, changes)
    }

    public func delete(id: String) async throws -> Bool {
        defer { forget(id) }
        return try await base.delete(id: id)
    }

    /// Other replicas are told through this (set by the composition root).
    let broadcast = CacheBroadcast()

    private func forget(_ id: String) {
        entries.remove(id)
        broadcast.publish("invalidate:project:\(id)")
    }

    /// What another replica's broadcast asks of this one.
    func handle(_ message: String) {
        if message.hasPrefix("invalidate:project:") { entries.remove(String(message.dropFirst("invalidate:project:".count))) }
    }
}
