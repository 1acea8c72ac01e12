import Crypto
import Foundation
import Logging
import PostgresNIO

/// Signed-in browsers. A session is a random id in an `HttpOnly` cookie; PostgreSQL keeps only
/// the id's SHA-256, the token the session acts as, and when it ends. Every request resolves the
/// session to that token's current grant, so a revoked or expired token, or a member who left,
/// ends the session at once, on every replica.
struct DashboardSessions: Sendable {
    let client: Database
    let logger: Logger
    /// How long a session lasts (the token's own expiry still applies).
    var lifetime: Duration = .seconds(12 * 3600)

    static let cookieName = "drydock_session"

    /// 256 random bits, base64url.
    static func newSessionId() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func hash(_ sessionId: String) -> ByteBuffer {
        ByteBuffer(bytes: Array(SHA256.hash(data: Data("drydock-session:\(sessionId)".utf8))))
    }

    /// The form token that proves a POST came from a page of this session: derived from the
    /// session id, which only the cookie holds.
    static func csrfToken(sessionId: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("csrf".utf8), using: SymmetricKey(data: Data(sessionId.utf8)))
        return Data(mac).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Starts a session for a token; drops sessions that have ended on the way.
    func start(tokenId: String) async throws -> String {
        let id = Self.newSessionId()
        let seconds = Int(lifetime.components.seconds)
        try await client.query(
            """
            WITH gone AS (DELETE FROM dashboard_sessions WHERE expires_at < now())
            INSERT INTO dashboard_sessions (id_hash, token_id, expires_at)
            VALUES (\(Self.hash(id)), \(tokenId), now() + make_interval(secs => \(seconds)))
            """, logger: logger)
        return id
    }

    /// The grant of the token behind a live session, as `TokenStore.grant(forSecret:)` reads it.
    func grant(sessionId: String) async throws -> TokenGrant? {
        guard !sessionId.isEmpty, sessionId.utf8.count <= 128 else { return nil }
        let rows = try await client.query(
            """
            SELECT \(unescaped: PostgresTokenStore.grantColumns)
            FROM dashboard_sessions s
            JOIN tokens t ON t.id = s.token_id
            LEFT JOIN memberships m ON m.organization_id = t.organization_id AND m.user_id = t.user_id
            WHERE s.id_hash = \(Self.hash(sessionId)) AND s.expires_at > now()
            """, logger: logger)
        for try await row in rows.decode(PostgresTokenStore.GrantRow.self) { return PostgresTokenStore.grant(row) }
        return nil
    }

    func end(sessionId: String) async throws {
        try await client.query("DELETE FROM dashboard_sessions WHERE id_hash = \(Self.hash(sessionId))", logger: logger)
    }
}
