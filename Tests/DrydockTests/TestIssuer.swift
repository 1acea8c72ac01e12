import Crypto
import DrydockServer
import DrydockProcess
import Foundation
import Hummingbird
import HummingbirdTesting
import JWTKit
import Synchronization
import Testing

/// An OIDC issuer inside the test suite: discovery documents and JWKS for several issuers under
/// one HTTP server (`/github`, `/gitlab`, `/circleci/org/<id>`, `/generic`, `/unconfigured`), RSA
/// and EC keys that tests publish and rotate, and a GitHub Actions-style ID token request
/// endpoint (`/actions/token?audience=…`).
final class TestIssuer: Sendable {
    struct Published: Sendable {
        var keys: [[String: String]] = []
        var jwksFetches = 0
    }

    let signers: JWTKeyCollection
    let rsaPEMs: [String: String]
    let ecPublic: [String: (x: String, y: String)]
    let state = Mutex(Published())
    /// What the GitHub Actions endpoint puts in the tokens it hands out (besides aud, iss and times).
    let actionsClaims = Mutex<[String: ClaimValue]>([:])
    static let actionsRequestToken = "gh-request-token-not-a-secret"

    private init(signers: JWTKeyCollection, rsaPEMs: [String: String], ecPublic: [String: (x: String, y: String)]) {
        self.signers = signers
        self.rsaPEMs = rsaPEMs
        self.ecPublic = ecPublic
    }

    /// Keys `rsa-1`, `rsa-2`, `rsa-3` (RS256) and `ec-1` (ES256); only `rsa-1` and `ec-1` are published at first.
    static func make() async throws -> TestIssuer {
        let signers = JWTKeyCollection()
        var pems: [String: String] = [:]
        for kid in ["rsa-1", "rsa-2", "rsa-3"] {
            let generated = try await runTool("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            try #require(generated.status == 0, "openssl genpkey: \(generated.stderr)")
            let key = try Insecure.RSA.PrivateKey(pem: generated.stdout)
            await signers.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
            pems[kid] = generated.stdout
        }
        let ec = ES256PrivateKey()
        await signers.add(ecdsa: ec, kid: "ec-1")
        let parameters = try #require(ec.publicKey.parameters)
        let issuer = TestIssuer(signers: signers, rsaPEMs: pems, ecPublic: ["ec-1": (parameters.x, parameters.y)])
        try issuer.publish("rsa-1")
        try issuer.publish("ec-1")
        return issuer
    }

    func publish(_ kid: String) throws {
        var jwk: [String: String]
        if let pem = rsaPEMs[kid] {
            let primitives = try Insecure.RSA.PrivateKey(pem: pem).publicKey.getKeyPrimitives()
            jwk = ["kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                   "n": Self.base64url(primitives.modulus), "e": Self.base64url(primitives.publicExponent)]
        } else if let point = ecPublic[kid] {
            jwk = ["kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": point.x, "y": point.y]
        } else {
            throw CLITestError("no key \(kid)")
        }
        state.withLock { $0.keys.append(jwk) }
    }

    var jwksFetches: Int { state.withLock { $0.jwksFetches } }

    /// The public key of an RSA key as PEM (for the HS256-with-the-public-key attack).
    func publicPEM(_ kid: String) throws -> String {
        try Insecure.RSA.PrivateKey(pem: try #require(rsaPEMs[kid])).publicKey.pemRepresentation
    }

    /// A signed ID token: `claims` plus iss, aud and times (exp in `lifetime` seconds) unless given.
    func token(issuer: String, audience: String, kid: String = "rsa-1", lifetime: TimeInterval = 300,
               _ claims: [String: ClaimValue]) async throws -> String {
        let now = Date().timeIntervalSince1970.rounded(.down)
        var values: [String: ClaimValue] = ["iss": .string(issuer), "aud": .string(audience), "iat": .number(now),
                                            "nbf": .number(now), "exp": .number(now + lifetime), "sub": .string("test")]
        for (key, value) in claims { values[key] = value }
        return try await signers.sign(IDTokenClaims(values), kid: JWKIdentifier(string: kid))
    }

    /// Runs the issuer on a port of its own for `body`, with its base URL.
    func serve<T: Sendable>(_ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        let discovery: @Sendable (Request, BasicRequestContext, String) throws -> Response = { request, _, path in
            let base = "http://\(request.head.authority ?? "127.0.0.1")"
            let json = try JSONSerialization.data(withJSONObject: ["issuer": base + path, "jwks_uri": base + path + "/jwks"])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        let jwks: @Sendable () throws -> Response = { [self] in
            let keys = self.state.withLock { state in
                state.jwksFetches += 1
                return state.keys
            }
            let json = try JSONSerialization.data(withJSONObject: ["keys": keys])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        router.get("/{issuer}/.well-known/openid-configuration") { request, context in
            try discovery(request, context, "/" + (context.parameters.get("issuer") ?? ""))
        }
        router.get("/{issuer}/jwks") { _, _ in try jwks() }
        router.get("/circleci/org/{org}/.well-known/openid-configuration") { request, context in
            try discovery(request, context, "/circleci/org/" + (context.parameters.get("org") ?? ""))
        }
        router.get("/circleci/org/{org}/jwks") { _, _ in try jwks() }
        // GitHub Actions: `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the request token as a bearer.
        router.get("/actions/token") { [self] request, _ -> Response in
            guard request.headers[.authorization] == "bearer \(Self.actionsRequestToken)" else { return Response(status: .unauthorized) }
            guard let audience = request.uri.queryParameters.get("audience") else { return Response(status: .badRequest) }
            let base = "http://\(request.head.authority ?? "127.0.0.1")"
            let token = try await self.token(issuer: base + "/github", audience: audience, actionsClaims.withLock { $0 })
            let json = try JSONSerialization.data(withJSONObject: ["count": 1, "value": token])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        return try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(try #require(client.port))")
        }
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

extension OIDCSettings {
    /// The test issuer's issuers as the server's configuration.
    static func testIssuers(_ base: String, audience: String = "https://drydock.test") -> OIDCSettings {
        OIDCSettings(audience: audience, issuers: [
            .github: [base + "/github"], .gitlab: [base + "/gitlab"], .circleci: [base + "/circleci"],
            .buildkite: [base + "/buildkite"], .oidc: [base + "/generic"],
        ])
    }
}
