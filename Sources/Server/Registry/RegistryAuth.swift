import Crypto
import Foundation

/// What a registry request may do. Basic auth (any username, a Drydock token as password) gives
/// the token's own rights; a bearer token from `/v2/token` gives the scopes granted then.
public struct RegistryGrant: Sendable {
    public let caller: Caller
    /// Repository → actions, for bearer registry tokens; nil means "whatever the caller may".
    let access: [String: Set<String>]?
    let catalog: Bool
}

enum RegistryAction: String {
    case pull, push, delete
}

/// Signs and verifies the short-lived bearer tokens of the docker token flow: an HMAC-SHA256 over
/// the granted scopes and the caller, with a key kept in the data directory (so tokens survive a
/// restart) and readable only by the server.
public struct RegistryTokenSigner: Sendable {
    let keys: ServerKeys
    static let lifetime: TimeInterval = 300
    /// Tokens already verified, with their expiry: a client presents the same token on every
    /// request of a push or pull, and checking it once is enough.
    private let verified = ExpiringCache<String, Verified>(ttl: .seconds(60), capacity: 10_000)

    struct Verified: Sendable {
        let grant: RegistryGrant
        let expires: Double
    }

    public init(keys: ServerKeys) {
        self.keys = keys
    }

    struct Payload: Codable {
        var tid: String
        var kind: String
        var org: String
        var prj: String?
        var uid: String?
        var role: String?
        var acc: [String: [String]]
        var cat: Bool
        var exp: Double
        var prjs: [String]? = nil
        var iso: Bool? = nil
        var bid: String? = nil
    }

    func issue(caller: Caller, access: [String: Set<String>], catalog: Bool) throws -> (token: String, expiresIn: Int) {
        let payload = Payload(
            tid: caller.tokenId, kind: caller.kind.rawValue, org: caller.organizationId, prj: caller.projectId,
            uid: caller.userId, role: caller.role?.rawValue, acc: access.mapValues { $0.sorted() }, cat: catalog,
            exp: Date().addingTimeInterval(Self.lifetime).timeIntervalSince1970,
            prjs: caller.projectIds, iso: caller.isolated ? true : nil, bid: caller.buildTag)
        let body = Self.base64url(try JSONEncoder().encode(payload))
        let mac = Self.base64url(Data(HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: try keys.current(.registryToken))))
        return ("ddreg.\(body).\(mac)", Int(Self.lifetime))
    }

    func verify(_ token: String) -> RegistryGrant? {
        let now = Date().timeIntervalSince1970
        if let known = verified.cachedValue(for: token) { return known.expires > now ? known.grant : nil }
        guard let fresh = verifySignature(token), fresh.expires > now else { return nil }
        verified.insert(fresh, for: token)
        return fresh.grant
    }

    private func verifySignature(_ token: String) -> Verified? {
        let parts = token.split(separator: ".")
        guard parts.count == 3, parts[0] == "ddreg", let mac = Self.unbase64url(String(parts[2])),
              keys.all(.registryToken).contains(where: { HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(parts[1].utf8), using: $0) }),
              let json = Self.unbase64url(String(parts[1])),
              let payload = try? JSONDecoder().decode(Payload.self, from: json),
              let kind = TokenKind(rawValue: payload.kind)
        else { return nil }
        let caller = Caller(tokenId: payload.tid, kind: kind, organizationId: payload.org, projectId: payload.prj,
                            userId: payload.uid, role: payload.role.flatMap(Role.init(rawValue:)),
                            projectIds: payload.prjs, isolated: payload.iso ?? false, buildTag: payload.bid)
        return Verified(grant: RegistryGrant(caller: caller, access: payload.acc.mapValues(Set.init), catalog: payload.cat),
                        expires: payload.exp)
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ string: String) -> Data? {
        var s = string.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}

extension Caller {
    /// Registry actions this kind of token may take on a project it can see.
    var registryActions: Set<RegistryAction> {
        switch kind {
        case .user, .organization: [.pull, .push, .delete]
        case .project, .build: [.pull, .push]
        // A CI token from an OIDC exchange pushes like a project token, unless it was granted for
        // untrusted code (a fork's pull request): then its builds push only to their own build
        // tags, through their build tokens, and it only pulls.
        case .ci: isolated ? [.pull] : [.pull, .push]
        case .pull: [.pull]
        case .worker, .agent, .registration: []
        }
    }
}
