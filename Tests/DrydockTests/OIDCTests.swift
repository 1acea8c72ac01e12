import Crypto
import DrydockClient
import DrydockServer
import Foundation
import HTTPTypes
import JWTKit
import Testing

/// CI without stored secrets: trust relationships, the OIDC token exchange against a test issuer,
/// and the CLI finding its ID token by itself.
@Suite("OIDC trust relationships and the CI token exchange", .serialized)
struct OIDCTests {
    static let audience = "https://drydock.test"

    func exchange(_ server: TestServer, _ idToken: String, projectId: String? = nil) async throws -> JSONResponse {
        var body: [String: String] = ["idToken": idToken]
        if let projectId { body["projectId"] = projectId }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        return try await server.request(.post, "/api/v1/oidc/token", json: json)
    }

    func detail(_ response: JSONResponse) -> String {
        ((try? JSONSerialization.jsonObject(with: Data(response.text.utf8))) as? [String: Any])?["detail"] as? String ?? response.text
    }

    @Test("GitHub, GitLab and CircleCI tokens are exchanged when a trust relationship matches, and refused with a reason otherwise")
    func exchange() async throws {
        let issuer = try await TestIssuer.make()
        try await issuer.serve { base in
            try await withTestServer(configure: { $0.oidc = .testIssuers(base, audience: Self.audience) }) { server in
                let github = base + "/github"
                let api = try await server.createProject("api")
                let web = try await server.createProject("web")
                // Trust: GitHub acme/api on main, GitLab acme/backend/api, a CircleCI project.
                for (project, body) in [
                    (api, #"{"provider":"github","subject":"acme/api","refs":["main"]}"#),
                    (web, #"{"provider":"github","subject":"acme/api","refs":["main","refs/tags/v*"]}"#),
                    (api, #"{"provider":"gitlab","subject":"acme/backend/api","refs":["main"]}"#),
                    (api, #"{"provider":"circleci","subject":"org-1/proj-1"}"#),
                ] {
                    let created = try await server.request(.post, "/api/v1/projects/\(project)/trust", token: server.ownerToken, json: body)
                    #expect(created.status == .created, "\(created.text)")
                }
                let listed = try await server.request(.get, "/api/v1/projects/\(api)/trust", token: server.ownerToken).decoded(Components.Schemas.TrustRelationshipList.self)
                #expect(listed.items.count == 3)
                #expect(listed.items.first?.conditions.additionalProperties["ref"] == ["refs/heads/main"])

                // Another organization trusts its own repository.
                let (_, otherToken) = try await server.bootstrap("globex")
                let secretProject = try await server.createProject("secret", token: otherToken)
                let otherTrust = try await server.request(.post, "/api/v1/projects/\(secretProject)/trust", token: otherToken,
                                                          json: #"{"provider":"github","subject":"globex/private"}"#)
                #expect(otherTrust.status == .created)

                // Accepted: matching repo and ref. The token reaches both projects that trust it.
                let good = try await issuer.token(issuer: github, audience: Self.audience, ["repository": .string("acme/api"), "ref": .string("refs/heads/main"), "event_name": .string("push")])
                let granted = try await exchange(server, good)
                #expect(granted.status == .ok, "\(granted.text)")
                let grant = try granted.decoded(Components.Schemas.OIDCTokenGrant.self)
                #expect(Set(grant.projectIds) == [api, web])
                #expect(grant.token.hasPrefix("ddc_"))
                #expect(grant.isolated == false)
                // Never longer than the ID token's own life (300 s) plus five minutes.
                #expect(grant.expiresAt.timeIntervalSinceNow <= 600 + 5 && grant.expiresAt.timeIntervalSinceNow > 500)
                let me = try await server.request(.get, "/api/v1/me", token: grant.token).decoded(Components.Schemas.Caller.self)
                #expect(me.token.kind == .ci)
                #expect(Set(me.token.projectIds ?? []) == [api, web])
                let projects = try await server.request(.get, "/api/v1/projects", token: grant.token).decoded(Components.Schemas.ProjectPage.self)
                #expect(Set(projects.items.map(\.id)) == [api, web])
                #expect(try await server.request(.get, "/api/v1/projects/\(secretProject)", token: grant.token).status == .notFound)
                // A CI token reads and builds; it does not administer.
                #expect(try await server.request(.post, "/api/v1/projects/\(api)/trust", token: grant.token,
                                                 json: #"{"provider":"github","subject":"acme/other"}"#).status == .forbidden)

                // A tag matches the web project's refs/tags/v* only.
                let tag = try await issuer.token(issuer: github, audience: Self.audience, ["repository": .string("acme/api"), "ref": .string("refs/tags/v1.2")])
                #expect(try await exchange(server, tag).decoded(Components.Schemas.OIDCTokenGrant.self).projectIds == [web])

                // ES256 (GitLab) and CircleCI's default audience (its organization id).
                let gitlab = try await issuer.token(issuer: base + "/gitlab", audience: Self.audience, kid: "ec-1",
                                                    ["project_path": .string("acme/backend/api"), "ref": .string("main")])
                let gitlabGrant = try await exchange(server, gitlab)
                #expect(gitlabGrant.status == .ok, "\(gitlabGrant.text)")
                #expect(try gitlabGrant.decoded(Components.Schemas.OIDCTokenGrant.self).projectIds == [api])
                let circle = try await issuer.token(issuer: base + "/circleci/org/org-1", audience: "org-1",
                                                    ["oidc.circleci.com/project-id": .string("proj-1")])
                let circleGrant = try await exchange(server, circle)
                #expect(circleGrant.status == .ok, "\(circleGrant.text)")

                // Keys rotated mid-test: a token of a newly published key is accepted (the keys are
                // fetched again once), and unknown keys do not make the server fetch on every request.
                try issuer.publish("rsa-2")
                let fetchesBefore = issuer.jwksFetches
                let rotated = try await issuer.token(issuer: github, audience: Self.audience, kid: "rsa-2", ["repository": .string("acme/api"), "ref": .string("refs/heads/main")])
                #expect(try await exchange(server, rotated).status == .ok)
                #expect(issuer.jwksFetches == fetchesBefore + 1)
                for _ in 0..<5 {
                    #expect(try await exchange(server, try await issuer.token(issuer: github, audience: Self.audience, kid: "rsa-3", ["repository": .string("acme/api"), "ref": .string("refs/heads/main")])).status == .unauthorized)
                }
                #expect(issuer.jwksFetches == fetchesBefore + 1, "an unknown key id is looked up at most once per interval")

                // Refused, each with its reason.
                let now = Date().timeIntervalSince1970
                let repo: [String: ClaimValue] = ["repository": .string("acme/api"), "ref": .string("refs/heads/main")]
                var cases: [(String, String, String)] = []
                cases.append(("other repository", try await issuer.token(issuer: github, audience: Self.audience, ["repository": .string("acme/web"), "ref": .string("refs/heads/main")]),
                              "no trust relationship matches GitHub repository acme/web@refs/heads/main"))
                cases.append(("other ref", try await issuer.token(issuer: github, audience: Self.audience, ["repository": .string("acme/api"), "ref": .string("refs/heads/dev")]),
                              "no trust relationship matches GitHub repository acme/api@refs/heads/dev"))
                cases.append(("wrong audience", try await issuer.token(issuer: github, audience: "https://elsewhere.test", repo), "audience is 'https://elsewhere.test', not this server's 'https://drydock.test'"))
                cases.append(("expired", try await issuer.token(issuer: github, audience: Self.audience, repo.merging(["exp": .number(now - 600), "iat": .number(now - 900), "nbf": .number(now - 900)]) { $1 }), "expired"))
                cases.append(("not yet valid", try await issuer.token(issuer: github, audience: Self.audience, repo.merging(["nbf": .number(now + 600), "exp": .number(now + 900)]) { $1 }), "not valid before"))
                let signed = try await issuer.token(issuer: github, audience: Self.audience, repo)
                let parts = signed.split(separator: ".").map(String.init)
                let forged = TestIssuer.base64url(try JSONSerialization.data(withJSONObject: [
                    "iss": github, "aud": Self.audience, "repository": "acme/api", "ref": "refs/heads/main", "exp": now + 300, "iat": now, "admin": true]))
                cases.append(("tampered signature", "\(parts[0]).\(forged).\(parts[2])", "signature does not verify"))
                cases.append(("unknown key", try await issuer.token(issuer: github, audience: Self.audience, kid: "rsa-3", repo), "signed with key 'rsa-3'"))
                let claims = TestIssuer.base64url(try JSONSerialization.data(withJSONObject: ["iss": github, "aud": Self.audience, "repository": "acme/api", "ref": "refs/heads/main", "exp": now + 300]))
                cases.append(("alg none", TestIssuer.base64url(Data(#"{"alg":"none","typ":"JWT"}"#.utf8)) + ".\(claims).", "not signed (alg none)"))
                let hsHeader = TestIssuer.base64url(Data(#"{"alg":"HS256","typ":"JWT","kid":"rsa-1"}"#.utf8))
                let mac = HMAC<SHA256>.authenticationCode(for: Data("\(hsHeader).\(claims)".utf8), using: SymmetricKey(data: Data(try issuer.publicPEM("rsa-1").utf8)))
                cases.append(("HS256 with the public key", "\(hsHeader).\(claims).\(TestIssuer.base64url(Data(mac)))", "signed with HS256; only RS256 and ES256"))
                cases.append(("issuer not configured", try await issuer.token(issuer: base + "/unconfigured", audience: Self.audience, repo), "is not one this server accepts"))
                cases.append(("not a JWT", "not-a-jwt", "not a JWT"))
                for (name, token, reason) in cases {
                    let refused = try await exchange(server, token)
                    #expect(refused.status == .unauthorized, "\(name): \(refused.text)")
                    #expect(detail(refused).contains(reason), "\(name): \(detail(refused))")
                }

                // Another organization's trust relationship: its job gets its project only, and a
                // job of ours naming that project learns nothing (the same answer as for no project).
                let globex = try await issuer.token(issuer: github, audience: Self.audience, ["repository": .string("globex/private"), "ref": .string("refs/heads/main")])
                let globexGrant = try await exchange(server, globex).decoded(Components.Schemas.OIDCTokenGrant.self)
                #expect(globexGrant.projectIds == [secretProject])
                #expect(try await server.request(.get, "/api/v1/projects/\(api)", token: globexGrant.token).status == .notFound)
                let probe = try await exchange(server, good, projectId: secretProject)
                let missing = try await exchange(server, good, projectId: "zzzzzzzzzzzzzzzz")
                #expect(probe.status == .unauthorized && missing.status == .unauthorized)
                #expect(detail(probe).replacingOccurrences(of: secretProject, with: "X") == detail(missing).replacingOccurrences(of: "zzzzzzzzzzzzzzzz", with: "X"))
                #expect(!detail(probe).contains("secret") && !detail(probe).contains("globex"))

                // Removing a relationship stops the exchange.
                let web2 = listed.items.first { $0.provider == .github }
                let removed = try await server.request(.delete, "/api/v1/projects/\(api)/trust/\(try #require(web2).id)", token: server.ownerToken)
                #expect(removed.status == .noContent)
                let afterRemoval = try await exchange(server, good).decoded(Components.Schemas.OIDCTokenGrant.self)
                #expect(afterRemoval.projectIds == [web])
                // The configuration a CLI reads, without a token.
                let configuration = try await server.request(.get, "/api/v1/oidc/configuration").decoded(Components.Schemas.OIDCConfiguration.self)
                #expect(configuration.audience == Self.audience)
                #expect(configuration.issuers.contains { $0.provider == .github && $0.issuer == github })
            }
        }
    }

    @Test("trust relationships are checked when added: unknown issuers, missing subjects and catch-all claims are refused")
    func trustValidation() async throws {
        try await withTestServer(configure: { $0.oidc = .testIssuers("https://issuer.test", audience: Self.audience) }) { server in
            let api = try await server.createProject("api")
            let refusals: [(String, String)] = [
                (#"{"provider":"github"}"#, "subject"),
                (#"{"provider":"github","subject":"not-a-repo"}"#, "owner/repo"),
                (#"{"provider":"oidc","issuer":"https://evil.test","claims":{"sub":"x"}}"#, "not an issuer this server accepts"),
                (#"{"provider":"oidc","issuer":"https://issuer.test/generic"}"#, "at least one claim"),
                (#"{"provider":"oidc","issuer":"https://issuer.test/generic","claims":{"sub":"*"}}"#, "lone *"),
                (#"{"provider":"circleci","subject":"o/p","isolate":"pull-requests"}"#, "use always or never"),
                (#"{"provider":"gitlab","subject":"acme/api","issuer":"https://gitlab.example.com"}"#, "DRYDOCK_OIDC_ISSUERS=gitlab=URL"),
            ]
            for (body, reason) in refusals {
                let response = try await server.request(.post, "/api/v1/projects/\(api)/trust", token: server.ownerToken, json: body)
                #expect(response.status == .badRequest, "\(body): \(response.text)")
                #expect(response.problem?.detail?.contains(reason) == true, "\(body): \(response.text)")
            }
            let (_, member) = try await server.createToken(#"{"name":"member-ish","kind":"project","projectId":"\#(api)"}"#)
            #expect(try await server.request(.post, "/api/v1/projects/\(api)/trust", token: member,
                                             json: #"{"provider":"github","subject":"acme/api"}"#).status == .forbidden)
            let ok = try await server.request(.post, "/api/v1/projects/\(api)/trust", token: server.ownerToken, json: #"{"provider":"oidc","issuer":"https://issuer.test/generic","claims":{"sub":"deploy"}}"#)
            #expect(ok.status == .created, "\(ok.text)")
            let again = try await server.request(.post, "/api/v1/projects/\(api)/trust", token: server.ownerToken, json: #"{"provider":"oidc","issuer":"https://issuer.test/generic","claims":{"sub":"deploy"}}"#)
            #expect(again.status == .conflict)
        }
    }
}

/// The CLI as a CI job runs it: no token anywhere, the ID token asked from the (simulated) CI.
@Suite("CI builds without stored secrets", .serialized)
struct CIBuildTests {
    /// Every regular file under `directory` (but the builder's per-job scratch) by content hash,
    /// and every other entry by type: what "the cache is unchanged" means.
    static func snapshot(_ directory: URL) -> [String: String] {
        var out: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: directory.path) else { return out }
        while let relative = walker.nextObject() as? String {
            if relative.hasPrefix(".jobs") || relative.hasPrefix(".isolated") { continue }
            let path = directory.appendingPathComponent(relative).path
            let type = (try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType) ?? .typeUnknown
            if type == .typeRegular, let data = FileManager.default.contents(atPath: path) {
                out[relative] = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            } else {
                out[relative] = type.rawValue
            }
        }
        return out
    }

    @Test("in GitHub Actions drydock builds with no token; a pull request's job builds isolated: no cache read or written, no tags, no normal builds")
    func githubActions() async throws {
        let issuer = try await TestIssuer.make()
        try await issuer.serve { base in
            try await withTestServer(configure: { $0.oidc = .testIssuers(base, audience: OIDCTests.audience) }) { server in
                try await withTemporaryDirectory { dir in
                    let fixture = try await BuildFixture.make(server, project: "api")
                    let cache = dir.appendingPathComponent("cache")
                    let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: cache, name: "ci-builder")
                    // An admin trusts the repository; its pull requests build isolated.
                    let owner = ["HOME": dir.path, "DRYDOCK_API_URL": server.baseURL, "DRYDOCK_TOKEN": server.ownerToken]
                    let added = try await runExecutable("drydock", ["projects", "trust", "add", "api", "--github", "acme/api", "--isolate", "pull-requests"],
                                                        environment: owner)
                    #expect(added.status == 0, "\(added.stderr)")
                    #expect(added.stdout.contains("repository=acme/api"))
                    let listed = try await runExecutable("drydock", ["projects", "trust", "list", "api"], environment: owner)
                    #expect(listed.stdout.contains("pull-requests"), "\(listed.stdout)")

                    let context = dir.appendingPathComponent("app")
                    try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                    try "FROM \(fixture.base)\nRUN echo built > /built\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                    // The job's environment: what GitHub Actions sets with 'id-token: write', and nothing else.
                    let ci = ["HOME": dir.appendingPathComponent("runner-home").path, "DRYDOCK_API_URL": server.baseURL, "DRYDOCK_PROJECT": fixture.projectId,
                              "GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": base + "/actions/token?api-version=2.0",
                              "ACTIONS_ID_TOKEN_REQUEST_TOKEN": TestIssuer.actionsRequestToken]
                    issuer.actionsClaims.withLock { $0 = ["repository": .string("acme/api"), "ref": .string("refs/heads/main"), "event_name": .string("push")] }
                    let whoami = try await runExecutable("drydock", ["whoami"], environment: ci)
                    #expect(whoami.status == 0, "\(whoami.stderr)")
                    #expect(whoami.stdout.contains("OIDC exchange (GitHub Actions"), "\(whoami.stdout)")
                    #expect(whoami.stdout.contains("ci)"), "\(whoami.stdout)")

                    let pushed = try await runExecutable("drydock", ["build", "-t", "app:main", "--progress", "plain", context.path], environment: ci)
                    #expect(pushed.status == 0, "\(pushed.stderr)\nbuilder: \(builder.output)")
                    let tags = try await fixture.client.api.listRepositoryTags(path: .init(projectId: fixture.projectId), query: .init(repository: "app")).ok.body.json
                    #expect(tags.items.map(\.name).contains("main"))
                    let before = Self.snapshot(cache)
                    #expect(before.count > 10, "the project's cache holds the first build")

                    // The pull request's job: no --isolated, no token; its token builds isolated only.
                    issuer.actionsClaims.withLock { $0 = ["repository": .string("acme/api"), "ref": .string("refs/pull/7/merge"), "event_name": .string("pull_request")] }
                    let refused = try await runExecutable("drydock", ["build", "-t", "app:latest", "--progress", "plain", context.path], environment: ci)
                    #expect(refused.status != 0)
                    #expect(refused.stderr.contains("isolated builds only"), "\(refused.stderr)")
                    let isolated = try await runExecutable("drydock", ["build", "--progress", "plain", context.path], environment: ci)
                    #expect(isolated.status == 0, "\(isolated.stderr)\nbuilder: \(builder.output)")
                    #expect(isolated.stderr.contains("isolated build"))
                    #expect(!isolated.stderr.contains("CACHED"), "an isolated build reads no cache")
                    let builds = try await fixture.client.builds(projectId: fixture.projectId).items
                    let last = try await fixture.client.build(try #require(builds.first).id)
                    #expect(last.isolated == true)
                    #expect(last.status == .succeeded)
                    #expect(last.steps.filter { $0.instruction.contains("RUN") }.allSatisfy { !$0.cached }, "\(last.steps)")
                    #expect(Self.snapshot(cache) == before, "the project's cache is byte for byte what it was")
                    let list = try await runExecutable("drydock", ["builds", "list"], environment: owner.merging(["DRYDOCK_PROJECT": fixture.projectId]) { $1 })
                    #expect(list.stdout.contains("(isolated)"), "\(list.stdout)")
                    let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken).decoded(Components.Schemas.Usage.self)
                    #expect(usage.byProject.first { $0.projectId == fixture.projectId }?.isolatedBuildSeconds != nil, "usage labels the isolated build's time")
                    // Its image is in the registry, as build:<id> only.
                    let inspect = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", "x:\(server.ownerToken)",
                                                               "docker://\(fixture.host)/\(last.image)"])
                    #expect(inspect.status == 0, "\(inspect.stderr)")

                    // The pull request's token itself: no normal build, no tags, no push to :latest, no secrets.
                    let idToken = try await issuer.token(issuer: base + "/github", audience: OIDCTests.audience, issuer.actionsClaims.withLock { $0 })
                    let grant = try await server.request(.post, "/api/v1/oidc/token", json: #"{"idToken":"\#(idToken)"}"#).decoded(Components.Schemas.OIDCTokenGrant.self)
                    #expect(grant.isolated == true)
                    let digest = "sha256:" + String(last.contextDigest.dropFirst(7))
                    let normal = try await server.request(.post, "/api/v1/projects/\(fixture.projectId)/builds", token: grant.token,
                                                          json: #"{"contextDigest":"\#(digest)"}"#)
                    #expect(normal.status == .forbidden, "\(normal.text)")
                    let tagged = try await server.request(.post, "/api/v1/projects/\(fixture.projectId)/builds", token: grant.token,
                                                          json: #"{"contextDigest":"\#(digest)","isolated":true,"tags":["app:latest"]}"#)
                    #expect(tagged.status == .badRequest, "\(tagged.text)")
                    let secret = try await server.request(.post, "/api/v1/projects/\(fixture.projectId)/builds", token: grant.token,
                                                          json: #"{"contextDigest":"\#(digest)","isolated":true,"secrets":[{"id":"npm","value":"c2VjcmV0"}]}"#)
                    #expect(secret.status == .badRequest, "\(secret.text)")
                    let push = try await runTool("skopeo", ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                                                            "--src-creds", "x:\(server.ownerToken)", "--dest-creds", "x:\(grant.token)",
                                                            "docker://\(fixture.host)/\(last.image)", "docker://\(fixture.host)/\(fixture.projectId)/app:latest"])
                    #expect(push.status != 0, "a pull request's token cannot push to :latest")
                    let latest = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", "x:\(server.ownerToken)",
                                                              "docker://\(fixture.host)/\(fixture.projectId)/app:latest"])
                    #expect(latest.status != 0, "app:latest was never written")
                    await builder.stop()
                }
            }
        }
    }

    @Test("an isolated build's own registry token pushes to its own build tag only: not another tag of <project>/build, not another repository")
    func isolatedBuildToken() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("untrusted")
            let digest = try await server.uploadZeroContext(project)
            let created = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                   json: #"{"contextDigest":"\#(digest)","isolated":true}"#)
            #expect(created.status == .created, "\(created.text)")
            let build = try created.decoded(Components.Schemas.Build.self)
            #expect(build.isolated == true)
            let worker = try await workerToken(server)
            let claim = try await server.requestOwn(.post, "/api/v1/workers/claim", token: worker,
                                                    json: #"{"name":"w","platforms":["\#(Platform.host.description)"],"waitSeconds":0}"#)
            let job = try claim.decoded(Components.Schemas.JobAssignment.self)
            #expect(job.isolated == true)
            #expect(job.image == "\(project)/build:\(build.id)")
            let manifest = Array(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:\#(String(repeating: "a", count: 64))","size":2},"layers":[]}"#.utf8)
            let type: HTTPFields = [.contentType: "application/vnd.oci.image.manifest.v1+json"]
            let latest = try await server.registry(.put, "/v2/\(project)/app/manifests/latest", token: job.buildToken, body: manifest, headers: type)
            #expect(latest.status == .forbidden, "\(String(decoding: latest.body, as: UTF8.self))")
            #expect(String(decoding: latest.body, as: UTF8.self).contains("only to its own build tag"))
            let otherTag = try await server.registry(.put, "/v2/\(project)/build/manifests/latest", token: job.buildToken, body: manifest, headers: type)
            #expect(otherTag.status == .forbidden)
            // Its own tag gets past the check (and is refused only for the blobs this test never uploaded).
            let own = try await server.registry(.put, "/v2/\(project)/build/manifests/\(build.id)", token: job.buildToken, body: manifest, headers: type)
            #expect(!String(decoding: own.body, as: UTF8.self).contains("DENIED"), "\(String(decoding: own.body, as: UTF8.self))")
            #expect(String(decoding: own.body, as: UTF8.self).contains("BLOB_UNKNOWN"), "\(String(decoding: own.body, as: UTF8.self))")
            // A normal build's token still tags freely.
            let normal = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                  json: #"{"contextDigest":"\#(digest)"}"#)
            #expect(normal.status == .created)
            let second = try await server.requestOwn(.post, "/api/v1/workers/claim", token: worker,
                                                     json: #"{"name":"w","platforms":["\#(Platform.host.description)"],"waitSeconds":0}"#)
            let normalJob = try second.decoded(Components.Schemas.JobAssignment.self)
            let tagged = try await server.registry(.put, "/v2/\(project)/app/manifests/latest", token: normalJob.buildToken, body: manifest, headers: type)
            #expect(!String(decoding: tagged.body, as: UTF8.self).contains("DENIED"))
        }
    }
}
