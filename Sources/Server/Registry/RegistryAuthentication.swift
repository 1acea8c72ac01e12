import Foundation
import HTTPTypes
import Hummingbird

/// The request context of every `/v2` route: the credentials `RegistryAuthMiddleware` resolved,
/// once per request, before any route runs.
struct RegistryRequestContext: ChildRequestContext {
    var coreContext: CoreRequestContextStorage
    /// Who is asking, when valid credentials came with the request.
    var grant: RegistryGrant?
    /// Why presented credentials were refused (the route answers 401 with its own challenge).
    var refusal: String?

    init(context: BasicRequestContext) {
        self.coreContext = context.coreContext
    }
}

/// One repository a request is authorised for, with the action already checked.
struct RepositoryAccess: Sendable {
    let name: String
    let projectId: String
    let repository: String
    let grant: RegistryGrant
}

/// Resolves Basic (any user, a Drydock token as password) or Bearer (a registry token from
/// `/v2/token`, or a Drydock token) credentials into the context. Missing or refused credentials
/// are not an error here: each route answers them with a challenge for its own scope.
struct RegistryAuthMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext
    let authenticator: TokenAuthenticator
    let signer: RegistryTokenSigner

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization] {
            do {
                context.grant = try await grant(header)
            } catch let error as DomainError {
                context.refusal = error.kind == .unauthenticated ? "invalid credentials: \(error.message)" : error.message
            }
        }
        return try await next(request, context)
    }

    func grant(_ header: String) async throws -> RegistryGrant {
        guard let (scheme, value) = parseAuthorization(header) else { throw DomainError.invalidToken }
        switch scheme {
        case "basic":
            guard let (_, password) = parseBasicCredentials(value) else { throw DomainError.invalidToken }
            return RegistryGrant(caller: try await authenticator.authenticate(secret: password), access: nil, catalog: true)
        case "bearer" where value.hasPrefix("ddreg."):
            guard let grant = signer.verify(value), try await authenticator.stillActive(tokenId: grant.caller.tokenId) else {
                throw DomainError.invalidToken
            }
            return grant
        case "bearer":
            return RegistryGrant(caller: try await authenticator.authenticate(secret: value), access: nil, catalog: true)
        default:
            throw DomainError.invalidToken
        }
    }
}

extension RegistryRoutes {
    func challenge(_ request: Request, scope: String?, error: String? = nil) -> HTTPFields {
        let base = publicURL ?? "http://\(request.head.authority ?? "127.0.0.1")"
        var value = #"Bearer realm="\#(base)/v2/token",service="\#(Self.service)""#
        if let scope { value += #",scope="\#(scope)""# }
        if let error { value += #",error="\#(error)""# }
        return [.wwwAuthenticate: value]
    }

    /// The caller, or 401 with a challenge for `scope`.
    func requireGrant(_ request: Request, _ context: RegistryRequestContext, scope: String?) throws -> RegistryGrant {
        if let grant = context.grant { return grant }
        throw RegistryError(.unauthorized, "UNAUTHORIZED", context.refusal ?? "authentication required",
                            headers: challenge(request, scope: scope))
    }

    /// Whether the caller may see the project at all; anything else looks like a missing repository.
    func visibleProject(_ caller: Caller, _ projectId: String) async throws -> Bool {
        guard let project = try await projects.project(id: projectId) else { return false }
        return caller.canSee(project: project)
    }

    /// Authorises one action on one repository.
    func authorize(_ request: Request, _ context: RegistryRequestContext, name: String, action: RegistryAction) async throws -> RepositoryAccess {
        guard let parsed = RepositoryName(name) else { throw RegistryError.nameInvalid(name) }
        // Challenges ask for pull and push together: clients that keep one token per repository
        // (oras) then hold a token good for a whole push; the token endpoint still grants only
        // what the credential may do.
        let scope = "repository:\(name):\(action == .delete ? "delete" : "pull,push")"
        let grant = try requireGrant(request, context, scope: scope)
        let allowed: Bool
        if let access = grant.access {
            allowed = access[name]?.contains(action.rawValue) ?? false
        } else {
            allowed = grant.caller.registryActions.contains(action)
        }
        // An isolated build's token pushes into `<project>/build` only (and there only its own tag,
        // which the manifest route checks).
        if grant.caller.isolated, action == .push, parsed.repository != "build" {
            throw RegistryError.denied("an isolated build pushes only to its own build tag \(parsed.projectId)/build:<build id>, not to \(name)")
        }
        guard try await visibleProject(grant.caller, parsed.projectId) else {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "repository \(name) does not exist or is not visible to these credentials",
                                headers: challenge(request, scope: scope, error: "insufficient_scope"))
        }
        guard allowed else {
            if grant.access != nil, grant.caller.registryActions.contains(action) {
                // The bearer token lacks this scope but the credential has it. 403 with a challenge
                // makes clients that cache one token (oras) fetch a new one for this scope.
                throw RegistryError(.forbidden, "DENIED", "token lacks scope \(scope); request a token for it",
                                    headers: challenge(request, scope: scope, error: "insufficient_scope"))
            }
            throw RegistryError.denied("a \(grant.caller.kind.rawValue) token may not \(action.rawValue) \(name)")
        }
        await authenticator.recordUse(grant.caller)
        return RepositoryAccess(name: name, projectId: parsed.projectId, repository: parsed.repository, grant: grant)
    }

    func canPull(_ grant: RegistryGrant, name: String, projectId: String) async throws -> Bool {
        let allowed = grant.access.map { $0[name]?.contains("pull") ?? false } ?? grant.caller.registryActions.contains(.pull)
        guard allowed else { return false }
        return try await visibleProject(grant.caller, projectId)
    }
}
