import Foundation
import Logging
import PostgresNIO

public struct TokenRecord: Sendable {
    public var id: String
    public var organizationId: String?
    public var kind: TokenKind
    public var name: String
    public var prefix: String
    public var userId: String?
    public var projectId: String?
    public var createdByUserId: String?
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastUsedAt: Date?
    public var revokedAt: Date?
    /// A CI token's projects (from an OIDC exchange).
    public var projectIds: [String]? = nil
    public var isolated = false
}

/// A token about to be stored: the secret stays with the caller, only its hash goes in.
public struct NewToken: Sendable {
    public let id: String
    public let secret: String
    public let kind: TokenKind
    public let name: String
    public let organizationId: String?
    public let userId: String?
    public let projectId: String?
    public let createdByUserId: String?
    public let expiresAt: Date?
    /// A CI token's projects.
    public var projectIds: [String]? = nil
    /// A CI token that may start isolated builds only, or an isolated build's own token.
    public var isolated = false
    /// The tag in `<project>/build` an isolated build's token may push (its job's own).
    public var buildTag: String? = nil

    public init(kind: TokenKind, name: String, organizationId: String?, userId: String? = nil,
                projectId: String? = nil, createdByUserId: String? = nil, expiresAt: Date? = nil) {
        self.id = Identifier.generate()
        self.secret = TokenSecret.generate(kind: kind)
        self.kind = kind
        self.name = name
        self.organizationId = organizationId
        self.userId = userId
        self.projectId = projectId
        self.createdByUserId = createdByUserId
        self.expiresAt = expiresAt
    }
}

/// What authentication needs to know about a presented secret.
public struct TokenGrant: Sendable {
    public let tokenId: String
    public let kind: TokenKind
    public let organizationId: String?
    public let projectId: String?
    public let userId: String?
    public let role: Role?
    public let expiresAt: Date?
    public let revoked: Bool
    public let lastUsedAt: Date?
    public var projectIds: [String]? = nil
    public var isolated = false
    public var buildTag: String? = nil
}

public struct TokenFilter: Sendable {
    public var kind: TokenKind?
    public var projectId: String?
    public var includeRevoked = false
    /// Members see only their own tokens and those they created.
    public var visibleToUserId: String?
}

public protocol TokenStore: Sendable {
    func grant(forSecret secret: String) async throws -> TokenGrant?
    func touch(tokenId: String) async throws
    /// Whether the token still grants anything: not revoked, not expired, and for a user token the
    /// user still a member. Registry bearer tokens minted from it are checked against this.
    func isActive(tokenId: String) async throws -> Bool
    func create(_ token: NewToken) async throws -> TokenRecord
    func token(id: String, organizationId: String) async throws -> TokenRecord?
    func list(organizationId: String, filter: TokenFilter, cursor: Int64, limit: Int) async throws -> Page<TokenRecord>
    func revoke(id: String, organizationId: String) async throws
}

public struct PostgresTokenStore: TokenStore {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = "id, organization_id, kind, name, prefix, user_id, project_id, created_by_user_id, created_at, expires_at, last_used_at, revoked_at, seq, project_ids, isolated"

    typealias Row = (String, String?, String, String, String, String?, String?, String?, Date, Date?, Date?, Date?, Int64, [String]?, Bool)

    static func record(_ r: Row) -> (seq: Int64, item: TokenRecord) {
        (r.12, TokenRecord(
            id: r.0, organizationId: r.1, kind: TokenKind(rawValue: r.2) ?? .user, name: r.3, prefix: r.4,
            userId: r.5, projectId: r.6, createdByUserId: r.7, createdAt: r.8, expiresAt: r.9,
            lastUsedAt: r.10, revokedAt: r.11, projectIds: r.13, isolated: r.14))
    }

    /// What authentication reads of a token (`t`) and its user's membership (`m`), and how.
    static let grantColumns = """
        t.id, t.kind, t.organization_id, t.project_id, t.user_id, m.role, t.expires_at,
        t.revoked_at IS NOT NULL, t.last_used_at, t.project_ids, t.isolated, t.build_tag
        """
    typealias GrantRow = (String, String, String?, String?, String?, String?, Date?, Bool, Date?, [String]?, Bool, String?)

    static func grant(_ r: GrantRow) -> TokenGrant? {
        guard let kind = TokenKind(rawValue: r.1) else { return nil }
        return TokenGrant(tokenId: r.0, kind: kind, organizationId: r.2, projectId: r.3, userId: r.4,
                          role: r.5.flatMap(Role.init(rawValue:)), expiresAt: r.6, revoked: r.7,
                          lastUsedAt: r.8, projectIds: r.9, isolated: r.10, buildTag: r.11)
    }

    public func grant(forSecret secret: String) async throws -> TokenGrant? {
        let hash = ByteBuffer(bytes: TokenSecret.hash(secret))
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.grantColumns)
            FROM tokens t
            LEFT JOIN memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
            WHERE t.secret_hash = \(hash)
            """, logger: logger)
        for try await row in rows.decode(GrantRow.self) { return Self.grant(row) }
        return nil
    }

    public func isActive(tokenId: String) async throws -> Bool {
        let rows = try await client.query(
            """
            SELECT t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
               AND (t.kind <> 'user' OR EXISTS (
                   SELECT 1 FROM memberships m WHERE m.organization_id = t.organization_id AND m.user_id = t.user_id))
            FROM tokens t WHERE t.id = \(tokenId)
            """, logger: logger)
        for try await active in rows.decode(Bool.self) { return active }
        return false
    }

    public func touch(tokenId: String) async throws {
        try await client.query("UPDATE tokens SET last_used_at = now() WHERE id = \(tokenId)", logger: logger)
    }

    public func create(_ token: NewToken) async throws -> TokenRecord {
        try await client.withConnection { try await Self.insert(token, on: $0, logger: logger) }
    }

    /// Inserts on a given connection, so callers can make a token part of a larger transaction.
    static func insert(_ token: NewToken, on connection: PostgresConnection, logger: Logger) async throws -> TokenRecord {
        let hash = ByteBuffer(bytes: TokenSecret.hash(token.secret))
        let prefix = TokenSecret.displayPrefix(token.secret)
        let rows = try await connection.query(
            """
            INSERT INTO tokens (id, organization_id, kind, name, secret_hash, prefix, user_id, project_id, created_by_user_id, expires_at,
                                project_ids, isolated, build_tag)
            VALUES (\(token.id), \(token.organizationId), \(token.kind.rawValue), \(token.name), \(hash), \(prefix),
                    \(token.userId), \(token.projectId), \(token.createdByUserId), \(token.expiresAt),
                    \(token.projectIds), \(token.isolated), \(token.buildTag))
            RETURNING \(unescaped: columns)
            """, logger: logger)
        for try await row in rows.decode(Row.self) { return record(row).item }
        throw DomainError.internal("token insert returned nothing")
    }

    public func token(id: String, organizationId: String) async throws -> TokenRecord? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.columns) FROM tokens WHERE id = \(id) AND organization_id = \(organizationId)",
            logger: logger)
        for try await row in rows.decode(Row.self) { return Self.record(row).item }
        return nil
    }

    public func list(organizationId: String, filter: TokenFilter, cursor: Int64, limit: Int) async throws -> Page<TokenRecord> {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM tokens
            WHERE organization_id = \(organizationId) AND seq < \(cursor)
              AND (\(filter.kind?.rawValue)::text IS NULL OR kind = \(filter.kind?.rawValue))
              AND (\(filter.projectId)::text IS NULL OR project_id = \(filter.projectId))
              AND (\(filter.includeRevoked) OR revoked_at IS NULL)
              AND (\(filter.visibleToUserId)::text IS NULL OR user_id = \(filter.visibleToUserId) OR created_by_user_id = \(filter.visibleToUserId))
            ORDER BY seq DESC LIMIT \(limit + 1)
            """, logger: logger)
        var out: [(seq: Int64, item: TokenRecord)] = []
        for try await row in rows.decode(Row.self) { out.append(Self.record(row)) }
        return PageCursor.page(out, limit: limit)
    }

    /// Revokes a job's build token inside the transaction that ends the job (the tokens table has
    /// one owner: this store).
    /// Revokes a job's build token; every server's auth cache hears of it at commit, in the same
    /// statement (`invalidate:token:<id>` on the events channel).
    static func revokeBuildToken(id: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            WITH revoked AS (UPDATE tokens SET revoked_at = now() WHERE id = \(id) AND revoked_at IS NULL RETURNING id)
            SELECT pg_notify(\(BuildSignals.channel), 'invalidate:token:' || id) FROM revoked
            """, logger: logger)
    }

    public func revoke(id: String, organizationId: String) async throws {
        try await client.query(
            "UPDATE tokens SET revoked_at = now() WHERE id = \(id) AND organization_id = \(organizationId) AND revoked_at IS NULL",
            logger: logger)
    }
}
