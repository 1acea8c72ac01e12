import DrydockServer
import Foundation
import HTTPTypes
import PostgresNIO
import Testing

/// Walks every operation in openapi.yaml with credentials that must not reach organization A's
/// resources, and checks that nothing succeeds and nothing reveals whether a resource exists.
@Suite("Tenant isolation")
struct TenantIsolationTests {
    /// A body each operation accepts, so a refusal is about who asks, not what was sent.
    static let bodies: [String: String] = [
        "updateOrganization": #"{"name":"hijacked"}"#,
        "addMember": #"{"email":"intruder@evil.test"}"#,
        "updateMember": #"{"role":"owner"}"#,
        "createProject": #"{"name":"evil"}"#,
        "updateProject": #"{"name":"evil"}"#,
        "createToken": #"{"name":"evil"}"#,
        "createPullToken": #"{}"#,
        "uploadBuildContext": "not a tar",
        "createBuild": #"{"contextDigest":"sha256:\#(String(repeating: "a", count: 64))"}"#,
        "claimJob": #"{"name":"intruder","platforms":["linux/amd64"],"waitSeconds":0}"#,
        "reportJobEvents": #"{"events":[]}"#,
        "finishJob": #"{"status":"failed"}"#,
        "setUsageCaps": #"{"minutesPerMonth":5}"#,
        "createTrustRelationship": #"{"provider":"github","subject":"evil/repo"}"#,
        "createBake": #"{"targets":[{"name":"evil","build":{"contextDigest":"sha256:\#(String(repeating: "a", count: 64))"}}]}"#,
        "cancelBake": #"{}"#,
        "setRetentionPolicy": #"{"untaggedDays":1}"#,
    ]

    /// Bodies that are not JSON.
    static let contentTypes: [String: String] = ["uploadBuildContext": "application/x-tar"]

    /// Required query parameters, so a refusal is not a 400 for a missing one.
    static let queries: [String: String] = [
        "listRepositoryTags": "?repository=app",
        "deleteRepositoryTag": "?repository=app&tag=v1",
        "deleteImage": "?repository=app&digest=sha256:\(String(repeating: "0", count: 64))",
    ]

    static func path(_ template: String, _ ids: [String: String]) -> String {
        var path = template
        for (key, value) in ids { path = path.replacingOccurrences(of: "{\(key)}", with: value) }
        return path
    }

    static func method(_ name: String) -> HTTPRequest.Method {
        switch name {
        case "get": .get
        case "post": .post
        case "patch": .patch
        case "put": .put
        default: .delete
        }
    }

    @Test("no token, revoked, expired, another organization's and another project's tokens reach nothing")
    func walk() async throws {
        try await withTestServer { server in
            // Organization A: a project, a second project, a member, a project token.
            let projectA = try await server.createProject("alpha")
            let projectA2 = try await server.createProject("alpha-two")
            let member = try await server.request(.post, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken, json: #"{"email":"member@acme.test"}"#)
            let memberId = try member.decoded(Schemas.CreatedMember.self).member.user.id
            let (projectTokenId, _) = try await server.createToken(#"{"name":"ci","projectId":"\#(projectA)"}"#)
            let (_, otherProjectToken) = try await server.createToken(#"{"name":"ci2","projectId":"\#(projectA2)"}"#)
            let (revokedId, revoked) = try await server.createToken(#"{"name":"old"}"#)
            try #require(try await server.request(.delete, "/api/v1/tokens/\(revokedId)", token: server.ownerToken).status == .noContent)
            let (expiredId, expired) = try await server.createToken(#"{"name":"short","expiresInSeconds":60}"#)
            try await TestDatabase.execute(server.database, "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = \(expiredId)")

            // Organization B, with its owner and a project token of its own.
            let (orgB, ownerB) = try await server.bootstrap("globex")
            let projectB = try await server.createProject("beta", token: ownerB)
            let (_, projectTokenB) = try await server.createToken(#"{"name":"ci","projectId":"\#(projectB)"}"#, token: ownerB)

            // A build of A (its context, build and job), and a worker token of B.
            _ = try await server.uploadZeroContext(projectA)
            let contextHex = TestServer.zeroContextHex
            let build = try await server.request(.post, "/api/v1/projects/\(projectA)/builds", token: server.ownerToken,
                                                 json: #"{"contextDigest":"sha256:\#(contextHex)"}"#)
            let queued = try build.decoded(Schemas.Build.self)
            let buildId = queued.id
            let jobId = try #require(queued.jobs.first?.id)
            let (_, workerB) = try await server.createToken(#"{"name":"w","kind":"worker"}"#, token: ownerB)
            let trust = try await server.request(.post, "/api/v1/projects/\(projectA)/trust", token: server.ownerToken,
                                                 json: #"{"provider":"github","subject":"acme/alpha"}"#)
            let trustId = try trust.decoded(Schemas.TrustRelationship.self).id
            let bake = try await server.request(.post, "/api/v1/projects/\(projectA)/bakes", token: server.ownerToken,
                                                json: #"{"targets":[{"name":"app","build":{"contextDigest":"sha256:\#(contextHex)"}}]}"#)
            let bakeId = try bake.decoded(Schemas.Bake.self).id

            let real = ["orgId": server.organizationId, "projectId": projectA, "tokenId": projectTokenId, "userId": memberId,
                        "buildId": buildId, "jobId": jobId, "digest": contextHex, "trustId": trustId, "bakeId": bakeId]
            let fake = ["orgId": "zzzzzzzzzzzzzzzz", "projectId": "zzzzzzzzzzzzzzzz", "tokenId": "zzzzzzzzzzzzzzzz", "userId": "zzzzzzzzzzzzzzzz",
                        "buildId": "zzzzzzzzzzzzzzzz", "jobId": "zzzzzzzzzzzzzzzz", "digest": String(repeating: "e", count: 64),
                        "trustId": "zzzzzzzzzzzzzzzz", "bakeId": "zzzzzzzzzzzzzzzz"]
            let secretsOfA = Set(real.values)

            let operations = try specOperations()
            #expect(operations.count == Authorization.table.count)
            // The OIDC exchange and its configuration take no token (the ID token is the credential).
            for operation in operations where Authorization.table[operation.id] != .anyone {
                let method = Self.method(operation.method)
                let body = Self.bodies[operation.id]
                let headers: HTTPFields = Self.contentTypes[operation.id].map { [.contentType: $0] } ?? [:]
                let realPath = Self.path(operation.path, real) + (Self.queries[operation.id] ?? "")
                let fakePath = Self.path(operation.path, fake) + (Self.queries[operation.id] ?? "")

                for (label, token) in [("no token", nil as String?), ("revoked", revoked), ("expired", expired), ("garbage", "ddu_not-a-real-token")] {
                    let response = try await server.request(method, realPath, token: token, json: body, headers: headers)
                    #expect(response.status == .unauthorized, "\(operation.id) with \(label): \(response.status)")
                    #expect(response.headers[.wwwAuthenticate] != nil, "\(operation.id) with \(label) names the auth scheme")
                    #expect(response.headers[.contentType] == "application/problem+json")
                }

                for (label, token) in [("another organization's owner", ownerB), ("another organization's project token", projectTokenB),
                                       ("another organization's worker token", workerB), ("another project's token", otherProjectToken)] {
                    let onReal = try await server.request(method, realPath, token: token, json: body, headers: headers)
                    if operation.path.contains("{") {
                        #expect(!(200..<300).contains(onReal.status.code), "\(operation.id) by \(label) got \(onReal.status)")
                        // Another project's token is of A's own organization, so only its
                        // project-scoped paths must look exactly like missing ones.
                        if label != "another project's token" || operation.path.contains("{projectId}") {
                            let onFake = try await server.request(method, fakePath, token: token, json: body, headers: headers)
                            #expect([.notFound, .forbidden].contains(onReal.status), "\(operation.id) by \(label) got \(onReal.status)")
                            #expect(onReal.status == onFake.status, "\(operation.id) by \(label) tells existing (\(onReal.status)) from missing (\(onFake.status))")
                        }
                    }
                    if label != "another project's token" {
                        // Echoing the id the caller sent is no leak; any other of A's ids would be.
                        for secret in secretsOfA where !realPath.contains(secret) {
                            #expect(!onReal.text.contains(secret), "\(operation.id) by \(label) leaked \(secret)")
                        }
                    }
                }
            }

            // A project of A cannot be the scope of B's tokens.
            let stolen = try await server.request(.post, "/api/v1/tokens", token: ownerB, json: #"{"name":"x","projectId":"\#(projectA)"}"#)
            #expect(stolen.status == .notFound)
            // B's token for its project cannot read A's project even by id.
            let peek = try await server.request(.get, "/api/v1/projects/\(projectA)", token: projectTokenB)
            #expect(peek.status == .notFound)

            // Nothing of A changed.
            let project = try await server.request(.get, "/api/v1/projects/\(projectA)", token: server.ownerToken)
            #expect(try project.decoded(Schemas.Project.self).name == "alpha")
            let organization = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)", token: server.ownerToken)
            #expect(try organization.decoded(Schemas.Organization.self).name == "acme")
            // B's worker never got A's job.
            let job = try await server.request(.get, "/api/v1/builds/\(buildId)", token: server.ownerToken)
            #expect(try job.decoded(Schemas.Build.self).status == .queued)
            let token = try await server.request(.get, "/api/v1/tokens/\(projectTokenId)", token: server.ownerToken)
            #expect(try token.decoded(Schemas.Token.self).revokedAt == nil)
            let members = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken)
            #expect(try members.decoded(Schemas.MemberPage.self).items.count == 2)
            let projectsOfB = try await server.request(.get, "/api/v1/projects", token: ownerB)
            #expect(Set(try projectsOfB.decoded(Schemas.ProjectPage.self).items.map(\.organizationId)) == [orgB])
        }
    }
}
