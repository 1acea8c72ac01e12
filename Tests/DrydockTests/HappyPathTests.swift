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
            let caller = try me.decoded(Schemas.Caller.self)
            #expect(caller.organization.id == server.organizationId)
            #expect(caller.organization.name == "acme")
            #expect(caller.organization.plan == .startup, "the test organization is bootstrapped on the Startup plan")
            #expect(caller.role == .owner)
            #expect(caller.user?.email == "owner@acme.test")
            #expect(caller.token.kind == .user)

            let got = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)", token: server.ownerToken)
            #expect(got.status == .ok)
            #expect(try got.decoded(Schemas.Organization.self).name == "acme")

            let renamed = try await server.request(.patch, "/api/v1/orgs/\(server.organizationId)", token: server.ownerToken, json: #"{"name":"acme-corp"}"#)
            #expect(renamed.status == .ok)
            #expect(try renamed.decoded(Schemas.Organization.self).name == "acme-corp")
        }
    }

    @Test("members: add (with a first token), list, change role, remove (revoking their tokens)")
    func members() async throws {
        try await withTestServer { server in
            let org = "/api/v1/orgs/\(server.organizationId)/members"
            let added = try await server.request(.post, org, token: server.ownerToken, json: #"{"email":"Dev@Acme.test","role":"member"}"#)
            #expect(added.status == .created, "\(added.text)")
            let created = try added.decoded(Schemas.CreatedMember.self)
            #expect(created.member.user.email == "dev@acme.test")
            let userId = created.member.user.id
            let memberToken = created.token
            #expect(memberToken.hasPrefix("ddu_"))

            let whoami = try await server.request(.get, "/api/v1/me", token: memberToken)
            #expect(try whoami.decoded(Schemas.Caller.self).role == .member)

            let list = try await server.request(.get, org, token: server.ownerToken)
            #expect(list.status == .ok)
            #expect(try list.decoded(Schemas.MemberPage.self).items.count == 2)

            let again = try await server.request(.post, org, token: server.ownerToken, json: #"{"email":"dev@acme.test"}"#)
            #expect(again.status == .conflict)

            let promoted = try await server.request(.patch, "\(org)/\(userId)", token: server.ownerToken, json: #"{"role":"admin"}"#)
            #expect(promoted.status == .ok)
            #expect(try promoted.decoded(Schemas.Member.self).role == .admin)

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
            let ownerId = try #require(try me.decoded(Schemas.Caller.self).user?.id)
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
            let project = try created.decoded(Schemas.Project.self)
            let id = project.id
            #expect(id.count == 16)
            #expect(project.cachePolicy.keepGigabytes == 50)
            #expect(project.cachePolicy.keepDays == 14)
            #expect(project.organizationId == server.organizationId)

            let duplicate = try await server.request(.post, "/api/v1/projects", token: server.ownerToken, json: #"{"name":"web"}"#)
            #expect(duplicate.status == .conflict)

            let got = try await server.request(.get, "/api/v1/projects/\(id)", token: server.ownerToken)
            #expect(got.status == .ok)
            #expect(try got.decoded(Schemas.Project.self).name == "web")

            var ids = [id]
            for n in 0..<4 { ids.append(try await server.createProject("svc-\(n)")) }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = cursor.map { "&cursor=\($0)" } ?? ""
                let page = try await server.request(.get, "/api/v1/projects?limit=2\(query)", token: server.ownerToken)
                #expect(page.status == .ok)
                let projects = try page.decoded(Schemas.ProjectPage.self)
                seen += projects.items.map(\.id)
                cursor = projects.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen == ids.reversed(), "newest first, each exactly once")

            let updated = try await server.request(
                .patch, "/api/v1/projects/\(id)", token: server.ownerToken,
                json: #"{"name":"web-app","cachePolicy":{"keepGigabytes":500,"keepDays":30}}"#)
            #expect(updated.status == .ok)
            let changed = try updated.decoded(Schemas.Project.self)
            #expect(changed.name == "web-app")
            #expect(changed.cachePolicy.keepGigabytes == 500)
            #expect(changed.cachePolicy.keepDays == 30)

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
                let created = try response.decoded(Schemas.CreatedToken.self)
                let secret = created.token
                #expect(secret.hasPrefix(prefix))
                #expect(secret.count == 47)
                #expect(created.prefix == String(secret.prefix(8)))
                ids.append(created.id)
                secrets.append(secret)
            }
            let pull = try await server.request(.get, "/api/v1/tokens/\(ids[3])", token: server.ownerToken)
            #expect(try pull.decoded(Schemas.Token.self).expiresAt != nil, "pull tokens are short-lived by default")
            #expect(!pull.text.contains(#""token""#) && !pull.text.contains(secrets[3]), "metadata never carries the secret")

            // Only hashes are stored.
            let stored = try await ServerRunnerHelpers.column(server.database, "SELECT string_agg(encode(secret_hash, 'hex'), ',') FROM tokens")
            for secret in secrets { #expect(!stored.contains(secret)) }

            let list = try await server.request(.get, "/api/v1/tokens", token: server.ownerToken)
            #expect(list.status == .ok)
            #expect(try list.decoded(Schemas.TokenPage.self).items.count == 6, "five new tokens and the bootstrap token")
            #expect(!list.text.contains(secrets[0]))
            let byProject = try await server.request(.get, "/api/v1/tokens?projectId=\(project)", token: server.ownerToken)
            #expect(try byProject.decoded(Schemas.TokenPage.self).items.count == 2)
            let byKind = try await server.request(.get, "/api/v1/tokens?kind=worker", token: server.ownerToken)
            #expect(try byKind.decoded(Schemas.TokenPage.self).items.count == 1)

            let used = try await server.request(.get, "/api/v1/projects/\(project)", token: secrets[2])
            #expect(used.status == .ok)
            let afterUse = try await server.request(.get, "/api/v1/tokens/\(ids[2])", token: server.ownerToken)
            #expect(try afterUse.decoded(Schemas.Token.self).lastUsedAt != nil)

            let revoked = try await server.request(.delete, "/api/v1/tokens/\(ids[2])", token: server.ownerToken)
            #expect(revoked.status == .noContent)
            let rejected = try await server.request(.get, "/api/v1/projects/\(project)", token: secrets[2])
            #expect(rejected.status == .unauthorized)
            let listed = try await server.request(.get, "/api/v1/tokens?includeRevoked=true", token: server.ownerToken)
            #expect(try listed.decoded(Schemas.TokenPage.self).items.contains { $0.id == ids[2] && $0.revokedAt != nil })
            let active = try await server.request(.get, "/api/v1/tokens", token: server.ownerToken)
            #expect(try !active.decoded(Schemas.TokenPage.self).items.contains { $0.id == ids[2] })
        }
    }

    @Test("build tokens cannot be created through the API; project tokens need a project")
    func tokenRules() async throws {
        try await withTestServer { server in
            let build = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: #"{"name":"b","kind":"build"}"#)
            #expect(build.status == .badRequest)
            let project = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: #"{"name":"p","kind":"project"}"#)
            #expect(project.status == .badRequest)
            #expect(project.problem?.errors?.first?.field == "projectId")
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
