/// What an operation needs. Every operation in `openapi.yaml` has exactly one entry in
/// `Authorization.table` (a test holds the two together); handlers then narrow to the
/// resources in the caller's reach (answering 404 for the rest).
public enum Permission: String, Sendable, CaseIterable {
    /// No token at all: the OIDC exchange (the ID token is the credential) and its configuration.
    case anyone
    /// Any valid token may ask who it is.
    case identity
    case organizationRead
    case organizationAdmin
    case projectRead
    case projectCreate
    case projectWrite
    case projectDelete
    /// Add and remove a project's OIDC trust relationships.
    case trustAdmin
    case tokensRead
    case tokensWrite
    /// Delete tags and images through the management API.
    case registryWrite
    /// Mint read-only registry tokens for a project.
    case pullTokenCreate
    /// Upload contexts, start and cancel builds.
    case buildRun
    /// Builder workers: ask for jobs.
    case workerClaim
    /// A job's own build token: fetch its context, report progress and the result.
    case jobReport
    /// drydock-agent: report capacity, be told which builders to start and stop.
    case agentControl
    /// A builder started by an agent: trade its one-time secret for a worker token.
    case builderRegister

    /// What only builder workers and their jobs do.
    static let machine: Set<Permission> = [.workerClaim, .jobReport, .agentControl, .builderRegister]

    /// What the permission lets a caller do, in a user's words (for 403 answers).
    var phrase: String {
        switch self {
        case .anyone: "do this"
        case .identity: "ask who it is"
        case .organizationRead: "see the organization, its members, usage and caps"
        case .organizationAdmin: "change the organization, its members or caps (owners and admins do)"
        case .projectRead: "see projects, their builds and registry"
        case .projectCreate: "create projects"
        case .projectWrite: "change projects"
        case .projectDelete: "delete projects"
        case .trustAdmin: "change which CI identities a project trusts (owners and admins do)"
        case .tokensRead: "list tokens"
        case .tokensWrite: "create or revoke tokens"
        case .registryWrite: "delete registry tags and images"
        case .pullTokenCreate: "create pull tokens"
        case .buildRun: "upload contexts or start and cancel builds"
        case .workerClaim: "take build jobs (worker tokens do)"
        case .jobReport: "report on a build job (only the job's own build token does)"
        case .agentControl: "start and stop builders (agent tokens do)"
        case .builderRegister: "register a builder (only the one-time secret its agent was given does)"
        }
    }
}

public enum Authorization {
    public static let table: [String: Permission] = [
        "getCurrentCaller": .identity,
        "getOIDCConfiguration": .anyone,
        "exchangeOIDCToken": .anyone,
        "listTrustRelationships": .projectRead,
        "createTrustRelationship": .trustAdmin,
        "deleteTrustRelationship": .trustAdmin,
        "getOrganization": .organizationRead,
        "updateOrganization": .organizationAdmin,
        "listMembers": .organizationRead,
        "addMember": .organizationAdmin,
        "updateMember": .organizationAdmin,
        "removeMember": .organizationAdmin,
        "listProjects": .projectRead,
        "createProject": .projectCreate,
        "getProject": .projectRead,
        "updateProject": .projectWrite,
        "deleteProject": .projectDelete,
        "listTokens": .tokensRead,
        "createToken": .tokensWrite,
        "getToken": .tokensRead,
        "revokeToken": .tokensWrite,
        "createPullToken": .pullTokenCreate,
        "listRepositories": .projectRead,
        "listRepositoryTags": .projectRead,
        "deleteRepositoryTag": .registryWrite,
        "deleteImage": .registryWrite,
        "getRegistryUsage": .projectRead,
        "getRetentionPolicy": .projectRead,
        "setRetentionPolicy": .registryWrite,
        "previewRetention": .projectRead,
        "getBuildContext": .buildRun,
        "uploadBuildContext": .buildRun,
        "listBuilds": .projectRead,
        "createBuild": .buildRun,
        "getBuild": .projectRead,
        "cancelBuild": .buildRun,
        "createBake": .buildRun,
        "getBake": .projectRead,
        "cancelBake": .buildRun,
        "getBuildLogs": .projectRead,
        "getOrganizationUsage": .organizationRead,
        "getProjectUsage": .projectRead,
        "getUsageCaps": .organizationRead,
        "setUsageCaps": .organizationAdmin,
        "clearUsageCaps": .organizationAdmin,
        "listBuilders": .organizationAdmin,
        "listAgents": .organizationAdmin,
        "pollAgent": .agentControl,
        "registerBuilder": .builderRegister,
        "getProjectCache": .projectRead,
        "resetProjectCache": .projectWrite,
        "claimJob": .workerClaim,
        "heartbeatJob": .jobReport,
        "getJobContext": .jobReport,
        "reportJobEvents": .jobReport,
        "finishJob": .jobReport,
    ]

    /// The permissions each kind of token (and, for user tokens, each role) holds.
    public static func permissions(kind: TokenKind, role: Role?) -> Set<Permission> {
        switch kind {
        case .user:
            switch role ?? .member {
            case .owner, .admin:
                return Set(Permission.allCases).subtracting(Permission.machine).subtracting([.anyone])
            case .member:
                return [.identity, .organizationRead, .projectRead, .projectCreate, .projectWrite, .tokensRead, .tokensWrite,
                        .registryWrite, .pullTokenCreate, .buildRun]
            }
        case .organization:
            // Automation across the organization, but not its membership.
            return [.identity, .organizationRead, .projectRead, .projectCreate, .projectWrite, .projectDelete, .tokensRead, .tokensWrite,
                    .registryWrite, .pullTokenCreate, .buildRun, .trustAdmin]
        case .project, .ci:
            // CI in one project (or, from an OIDC exchange, the projects that trust the job):
            // read it, build in it and hand out read-only pull tokens for it.
            return [.identity, .projectRead, .pullTokenCreate, .buildRun]
        case .pull:
            // Registry read-only: no management API beyond identity.
            return [.identity]
        case .worker:
            return [.identity, .workerClaim]
        case .build:
            return [.identity, .jobReport]
        case .agent:
            return [.identity, .agentControl]
        case .registration:
            return [.builderRegister]
        }
    }

    /// Refuses, in the caller's words, an operation its token may not run.
    static func require(_ caller: Caller, operation: String) throws {
        guard allows(caller, operation: operation) else {
            let what = table[operation]?.phrase ?? "do this"
            throw APIError.forbidden("a \(caller.kind.rawValue) token\(caller.role.map { " of a \($0.rawValue)" } ?? "") may not \(what)")
        }
    }

    public static func allows(_ caller: Caller, operation: String) -> Bool {
        guard let needed = table[operation] else { return false }
        return permissions(kind: caller.kind, role: caller.role).contains(needed)
    }
}
