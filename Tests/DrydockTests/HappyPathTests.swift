import DrydockServer
import PostgresNIO
import Foundation
import HTTPTypes
import Testing

@Suite("Every operation's happy path")
struct HappyPathTests {
    @Test("identity and organization")
    func identityAndOrganization() async throws {
        try await withTestServer { server in
            let me = try await server.request(.get, "/api/v1/me", token: server.ownerToken)
            #expect(me.status == .ok)
            let org = try #require(me.json["organization"] as? [String: Any])
            #expect(org["id"] as? String == server.organizationId)
            #expect(org["name"] as? String == "acme")
            #expect(org["plan"] as? String == "startup", "the test organization is bootstrapped on the Startup plan")
            #expect(me.json["role"] as? String == "owner")
            #expect((me.json["user"] as? [String: Any])?["email"] as? String == "owner@acme.test")
            #expect((me.json["token"] as? [String: Any])?["kind"] as? String == "user")

            let got = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)", token: server.ownerToken)
            #expect(got.status == .ok)
            #expect(got["name"] == "acme")

            let renamed = try await server.request(.patch, "/api/v1/orgs/\(server.organizationId)", token: server.ownerToken, json: #"{"name":"acme-corp"}"#)
            #expect(renamed.status == .ok)
            #expect(renamed["name"] == "acme-corp")
        }
    }

    @Test("members: add (with a first token), list, change role, remove (revoking their tokens)")
    func members() async throws {
        try await withTestServer { server in
            let org = "/api/v1/orgs/\(server.organizationId)/members"
            let added = try await server.request(.post, org, token: server.ownerToken, json: #"{"email":"Dev@Acme.test","role":"member"}"#)
            #expect(added.status == .created, "\(added.text)")
            let member = try #require(added.json["member"] as? [String: Any])
            let user = try #require(member["user"] as? [String: Any])
            #expect(user["email"] as? String == "dev@acme.test")
            let userId = try #require(user["id"] as? String)
            let memberToken = try #require(added["token"])
            #expect(memberToken.hasPrefix("ddu_"))

            let whoami = try await server.request(.get, "/api/v1/me", token: memberToken)
            #expect(whoami.json["role"] as? String == "member")

            let list = try await server.request(.get, org, token: server.ownerToken)
            #expect(list.status == .ok)
            #expect(list.items.count == 2)

            let again = try await server.request(.post, org, token: server.ownerToken, json: #"{"email":"dev@acme.test"}"#)
            #expect(again.status == .conflict)

            let promoted = try await server.request(.patch, "\(org)/\(userId)", token: server.ownerToken, json: #"{"role":"admin"}"#)
            #expect(promoted.status == .ok)
            #expect(promoted["role"] == "admin")

            let removed = try await server.request(.delete, "\(org)/\(userId)", token: server.ownerToken)
            #expect(removed.status == .noContent)
            let after = try await server.request(.get, "/api/v1/me", token: memberToken)
            #expect(after.status == .unauthorized)
        }
    }

    @Test("the last owner cannot be removed or demoted")
    func lastOwner() async throws {
        try await withTestServer { server in
            let me = try await server.request(.get, "/api/v1/me", token: server.ownerToken)
            let ownerId = try #require((me.json["user"] as? [String: Any])?["id"] as? String)
            let path = "/api/v1/orgs/\(server.organizationId)/members/\(ownerId)"
            let demote = try await server.request(.patch, path, token: server.ownerToken, json: #"{"role":"member"}"#)
            #expect(demote.status == .conflict)
            let remove = try await server.request(.delete, path, token: server.ownerToken)
            #expect(remove.status == .conflict)
        }
    }

    @Test("projects: create with defaults, get, list with cursor pagination, update, delete")
    func projects() async throws {
        try await withTestServer { server in
            let created = try await server.request(.post, "/api/v1/projects", token: server.ownerToken, json: #"{"name":"web"}"#)
            #expect(created.status == .created)
            let id = try #require(created["id"])
            #expect(id.count == 16)
            let policy = try #require(created.json["cachePolicy"] as? [String: Any])
            #expect(policy["keepGigabytes"] as? Int == 50)
            #expect(policy["keepDays"] as? Int == 14)
            #expect(created["organizationId"] == server.organizationId)

            let duplicate = try await server.request(.post, "/api/v1/projects", token: server.ownerToken, json: #"{"name":"web"}"#)
            #expect(duplicate.status == .conflict)

            let got = try await server.request(.get, "/api/v1/projects/\(id)", token: server.ownerToken)
            #expect(got.status == .ok)
            #expect(got["name"] == "web")

            var ids = [id]
            for n in 0..<4 { ids.append(try await server.createProject("svc-\(n)")) }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = cursor.map { "&cursor=\($0)" } ?? ""
                let page = try await server.request(.get, "/api/v1/projects?limit=2\(query)", token: server.ownerToken)
                #expect(page.status == .ok)
                seen += page.items.compactMap { $0["id"] as? String }
                cursor = page["nextCursor"]
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen == ids.reversed(), "newest first, each exactly once")

            let updated = try await server.request(
                .patch, "/api/v1/projects/\(id)", token: server.ownerToken,
                json: #"{"name":"web-app","cachePolicy":{"keepGigabytes":500,"keepDays":30}}"#)
            #expect(updated.status == .ok)
            #expect(updated["name"] == "web-app")
            #expect((updated.json["cachePolicy"] as? [String: Any])?["keepGigabytes"] as? Int == 500)
            #expect((updated.json["cachePolicy"] as? [String: Any])?["keepDays"] as? Int == 30)

            let deleted = try await server.request(.delete, "/api/v1/projects/\(id)", token: server.ownerToken)
            #expect(deleted.status == .noContent)
            let gone = try await server.request(.get, "/api/v1/projects/\(id)", token: server.ownerToken)
            #expect(gone.status == .notFound)
        }
    }

    @Test("tokens: create each kind, secret shown once and stored only as a hash, list, get, revoke")
    func tokens() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("api")
            let kinds: [(String, String)] = [
                (#"{"name":"laptop"}"#, "ddu_"),
                (#"{"name":"automation","kind":"organization"}"#, "ddo_"),
                (#"{"name":"ci","projectId":"\#(project)"}"#, "ddp_"),
                (#"{"name":"pull","kind":"pull","projectId":"\#(project)"}"#, "ddr_"),
                (#"{"name":"builder","kind":"worker","expiresInSeconds":3600}"#, "ddw_"),
            ]
            var ids: [String] = []
            var secrets: [String] = []
            for (body, prefix) in kinds {
                let response = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: body)
                #expect(response.status == .created, "\(body): \(response.text)")
                let secret = try #require(response["token"])
                #expect(secret.hasPrefix(prefix))
                #expect(secret.count == 47)
                #expect(response["prefix"] == String(secret.prefix(8)))
                ids.append(try #require(response["id"]))
                secrets.append(secret)
            }
            let pull = try await server.request(.get, "/api/v1/tokens/\(ids[3])", token: server.ownerToken)
            #expect(pull["expiresAt"] != nil, "pull tokens are short-lived by default")
            #expect(pull["token"] == nil, "metadata never carries the secret")

            // Only hashes are stored.
            let stored = try await ServerRunnerHelpers.column(server.database, "SELECT string_agg(encode(secret_hash, 'hex'), ',') FROM tokens")
            for secret in secrets { #expect(!stored.contains(secret)) }

            let list = try await server.request(.get, "/api/v1/tokens", token: server.ownerToken)
            #expect(list.status == .ok)
            #expect(list.items.count == 6, "five new tokens and the bootstrap token")
            #expect(!list.text.contains(secrets[0]))
            let byProject = try await server.request(.get, "/api/v1/tokens?projectId=\(project)", token: server.ownerToken)
            #expect(byProject.items.count == 2)
            let byKind = try await server.request(.get, "/api/v1/tokens?kind=worker", token: server.ownerToken)
            #expect(byKind.items.count == 1)

            let used = try await server.request(.get, "/api/v1/projects/\(project)", token: secrets[2])
            #expect(used.status == .ok)
            let afterUse = try await server.request(.get, "/api/v1/tokens/\(ids[2])", token: server.ownerToken)
            #expect(afterUse["lastUsedAt"] != nil)

            let revoked = try await server.request(.delete, "/api/v1/tokens/\(ids[2])", token: server.ownerToken)
            #expect(revoked.status == .noContent)
            let rejected = try await server.request(.get, "/api/v1/projects/\(project)", token: secrets[2])
            #expect(rejected.status == .unauthorized)
            let listed = try await server.request(.get, "/api/v1/tokens?includeRevoked=true", token: server.ownerToken)
            #expect(listed.items.contains { $0["id"] as? String == ids[2] && $0["revokedAt"] != nil })
            let active = try await server.request(.get, "/api/v1/tokens", token: server.ownerToken)
            #expect(!active.items.contains { $0["id"] as? String == ids[2] })
        }
    }

    @Test("build tokens cannot be created through the API; project tokens need a project")
    func tokenRules() async throws {
        try await withTestServer { server in
            let build = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: #"{"name":"b","kind":"build"}"#)
            #expect(build.status == .badRequest)
            let project = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: #"{"name":"p","kind":"project"}"#)
            #expect(project.status == .badRequest)
            #expect((project.json["errors"] as? [[String: Any]])?.first?["field"] as? String == "projectId")
        }
    }

    @Test("health, readiness, metrics and the served contract")
    func operationalEndpoints() async throws {
        try await withTestServer { server in
            let health = try await server.request(.get, "/healthz")
            #expect(health.status == .ok)
            let ready = try await server.request(.get, "/readyz")
            #expect(ready.status == .ok)
            _ = try await server.request(.get, "/api/v1/projects", token: server.ownerToken)
            let metrics = try await server.request(.get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains("hb_requests"))
            #expect(metrics.text.contains("/api/v1/projects"))
            let spec = try await server.request(.get, "/openapi.yaml")
            #expect(spec.status == .ok)
            let onDisk = try String(contentsOf: packageRoot.appendingPathComponent("openapi.yaml"), encoding: .utf8)
            #expect(spec.text == onDisk)
        }
    }
}

enum ServerRunnerHelpers {
    static func column(_ database: DrydockServer.DatabaseURL, _ sql: String) async throws -> String {
        try await DrydockServer.ServerRunner.withDatabase(database, logger: TestDatabase.logger) { client in
            for try await value in try await client.query(.init(unsafeSQL: sql), logger: TestDatabase.logger).decode(String?.self) {
                return value ?? ""
            }
            return ""
        }
    }
}
