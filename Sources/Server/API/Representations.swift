import DrydockAPITypes
import Foundation

// Records to their wire form, in one place.

extension Components.Schemas.Organization {
    init(_ r: OrganizationRecord) {
        self.init(id: r.id, name: r.name, plan: r.plan, createdAt: r.createdAt)
    }
}

extension Components.Schemas.User {
    init(_ r: UserRecord) {
        self.init(id: r.id, email: r.email, createdAt: r.createdAt)
    }
}

extension Components.Schemas.Role {
    init(_ role: Role) {
        switch role {
        case .owner: self = .owner
        case .admin: self = .admin
        case .member: self = .member
        }
    }

    var domain: Role {
        switch self {
        case .owner: .owner
        case .admin: .admin
        case .member: .member
        }
    }
}

extension Components.Schemas.Member {
    init(_ r: MemberRecord) {
        self.init(user: .init(r.user), role: .init(r.role), joinedAt: r.joinedAt)
    }
}

extension Components.Schemas.Project {
    init(_ r: ProjectRecord) {
        self.init(
            id: r.id, organizationId: r.organizationId, name: r.name,
            cachePolicy: .init(keepGigabytes: r.keepGigabytes, keepDays: r.keepDays),
            builds: .init(emulation: .init(rawValue: r.emulation) ?? .fallback, emulationFallbackSeconds: r.emulationFallbackSeconds,
                          queueTimeoutSeconds: r.queueTimeoutSeconds, maxBuilders: r.maxBuilders, buildsPerBuilder: r.buildsPerBuilder,
                          builderIdleSeconds: r.builderIdleSeconds),
            createdAt: r.createdAt, updatedAt: r.updatedAt)
    }
}

extension Components.Schemas.TokenKind {
    init(_ kind: TokenKind) { self = .init(rawValue: kind.rawValue)! }
    var domain: TokenKind { TokenKind(rawValue: rawValue)! }
}

extension Components.Schemas.Token {
    init(_ r: TokenRecord) {
        self.init(
            id: r.id, name: r.name, kind: .init(r.kind), organizationId: r.organizationId ?? "",
            projectId: r.projectId, userId: r.userId, createdByUserId: r.createdByUserId, prefix: r.prefix,
            createdAt: r.createdAt, expiresAt: r.expiresAt, lastUsedAt: r.lastUsedAt, revokedAt: r.revokedAt,
            projectIds: r.projectIds, isolated: r.kind == .ci ? r.isolated : nil)
    }
}

extension Components.Schemas.CreatedToken {
    init(_ r: TokenRecord, secret: String) {
        self.init(
            id: r.id, name: r.name, kind: .init(r.kind), organizationId: r.organizationId ?? "",
            projectId: r.projectId, userId: r.userId, createdByUserId: r.createdByUserId, prefix: r.prefix,
            createdAt: r.createdAt, expiresAt: r.expiresAt, token: secret)
    }
}

extension Components.Schemas.RetentionPolicy {
    init(_ p: RetentionPolicy) {
        self.init(untaggedDays: p.untaggedDays, buildTagDays: p.buildTagDays,
                  keep: p.keep.isEmpty ? nil : p.keep.map { .init(pattern: $0.pattern, count: $0.count) },
                  immutableTags: p.immutableTags.isEmpty ? nil : p.immutableTags)
    }
}
