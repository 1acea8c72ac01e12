import Foundation
import Logging

/// Turns a presented secret into a `Caller`, or says why not. Grants are cached for a few
/// seconds so a busy CI does not cost a database round trip per request; any change that can
/// take a grant away (revocation, role change, removal) empties the cache, and expiry is checked
/// on every use.
public final class TokenAuthenticator: Sendable {
    let tokens: any TokenStore
    let logger: Logger
    private let grants: ExpiringCache<String, TokenGrant?>
    private let active: ExpiringCache<String, Bool>
    /// Tokens whose last use was written in the last minute.
    private let used = ExpiringCache<String, Bool>(ttl: .seconds(60), capacity: 10_000)

    public init(tokens: any TokenStore, logger: Logger, ttl: Duration = .seconds(5)) {
        self.tokens = tokens
        self.logger = logger
        self.grants = ExpiringCache(ttl: ttl, capacity: 10_000)
        self.active = ExpiringCache(ttl: ttl, capacity: 10_000)
    }

    /// Whether the token behind a registry bearer token still grants anything. The bearer token
    /// itself is signed and good for minutes; this makes a revocation (or a member's removal)
    /// reach it as fast as it reaches the token: at once on this server, within `ttl` elsewhere.
    public func stillActive(tokenId: String) async throws -> Bool {
        try await active.value(for: tokenId) { [tokens] in try await tokens.isActive(tokenId: tokenId) }
    }

    public func authenticate(authorization: String?) async throws -> Caller {
        guard let authorization, !authorization.isEmpty else { throw DomainError.unauthenticated }
        guard let (scheme, secret) = parseAuthorization(authorization), scheme == "bearer" else {
            throw DomainError(.unauthenticated, code: "unauthenticated",
                            "use 'Authorization: Bearer <token>' with a Drydock token")
        }
        return try await authenticate(secret: secret)
    }

    public func authenticate(secret: String) async throws -> Caller {
        guard TokenSecret.looksValid(secret) else { throw DomainError.invalidToken }
        let grant = try await grants.value(for: secret) { [tokens] in try await tokens.grant(forSecret: secret) }
        guard let grant else { throw DomainError.invalidToken }
        return try Self.caller(for: grant)
    }

    /// What a token's grant lets its bearer be: the one rule for secrets and dashboard sessions.
    static func caller(for grant: TokenGrant) throws -> Caller {
        guard !grant.revoked else { throw DomainError.invalidToken }
        if let expires = grant.expiresAt, expires <= Date() { throw DomainError.invalidToken }
        guard let organizationId = grant.organizationId else {
            // Operator-level credentials: a server-wide worker token serves every organization.
            guard grant.kind == .worker || grant.kind == .agent else { throw DomainError.invalidToken }
            return Caller(tokenId: grant.tokenId, kind: grant.kind, organizationId: "", projectId: nil, userId: nil, role: nil,
                          isServerWide: true)
        }
        if grant.kind == .user, grant.role == nil {
            throw DomainError.invalidToken  // the user has left the organization
        }
        if grant.kind == .ci, grant.projectIds?.isEmpty ?? true { throw DomainError.invalidToken }
        return Caller(tokenId: grant.tokenId, kind: grant.kind, organizationId: organizationId,
                      projectId: grant.projectId, userId: grant.userId, role: grant.role,
                      projectIds: grant.projectIds, isolated: grant.isolated, buildTag: grant.buildTag)
    }

    /// Records that a token was used for a request it was allowed to make (a refused one does not
    /// count): at most one write per token a minute on this server.
    public func recordUse(_ caller: Caller) async {
        // A build token lives for one job, which says when it was used.
        if caller.kind == .build { return }
        let tokenId = caller.tokenId
        _ = try? await used.value(for: tokenId) { [tokens] in
            try await tokens.touch(tokenId: tokenId)
            return true
        }
    }

    /// Other replicas are told through this (set by the composition root).
    let broadcast = CacheBroadcast()

    /// Called after anything that can narrow or remove a grant: here at once, on every other
    /// replica when its notification arrives.
    public func invalidate() {
        invalidateHere()
        broadcast.publish("invalidate:tokens")
    }

    func invalidateHere() {
        grants.removeAll()
        active.removeAll()
    }

    /// What another replica's broadcast asks of this one.
    func handle(_ message: String) {
        if message == "invalidate:tokens" {
            invalidateHere()
        } else if message.hasPrefix("invalidate:token:") {
            invalidate(tokenId: String(message.dropFirst("invalidate:token:".count)))
        }
    }

    /// A token just created in a transaction that committed (a job's build token): its first use
    /// needs no lookup.
    func remember(secret: String, grant: TokenGrant) {
        grants.insert(grant, for: secret)
    }

    /// Drops one token's grant from this server's cache (a job's build token when the job ends;
    /// the other grants stay). Other servers hear of it from the revocation's own NOTIFY
    /// (`PostgresTokenStore.revokeBuildToken`).
    public func invalidate(tokenId: String) {
        grants.removeAll { $0?.tokenId == tokenId }
        active.remove(tokenId)
    }
}
