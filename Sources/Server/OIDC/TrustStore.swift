import Foundation
import Logging
import PostgresNIO

public struct TrustRelationshipRecord: Sendable {
    public var id: String
    public var organizationId: String
    public var projectId: String
    public var provider: TrustProvider
    public var rule: TrustRule
    public var createdAt: Date
}

/// A project's trust relationships (migration 8), and the lookup the OIDC exchange makes by issuer.
public struct TrustStore: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, organization_id, project_id, provider, issuer, subject, conditions::text, isolate, created_at"
    typealias Row = (String, String, String, String, String, String, String, String, Date)

    static func record(_ r: Row) -> TrustRelationshipRecord? {
        guard let provider = TrustProvider(rawValue: r.3), let isolate = TrustIsolation(rawValue: r.7),
              let conditions = try? JSONDecoder().decode([String: [String]].self, from: Data(r.6.utf8))
        else { return nil }
        return TrustRelationshipRecord(id: r.0, organizationId: r.1, projectId: r.2, provider: provider,
                                       rule: TrustRule(issuer: r.4, subject: r.5, conditions: conditions, isolate: isolate),
                                       createdAt: r.8)
    }

    func many(_ query: PostgresQuery) async throws -> [TrustRelationshipRecord] {
        var out: [TrustRelationshipRecord] = []
        for try await row in try await client.query(query, logger: logger).decode(Row.self) {
            if let record = Self.record(row) { out.append(record) }
        }
        return out
    }

    public func create(organizationId: String, projectId: String, provider: TrustProvider, rule: TrustRule,
                       createdByTokenId: String?) async throws -> TrustRelationshipRecord {
        let id = Identifier.generate()
        let conditions = String(decoding: try JSONEncoder().encode(rule.conditions), as: UTF8.self)
        let rows = try await many(
            """
            INSERT INTO trust_relationships (id, organization_id, project_id, provider, issuer, subject, conditions, isolate, created_by_token_id)
            VALUES (\(id), \(organizationId), \(projectId), \(provider.rawValue), \(rule.issuer), \(rule.subject), \(conditions)::jsonb,
                    \(rule.isolate.rawValue), \(createdByTokenId))
            RETURNING \(unescaped: Self.columns)
            """)
        guard let record = rows.first else { throw DomainError.internal("trust relationship insert returned nothing") }
        return record
    }

    public func list(projectId: String) async throws -> [TrustRelationshipRecord] {
        try await many("SELECT \(unescaped: Self.columns) FROM trust_relationships WHERE project_id = \(projectId) ORDER BY seq")
    }

    public func delete(id: String, projectId: String) async throws -> Bool {
        let rows = try await client.query(
            "DELETE FROM trust_relationships WHERE id = \(id) AND project_id = \(projectId) RETURNING id", logger: logger)
        for try await _ in rows.decode(String.self) { return true }
        return false
    }

    /// Every relationship naming this issuer, in every organization: the exchange matches the
    /// token's claims against them and answers only with what matched.
    public func relationships(issuer: String) async throws -> [TrustRelationshipRecord] {
        try await many("SELECT \(unescaped: Self.columns) FROM trust_relationships WHERE issuer = \(issuer) ORDER BY seq LIMIT 10000")
    }
}
