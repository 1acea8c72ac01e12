import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOFoundationCompat

/// Why an ID token was refused, in words a CI user can act on (answered 401).
public struct OIDCRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A claim value of an ID token, kept as sent.
public enum ClaimValue: Sendable, Equatable, Codable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([ClaimValue])
    case object([String: ClaimValue])
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([ClaimValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: ClaimValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let v): try container.encode(v)
        case .number(let v): try container.encode(v)
        case .bool(let v): try container.encode(v)
        case .array(let v): try container.encode(v)
        case .object(let v): try container.encode(v)
        case .null: try container.encodeNil()
        }
    }

    /// The value as trust conditions compare it: strings as they are, numbers without a
    /// fractional part as integers, booleans as `true`/`false`.
    public var text: String? {
        switch self {
        case .string(let v): v
        case .number(let v): v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        case .bool(let v): v ? "true" : "false"
        default: nil
        }
    }

    var number: Double? {
        if case .number(let v) = self { return v }
        return nil
    }
}

/// Every claim of a verified ID token.
public struct IDTokenClaims: Sendable, JWTPayload {
    public var values: [String: ClaimValue]

    public init(_ values: [String: ClaimValue]) { self.values = values }

    public init(from decoder: any Decoder) throws {
        values = try decoder.singleValueContainer().decode([String: ClaimValue].self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    /// Time claims are checked by `OIDCVerifier` itself, with leeway and reasons.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}

    public subscript(_ name: String) -> String? { values[name]?.text }

    var audiences: [String] {
        switch values["aud"] {
        case .string(let v): [v]
        case .array(let items): items.compactMap(\.text)
        default: []
        }
    }
}

/// A verified ID token: its issuer's provider and its claims.
public struct VerifiedIDToken: Sendable {
    public let provider: TrustProvider
    public let issuer: String
    public let claims: IDTokenClaims
    public let expiresAt: Date
    public let issuedAt: Date?
}

/// Verifies CI providers' OIDC ID tokens: the signature against the issuer's published keys
/// (found through its `/.well-known/openid-configuration`, kept an hour, fetched again at once when
/// a token names a key not seen yet, but at most once a minute per issuer), the issuer among
/// those configured, the audience, and `exp`, `nbf` and `iat` with a minute of leeway. RS256 and
/// ES256 only.
public actor OIDCVerifier {
    let settings: OIDCSettings
    let audience: String
    let logger: Logger
    let client: HTTPClient
    let keysLifetime: TimeInterval
    let refetchInterval: TimeInterval
    static let leeway: TimeInterval = 60
    static let acceptedAlgorithms: Set<String> = ["RS256", "ES256"]

    struct IssuerKeys {
        var jwks: JWKS
        var fetchedAt: Date
    }
    private var keys: [String: IssuerKeys] = [:]
    private var lastFetchAttempt: [String: Date] = [:]
    private var lastUnknownKeyFetch: [String: Date] = [:]
    private var inFlight: [String: Task<JWKS, any Error>] = [:]

    public init(settings: OIDCSettings, audience: String, logger: Logger, client: HTTPClient = .shared,
                keysLifetime: TimeInterval = 3600, refetchInterval: TimeInterval = 60) {
        self.settings = settings
        self.audience = audience
        self.logger = logger
        self.client = client
        self.keysLifetime = keysLifetime
        self.refetchInterval = refetchInterval
    }

    public func verify(_ token: String, now: Date = Date()) async throws -> VerifiedIDToken {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Self.base64url(parts[0]), let payloadData = Self.base64url(parts[1]),
              let header = try? JSONDecoder().decode([String: ClaimValue].self, from: headerData),
              let unverified = try? JSONDecoder().decode(IDTokenClaims.self, from: payloadData)
        else { throw OIDCRefusal("the ID token is not a JWT (three base64url parts: header, claims, signature)") }
        let alg = header["alg"]?.text ?? ""
        guard Self.acceptedAlgorithms.contains(alg) else {
            if alg.lowercased() == "none" { throw OIDCRefusal("the ID token is not signed (alg none); only RS256 and ES256 tokens are accepted") }
            throw OIDCRefusal("the ID token is signed with \(alg.isEmpty ? "no algorithm" : alg); only RS256 and ES256 are accepted")
        }
        guard let issuer = unverified["iss"], !issuer.isEmpty else { throw OIDCRefusal("the ID token has no issuer (iss)") }
        guard let provider = settings.provider(ofIssuer: issuer) else {
            throw OIDCRefusal("the ID token's issuer '\(issuer)' is not one this server accepts (its operator can add it to DRYDOCK_OIDC_ISSUERS)")
        }
        let kid = header["kid"]?.text
        let jwks = try await keys(issuer: issuer, kid: kid, now: now)
        let collection = JWTKeyCollection()
        do {
            if let kid {
                guard let matching = jwks.find(identifier: kid), !matching.isEmpty else {
                    throw OIDCRefusal("the ID token was signed with key '\(kid)', which \(issuer) does not publish")
                }
                for jwk in matching { _ = try? await collection.add(jwk: jwk) }
            } else {
                _ = try await collection.add(jwks: jwks)
            }
        } catch let refusal as OIDCRefusal {
            throw refusal
        } catch {
            throw OIDCRefusal("the keys \(issuer) publishes could not be read: \(error)")
        }
        let claims: IDTokenClaims
        do {
            claims = try await collection.verify(token, as: IDTokenClaims.self, iteratingKeys: kid == nil)
        } catch {
            throw OIDCRefusal("the ID token's signature does not verify against the keys \(issuer) publishes")
        }
        // The claims that were signed, not the ones read before.
        guard claims["iss"] == issuer else { throw OIDCRefusal("the ID token's issuer does not match its signature") }
        let audiences = claims.audiences
        if !audiences.contains(audience) {
            // CircleCI's default audience is the organization's id (the last component of its issuer).
            let circleOrg = provider == .circleci ? issuer.split(separator: "/").last.map(String.init) : nil
            if circleOrg == nil || !audiences.contains(circleOrg ?? "") {
                let shown = audiences.isEmpty ? "none" : audiences.map { "'\($0)'" }.joined(separator: ", ")
                throw OIDCRefusal("the ID token's audience is \(shown), not this server's '\(audience)': ask your CI for a token with audience '\(audience)'")
            }
        }
        guard let exp = claims.values["exp"]?.number else { throw OIDCRefusal("the ID token has no expiry (exp)") }
        let expires = Date(timeIntervalSince1970: exp)
        let format = ISO8601DateFormatter()
        if now.timeIntervalSince(expires) > Self.leeway {
            throw OIDCRefusal("the ID token expired at \(format.string(from: expires)); ask your CI for a fresh one")
        }
        if let nbf = claims.values["nbf"]?.number, Date(timeIntervalSince1970: nbf).timeIntervalSince(now) > Self.leeway {
            throw OIDCRefusal("the ID token is not valid before \(format.string(from: Date(timeIntervalSince1970: nbf))); check the clocks of the CI runner and this server")
        }
        let issuedAt = claims.values["iat"]?.number.map { Date(timeIntervalSince1970: $0) }
        if let issuedAt, issuedAt.timeIntervalSince(now) > Self.leeway {
            throw OIDCRefusal("the ID token was issued in the future (\(format.string(from: issuedAt))); check the clocks of the CI runner and this server")
        }
        return VerifiedIDToken(provider: provider, issuer: issuer, claims: claims, expiresAt: expires, issuedAt: issuedAt)
    }

    /// The issuer's keys: cached for `keysLifetime`, fetched again when `kid` is not among them
    /// (at most once per `refetchInterval`).
    func keys(issuer: String, kid: String?, now: Date) async throws -> JWKS {
        if let cached = keys[issuer], now.timeIntervalSince(cached.fetchedAt) < keysLifetime {
            let known = kid.map { cached.jwks.find(identifier: $0)?.isEmpty == false } ?? true
            if known { return cached.jwks }
            // A key not seen yet: fetched again at once, but such refetches at most once per interval.
            if let last = lastUnknownKeyFetch[issuer], now.timeIntervalSince(last) < refetchInterval { return cached.jwks }
            lastUnknownKeyFetch[issuer] = now
        }
        // Requests arriving while the keys are being fetched wait for that one fetch.
        if let running = inFlight[issuer] { return try await running.value }
        if keys[issuer] == nil, let last = lastFetchAttempt[issuer], now.timeIntervalSince(last) < 5 {
            // An issuer that just failed is not asked again on every request.
            throw OIDCRefusal("the keys of \(issuer) could not be fetched a moment ago; try again shortly")
        }
        lastFetchAttempt[issuer] = now
        let task = Task { [client, logger] in try await Self.fetchKeys(issuer: issuer, client: client, logger: logger) }
        inFlight[issuer] = task
        defer { inFlight[issuer] = nil }
        do {
            let jwks = try await task.value
            keys[issuer] = IssuerKeys(jwks: jwks, fetchedAt: now)
            return jwks
        } catch {
            if let cached = keys[issuer] { return cached.jwks }
            throw error
        }
    }

    static func fetchKeys(issuer: String, client: HTTPClient, logger: Logger) async throws -> JWKS {
        struct Discovery: Decodable {
            var issuer: String
            var jwks_uri: String
        }
        let discoveryURL = issuer + "/.well-known/openid-configuration"
        let discovery: Discovery
        do {
            discovery = try JSONDecoder().decode(Discovery.self, from: try await get(discoveryURL, client: client))
        } catch let refusal as OIDCRefusal {
            throw refusal
        } catch {
            throw OIDCRefusal("\(discoveryURL) is not an OpenID discovery document with issuer and jwks_uri")
        }
        guard OIDCSettings.normalize(discovery.issuer) == issuer else {
            throw OIDCRefusal("\(discoveryURL) names issuer '\(discovery.issuer)', not '\(issuer)'")
        }
        do {
            let jwks = try JSONDecoder().decode(JWKS.self, from: try await get(discovery.jwks_uri, client: client))
            logger.info("fetched OIDC issuer keys", metadata: ["issuer": "\(issuer)", "keys": "\(jwks.keys.count)"])
            return jwks
        } catch let refusal as OIDCRefusal {
            throw refusal
        } catch {
            throw OIDCRefusal("\(discovery.jwks_uri) (the keys of \(issuer)) is not a JSON Web Key Set")
        }
    }

    static func get(_ url: String, client: HTTPClient) async throws -> Data {
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await client.execute(request, timeout: .seconds(10))
            guard response.status == .ok else {
                throw OIDCRefusal("\(url) answered \(response.status.code); the issuer's keys cannot be checked")
            }
            return Data(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch let refusal as OIDCRefusal {
            throw refusal
        } catch {
            throw OIDCRefusal("\(url) could not be reached (\(error)); the issuer's keys cannot be checked")
        }
    }

    static func base64url(_ part: Substring) -> Data? {
        var s = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}
