import DrydockServer
import Foundation
import HTTPTypes
import Testing

@Suite("Authorization table")
struct AuthorizationTests {
    @Test("every operation in openapi.yaml has exactly one entry, and no entry names a missing operation")
    func tableMatchesSpec() throws {
        let operations = Set(try specOperations().map(\.id))
        #expect(!operations.isEmpty)
        #expect(operations == Set(Authorization.table.keys))
    }

    @Test("what each kind of token and role may do")
    func matrix() {
        func allowed(_ kind: TokenKind, _ role: Role?) -> Set<String> {
            let caller = Caller(tokenId: "t", kind: kind, organizationId: "o", projectId: nil, userId: nil, role: role)
            return Set(Authorization.table.keys.filter { Authorization.allows(caller, operation: $0) })
        }
        // Only workers claim jobs, only a job's own build token reports on it, only agents poll,
        // and only a builder's one-time secret registers it.
        let machine: Set<String> = ["claimJob", "heartbeatJob", "getJobContext", "reportJobEvents", "finishJob", "pollAgent", "registerBuilder"]
        // The OIDC exchange and its configuration need no token at all.
        let open: Set<String> = ["exchangeOIDCToken", "getOIDCConfiguration"]
        #expect(Set(Authorization.table.filter { $0.value == .anyone }.keys) == open)
        #expect(allowed(.user, .owner) == Set(Authorization.table.keys).subtracting(machine).subtracting(open))
        #expect(allowed(.user, .admin) == Set(Authorization.table.keys).subtracting(machine).subtracting(open))
        let member = allowed(.user, .member)
        #expect(!member.contains("createTrustRelationship") && member.contains("listTrustRelationships"))
        #expect(member.contains("createProject") && member.contains("createToken"))
        #expect(!member.contains("deleteProject") && !member.contains("addMember") && !member.contains("updateOrganization"))
        let organization = allowed(.organization, nil)
        #expect(organization.contains("deleteProject") && !organization.contains("addMember"))
        #expect(allowed(.project, nil) == ["getCurrentCaller", "listProjects", "getProject", "listRepositories", "listRepositoryTags",
                                           "getRegistryUsage", "createPullToken", "getBuildContext", "uploadBuildContext",
                                           "createBuild", "listBuilds", "getBuild", "cancelBuild", "getBuildLogs", "getProjectUsage",
                                           "getProjectCache", "listTrustRelationships", "createBake", "getBake", "cancelBake",
                                           "getRetentionPolicy", "previewRetention"])
        // A CI token from an OIDC exchange does what a project token does, in its projects.
        #expect(allowed(.ci, nil) == allowed(.project, nil))
        #expect(member.contains("deleteRepositoryTag") && member.contains("createPullToken") && member.contains("createBuild"))
        #expect(member.isDisjoint(with: machine))
        #expect(allowed(.pull, nil) == ["getCurrentCaller"])
        #expect(allowed(.worker, nil) == ["getCurrentCaller", "claimJob"])
        #expect(allowed(.build, nil) == Set(["getCurrentCaller"]).union(machine.subtracting(["claimJob", "pollAgent", "registerBuilder"])))
        #expect(allowed(.agent, nil) == ["getCurrentCaller", "pollAgent"])
        #expect(allowed(.registration, nil) == ["registerBuilder"])
        let unknown = Caller(tokenId: "t", kind: .user, organizationId: "o", projectId: nil, userId: nil, role: .owner)
        #expect(!Authorization.allows(unknown, operation: "noSuchOperation"))
    }

    @Test("members and project tokens are refused what their role does not allow, with 403")
    func enforced() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("web")
            let added = try await server.request(.post, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken, json: #"{"email":"m@acme.test"}"#)
            let memberToken = try added.decoded(Schemas.CreatedMember.self).token
            let delete = try await server.request(.delete, "/api/v1/projects/\(project)", token: memberToken)
            #expect(delete.status == .forbidden)
            let orgToken = try await server.request(.post, "/api/v1/tokens", token: memberToken, json: #"{"name":"o","kind":"organization"}"#)
            #expect(orgToken.status == .forbidden)
            let own = try await server.request(.post, "/api/v1/tokens", token: memberToken, json: #"{"name":"mine"}"#)
            #expect(own.status == .created)
            // A member sees their own tokens, not the owner's.
            let list = try await server.request(.get, "/api/v1/tokens", token: memberToken)
            let visible = try list.decoded(Schemas.TokenPage.self).items
            #expect(visible.count == 2)
            #expect(visible.allSatisfy { $0.name != "bootstrap" })

            let (_, projectToken) = try await server.createToken(#"{"name":"ci","projectId":"\#(project)"}"#)
            let tokens = try await server.request(.get, "/api/v1/tokens", token: projectToken)
            #expect(tokens.status == .forbidden)
            let projects = try await server.request(.get, "/api/v1/projects", token: projectToken)
            #expect(try projects.decoded(Schemas.ProjectPage.self).items.map(\.id) == [project])
            let other = try await server.createProject("other")
            let otherProject = try await server.request(.get, "/api/v1/projects/\(other)", token: projectToken)
            #expect(otherProject.status == .notFound)
        }
    }
}
