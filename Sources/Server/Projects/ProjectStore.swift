import Foundation
import Logging
import PostgresNIO

public struct ProjectRecord: Sendable {
    public var id: String
    public var organizationId: String
    public var name: String
    public var keepGigabytes: Int
    public var keepDays: Int
    public var createdAt: Date
    public var updatedAt: Date
    /// `native-only`, `fallback` or `allowed`: whether builders that emulate a platform may take jobs.
    public var emulation: String = "fallback"
    /// How long a job waits for a native builder before an emulating one may take it (nil: the server's default).
    public var emulationFallbackSeconds: Int?
    /// How long a job waits for any builder before it fails (nil: the server's default).
    public var queueTimeoutSeconds: Int?
    /// Builders agents may run at once for one platform of the project (more than 1: autoscaling).
    public var maxBuilders: Int = 1
    /// Builds one agent-started builder runs at once.
    public var buildsPerBuilder: Int = 1
    /// How long an agent-started builder waits for a job before it exits.
    public var builderIdleSeconds: Int = 300
}

public struct ProjectChanges: Sendable {
    public var name: String?
    public var keepGigabytes: Int?
    public var keepDays: Int?
    public var emulation: String?
    public var emulationFallbackSeconds: Int?
    public var queueTimeoutSeconds: Int?
    public var maxBuilders: Int?
    public var buildsPerBuilder: Int?
    public var builderIdleSeconds: Int?
}

public protocol ProjectStore: Sendable {
    func project(id: String) async throws -> ProjectRecord?
    func list(organizationId: String, onlyProjectIds: [String]?, cursor: Int64, limit: Int) async throws -> Page<ProjectRecord>
    func create(organizationId: String, name: String, keepGigabytes: Int, keepDays: Int) async throws -> ProjectRecord
    func update(id: String, _ changes: ProjectChanges) async throws -> ProjectRecord?
    /// Deletes the project; its project and pull tokens go with it (ON DELETE CASCADE).
    func delete(id: String) async throws -> Bool
}

public struct PostgresProjectStore: ProjectStore {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, organization_id, name, cache_keep_gb, cache_keep_days, created_at, updated_at, seq, emulation, emulation_fallback_seconds, queue_timeout_seconds, max_builders, builds_per_builder, builder_idle_seconds"
    typealias Row = (String, String, String, Int, Int, Date, Date, Int64, String, Int?, Int?, Int, Int, Int)

    static func record(_ r: Row) -> (seq: Int64, item: ProjectRecord) {
        (r.7, ProjectRecord(id: r.0, organizationId: r.1, name: r.2, keepGigabytes: r.3, keepDays: r.4, createdAt: r.5, updatedAt: r.6,
                            emulation: r.8, emulationFallbackSeconds: r.9, queueTimeoutSeconds: r.10,
                            maxBuilders: r.11, buildsPerBuilder: r.12, builderIdleSeconds: r.13))
    }

    private func one(_ query: PostgresQuery) async throws -> ProjectRecord? {
        let rows = try await client.query(query, logger: logger)
        for try await row in rows.decode(Row.self) { return Self.record(row).item }
        return nil
    }

    public func project(id: String) async throws -> ProjectRecord? {
        try await one("SELECT \(unescaped: Self.columns) FROM projects WHERE id = \(id)")
    }

    public func list(organizationId: String, onlyProjectIds: [String]?, cursor: Int64, limit: Int) async throws -> Page<ProjectRecord> {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM projects
            WHERE organization_id = \(organizationId) AND seq < \(cursor)
              AND (\(onlyProjectIds)::text[] IS NULL OR id = ANY(\(onlyProjectIds)))
            ORDER BY seq DESC LIMIT \(limit + 1)
            """, logger: logger)
        var out: [(seq: Int64, item: ProjectRecord)] = []
        for try await row in rows.decode(Row.self) { out.append(Self.record(row)) }
        return PageCursor.page(out, limit: limit)
    }

    public func create(organizationId: String, name: String, keepGigabytes: Int, keepDays: Int) async throws -> ProjectRecord {
        do {
            let id = Identifier.generate()
            guard let project = try await one(
                """
                INSERT INTO projects (id, organization_id, name, cache_keep_gb, cache_keep_days)
                VALUES (\(id), \(organizationId), \(name), \(keepGigabytes), \(keepDays))
                RETURNING \(unescaped: Self.columns)
                """)
            else { throw DomainError.internal("project insert returned nothing") }
            return project
        } catch where error.isUniqueViolation {
            throw DomainError.conflict("a project named '\(name)' already exists in this organization")
        }
    }

    public func update(id: String, _ changes: ProjectChanges) async throws -> ProjectRecord? {
        do {
            return try await one(
                """
                UPDATE projects SET
                    name = coalesce(\(changes.name), name),
                    cache_keep_gb = coalesce(\(changes.keepGigabytes), cache_keep_gb),
                    cache_keep_days = coalesce(\(changes.keepDays), cache_keep_days),
                    emulation = coalesce(\(changes.emulation), emulation),
                    emulation_fallback_seconds = coalesce(\(changes.emulationFallbackSeconds), emulation_fallback_seconds),
                    queue_timeout_seconds = coalesce(\(changes.queueTimeoutSeconds), queue_timeout_seconds),
                    max_builders = coalesce(\(changes.maxBuilders), max_builders),
                    builds_per_builder = coalesce(\(changes.buildsPerBuilder), builds_per_builder),
                    builder_idle_seconds = coalesce(\(changes.builderIdleSeconds), builder_idle_seconds),
                    updated_at = now()
                WHERE id = \(id)
                RETURNING \(unescaped: Self.columns)
                """)
        } catch where error.isUniqueViolation {
            throw DomainError.conflict("a project named '\(changes.name ?? "")' already exists in this organization")
        }
    }

    public func delete(id: String) async throws -> Bool {
        try await one("DELETE FROM projects WHERE id = \(id) RETURNING \(unescaped: Self.columns)") != nil
    }
}
