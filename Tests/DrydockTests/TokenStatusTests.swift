import DrydockServer
import Foundation
import Testing

@Suite("Token status and last use")
struct TokenStatusTests {
    @Test("an expired token lists as expired, and a refused request does not move LAST USED; an allowed one does")
    func expiredAndLastUsed() async throws {
        try await withTestServer { server in
            let (usedId, used) = try await server.createToken(#"{"name":"used"}"#)
            let (expiredId, expired) = try await server.createToken(#"{"name":"expired"}"#)
            #expect(try await server.request(.get, "/api/v1/projects", token: used).status == .ok)
            try await TestDatabase.execute(server.database, "UPDATE tokens SET expires_at = now() - interval '1 minute' WHERE id = \(expiredId)")
            #expect(try await server.request(.get, "/api/v1/projects", token: expired).status == .unauthorized)
            let basic = try await server.registry(.get, "/v2/\(try await server.createProject("web"))/app/tags/list", token: expired)
            #expect(basic.status == .unauthorized)

            let list = try await server.request(.get, "/api/v1/tokens", token: server.ownerToken)
            let tokens = try list.decoded(Schemas.TokenPage.self).items
            let usedRow = try #require(tokens.first { $0.id == usedId })
            let expiredRow = try #require(tokens.first { $0.id == expiredId })
            #expect(usedRow.lastUsedAt != nil, "an allowed request records its use")
            #expect(expiredRow.lastUsedAt == nil, "refused requests moved LAST USED: \(expiredRow)")

            let cli = try await runExecutable("drydock", ["tokens", "list", "--api-url", server.baseURL, "--token", server.ownerToken],
                                              environment: ["HOME": "/tmp"])
            #expect(cli.status == 0, "\(cli.stderr)")
            let line = try #require(cli.stdout.split(separator: "\n").first { $0.contains(expiredId) })
            #expect(line.hasSuffix("expired"), "\(line)")
            let usedLine = try #require(cli.stdout.split(separator: "\n").first { $0.contains(usedId) })
            #expect(usedLine.hasSuffix("active"))
        }
    }
}
