import Foundation
import Logging
import PostgresNIO

public struct OrganizationRecord: Sendable {
    public var id: String
    public var name: String
    public var plan: PlanName
    public var createdAt: Date
}

public struct UserRecord: Sendable {
    public var id: String
    public var email: String
    public var createdAt: Date
}

public struct MemberRecord: Sendable {
    public var user: UserRecord
    public var role: Role
    public var joinedAt: Date
}

public protocol OrganizationStore: Sendable {
    func organization(id: String) async throws -> OrganizationRecord?
    func rename(id: String, to name: String) async throws -> OrganizationRecord?
    func user(id: String) async throws -> UserRecord?
    func members(organizationId: String, cursor: Int64, limit: Int) async throws -> Page<MemberRecord>
    func member(organizationId: String, userId: String) async throws -> MemberRecord?
    /// Adds the user (created if new) with a first user token, in one transaction.
    func addMember(organizationId: String, email: String, role: Role, firstToken: @escaping @Sendable (String) -> NewToken) async throws -> MemberRecord
    func setRole(organizationId: String, userId: String, role: Role) async throws -> MemberRecord?
    /// Removes the member and revokes their user tokens in this organization.
    func removeMember(organizationId: String, userId: String) async throws -> Bool
    /// The operator's `bootstrap`: a new organization, its owner, and the owner's token.
    func bootstrap(name: String, ownerEmail: String, token: @escaping @Sendable (String, String) -> NewToken) async throws -> (OrganizationRecord, UserRecord, TokenRecord)
}

public struct PostgresOrganizationStore: OrganizationStore {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func organization(id: String) async throws -> OrganizationRecord? {
        let rows = try await client.query("SELECT id, name, plan, created_at FROM organizations WHERE id = \(id)", logger: logger)
        for try await (id, name, plan, created) in rows.decode((String, String, String, Date).self) {
            return OrganizationRecord(id: id, name: name, plan: PlanName(rawValue: plan) ?? .developer, createdAt: created)
        }
        return nil
    }

    public func rename(id: String, to name: String) async throws -> OrganizationRecord? {
        do {
            let rows = try await client.query(
                "UPDATE organizations SET name = \(name) WHERE id = \(id) RETURNING id, name, plan, created_at", logger: logger)
            for try await (id, name, plan, created) in rows.decode((String, String, String, Date).self) {
                return OrganizationRecord(id: id, name: name, plan: PlanName(rawValue: plan) ?? .developer, createdAt: created)
            }
            return nil
        } catch where error.isUniqueViolation {
            throw DomainError.conflict("an organization named '\(name)' already exists")
        }
    }

    public func user(id: String) async throws -> UserRecord? {
        let rows = try await client.query("SELECT id, email, created_at FROM users WHERE id = \(id)", logger: logger)
        for try await (id, email, created) in rows.decode((String, String, Date).self) {
            return UserRecord(id: id, email: email, createdAt: created)
        }
        return nil
    }

    static let memberSelect = """
        SELECT u.id, u.email, u.created_at, m.role, m.created_at, m.seq
        FROM memberships m JOIN users u ON u.id = m.user_id
        """

    static func member(_ r: (String, String, Date, String, Date, Int64)) -> (seq: Int64, item: MemberRecord) {
        (r.5, MemberRecord(user: UserRecord(id: r.0, email: r.1, createdAt: r.2), role: Role(rawValue: r.3) ?? .member, joinedAt: r.4))
    }

    public func members(organizationId: String, cursor: Int64, limit: Int) async throws -> Page<MemberRecord> {
        let rows = try await client.query(
            """
            \(unescaped: Self.memberSelect)
            WHERE m.organization_id = \(organizationId) AND m.seq < \(cursor)
            ORDER BY m.seq DESC LIMIT \(limit + 1)
            """, logger: logger)
        var out: [(seq: Int64, item: MemberRecord)] = []
        for try await row in rows.decode((String, String, Date, String, Date, Int64).self) { out.append(Self.member(row)) }
        return PageCursor.page(out, limit: limit)
    }

    public func member(organizationId: String, userId: String) async throws -> MemberRecord? {
        try await client.withConnection { try await Self.member(organizationId: organizationId, userId: userId, on: $0, logger: logger) }
    }

    private static func member(organizationId: String, userId: String, on connection: PostgresConnection, logger: Logger) async throws -> MemberRecord? {
        let rows = try await connection.query(
            "\(unescaped: memberSelect) WHERE m.organization_id = \(organizationId) AND m.user_id = \(userId)", logger: logger)
        for try await row in rows.decode((String, String, Date, String, Date, Int64).self) { return member(row).item }
        return nil
    }

    private static func upsertUser(email: String, on connection: PostgresConnection, logger: Logger) async throws -> String {
        let newId = Identifier.generate()
        let rows = try await connection.query(
            """
            INSERT INTO users (id, email) VALUES (\(newId), \(email))
            ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(String.self) { return id }
        throw DomainError.internal("user upsert returned nothing")
    }

    public func addMember(organizationId: String, email: String, role: Role, firstToken: @escaping @Sendable (String) -> NewToken) async throws -> MemberRecord {
        try await client.transaction(logger: logger) { tx in
            let userId = try await Self.upsertUser(email: email, on: tx, logger: logger)
            do {
                try await tx.query(
                    "INSERT INTO memberships (organization_id, user_id, role) VALUES (\(organizationId), \(userId), \(role.rawValue))",
                    logger: logger)
            } catch where error.isUniqueViolation {
                throw DomainError.conflict("\(email) is already a member of this organization")
            }
            _ = try await PostgresTokenStore.insert(firstToken(userId), on: tx, logger: logger)
            guard let member = try await Self.member(organizationId: organizationId, userId: userId, on: tx, logger: logger) else {
                throw DomainError.internal("member vanished")
            }
            return member
        }
    }

    /// Locks the organization's owners and fails if the change would leave none.
    private static func ensureAnotherOwner(organizationId: String, userId: String, on tx: PostgresConnection, logger: Logger) async throws {
        let rows = try await tx.query(
            """
            SELECT count(*) FROM (SELECT 1 FROM memberships
            WHERE organization_id = \(organizationId) AND role = 'owner' AND user_id <> \(userId) FOR UPDATE) owners
            """, logger: logger)
        for try await count in rows.decode(Int64.self) where count == 0 {
            throw DomainError.conflict("an organization keeps at least one owner; make someone else owner first")
        }
    }

    public func setRole(organizationId: String, userId: String, role: Role) async throws -> MemberRecord? {
        try await client.transaction(logger: logger) { tx in
            guard let current = try await Self.member(organizationId: organizationId, userId: userId, on: tx, logger: logger) else {
                return nil
            }
            if current.role == .owner, role != .owner {
                try await Self.ensureAnotherOwner(organizationId: organizationId, userId: userId, on: tx, logger: logger)
            }
            try await tx.query(
                "UPDATE memberships SET role = \(role.rawValue) WHERE organization_id = \(organizationId) AND user_id = \(userId)",
                logger: logger)
            return try await Self.member(organizationId: organizationId, userId: userId, on: tx, logger: logger)
        }
    }

    public func removeMember(organizationId: String, userId: String) async throws -> Bool {
        try await client.transaction(logger: logger) { tx in
            guard let current = try await Self.member(organizationId: organizationId, userId: userId, on: tx, logger: logger) else {
                return false
            }
            if current.role == .owner {
                try await Self.ensureAnotherOwner(organizationId: organizationId, userId: userId, on: tx, logger: logger)
            }
            try await tx.query(
                "DELETE FROM memberships WHERE organization_id = \(organizationId) AND user_id = \(userId)", logger: logger)
            try await tx.query(
                """
                UPDATE tokens SET revoked_at = now()
                WHERE organization_id = \(organizationId) AND user_id = \(userId) AND revoked_at IS NULL
                """, logger: logger)
            return true
        }
    }

    public func bootstrap(name: String, ownerEmail: String, token: @escaping @Sendable (String, String) -> NewToken) async throws -> (OrganizationRecord, UserRecord, TokenRecord) {
        try await client.transaction(logger: logger) { tx in
            let orgId = Identifier.generate()
            var organization: OrganizationRecord?
            do {
                let rows = try await tx.query(
                    "INSERT INTO organizations (id, name) VALUES (\(orgId), \(name)) RETURNING id, name, plan, created_at",
                    logger: logger)
                for try await (id, name, plan, created) in rows.decode((String, String, String, Date).self) {
                    organization = OrganizationRecord(id: id, name: name, plan: PlanName(rawValue: plan) ?? .developer, createdAt: created)
                }
            } catch where error.isUniqueViolation {
                throw DomainError.conflict("an organization named '\(name)' already exists")
            }
            guard let organization else { throw DomainError.internal("organization insert returned nothing") }
            try await UsageStore.recordFirstPlan(organizationId: organization.id, on: tx, logger: logger)
            let userId = try await Self.upsertUser(email: ownerEmail, on: tx, logger: logger)
            try await tx.query(
                "INSERT INTO memberships (organization_id, user_id, role) VALUES (\(orgId), \(userId), 'owner')", logger: logger)
            let record = try await PostgresTokenStore.insert(token(orgId, userId), on: tx, logger: logger)
            guard let user = try await Self.member(organizationId: orgId, userId: userId, on: tx, logger: logger)?.user else {
                throw DomainError.internal("owner vanished")
            }
            return (organization, user, record)
        }
    }
}
