import Foundation

public enum Role: String, Sendable, CaseIterable, Comparable {
    case member, admin, owner

    private var rank: Int {
        switch self {
        case .member: 0
        case .admin: 1
        case .owner: 2
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }
}

/// Who is making the current request: resolved once per request from the bearer token by
/// `AuthMiddleware` and bound to the task for the handlers.
public struct Caller: Sendable {
    public let tokenId: String
    public let kind: TokenKind
    public let organizationId: String
    public let projectId: String?
    public let userId: String?
    /// The user's role in the organization, for user tokens.
    public let role: Role?
    /// A server-wide worker token (`drydock-server worker-token`): serves every organization,
    /// belongs to none (`organizationId` is empty and matches nothing).
    public let isServerWide: Bool
    /// A CI token's projects (from an OIDC exchange); `projectId` stays nil for it.
    public let projectIds: [String]?
    /// A CI token that may start isolated builds only, or the build token of an isolated build.
    public let isolated: Bool
    /// The tag an isolated build's token may push in `<project>/build` (its job's own).
    public let buildTag: String?

    @TaskLocal public static var current: Caller?

    public init(tokenId: String, kind: TokenKind, organizationId: String, projectId: String?, userId: String?, role: Role?,
                isServerWide: Bool = false, projectIds: [String]? = nil, isolated: Bool = false, buildTag: String? = nil) {
        self.isServerWide = isServerWide
        self.projectIds = projectIds
        self.isolated = isolated
        self.buildTag = buildTag
        self.tokenId = tokenId
        self.kind = kind
        self.organizationId = organizationId
        self.projectId = projectId
        self.userId = userId
        self.role = role
    }

    /// The caller bound by the middleware; a handler reached without one is a server bug.
    static func require() throws -> Caller {
        guard let caller = current else { throw APIError.unauthenticated }
        return caller
    }

    /// Whether this caller may see a project: its organization's, and for tokens bound to one
    /// project only that project. Anything else is reported as not found.
    func canSee(project: ProjectRecord) -> Bool {
        guard project.organizationId == organizationId else { return false }
        if let projectScope { return projectScope.contains(project.id) }
        return true
    }

    /// The projects a token is bound to (one for project, pull and build tokens, those that trust
    /// it for a CI token), or nil for the whole organization.
    var projectScope: [String]? {
        if let projectId { return [projectId] }
        return projectIds
    }

    var isOrganizationAdmin: Bool {
        switch kind {
        case .organization: true
        case .user: (role ?? .member) >= .admin
        default: false
        }
    }
}
