import DrydockClient
import DrydockProcess
import DrydockServer
import Foundation
import HTTPTypes
import Testing

/// A browser's requests: a session cookie and form posts.
struct Browser {
    let server: TestServer
    var cookie: String?

    func get(_ path: String, headers extra: HTTPFields = [:]) async throws -> JSONResponse {
        var headers = extra
        if let cookie { headers[.cookie] = "drydock_session=\(cookie)" }
        return try await server.request(.get, path, headers: headers)
    }

    func post(_ path: String, _ fields: [(String, String)], headers extra: HTTPFields = [:]) async throws -> JSONResponse {
        var headers = extra
        headers[.contentType] = "application/x-www-form-urlencoded"
        if let cookie { headers[.cookie] = "drydock_session=\(cookie)" }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.~"))
        let body = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        return try await server.request(.post, path, json: body, headers: headers)
    }

    /// Signs in with a token; returns the answer and keeps the session cookie.
    mutating func signIn(_ token: String, headers: HTTPFields = [:]) async throws -> JSONResponse {
        let response = try await post("/signin", [("token", token)], headers: headers)
        if let setCookie = response.headers[.setCookie], let value = Self.sessionCookie(setCookie) { cookie = value }
        return response
    }

    static func sessionCookie(_ header: String) -> String? {
        guard header.hasPrefix("drydock_session=") else { return nil }
        return header.dropFirst("drydock_session=".count).split(separator: ";").first.map(String.init)
    }

    /// The CSRF token of the forms on a page.
    func csrf(_ path: String = "/") async throws -> String {
        let page = try await get(path)
        guard let range = page.text.range(of: #"name="csrf" value=""#) else {
            throw CLITestError("no form with a CSRF token on \(path): \(page.status) \(page.text.prefix(400))")
        }
        return String(page.text[range.upperBound...].prefix { $0 != "\"" })
    }
}

@Suite("Dashboard") struct DashboardTests {
    @Test("Signed out, / is the sign-in page; signing in sets an HttpOnly session cookie kept only hashed; the session is its token, no more; sign-out and revocation end it")
    func sessions() async throws {
        try await withTestServer { server in
            var browser = Browser(server: server)
            let signedOut = try await browser.get("/")
            #expect(signedOut.status == .ok)
            #expect(signedOut.text.contains(#"<form method="post" action="/signin">"#) && signedOut.text.contains(#"name="token""#))
            let csp = try #require(signedOut.headers[.contentSecurityPolicy])
            #expect(csp.contains("default-src 'self'") && csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"))
            #expect(signedOut.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            #expect(signedOut.headers[HTTPField.Name("Referrer-Policy")!] != nil)
            #expect(!signedOut.text.contains("<script>"), "no inline script")

            // Bad tokens and machine tokens do not sign in.
            let bad = try await browser.signIn("ddu_" + String(repeating: "x", count: 43))
            #expect(bad.status == .unauthorized && bad.text.contains("unknown, revoked or expired") && bad.headers[.setCookie] == nil)
            let worker = try await workerToken(server)
            let refused = try await browser.signIn(worker)
            #expect(refused.status == .forbidden && refused.text.contains("A worker token cannot sign in"))
            // A sign-in form posted from another site is refused.
            let forged = try await Browser(server: server).post("/signin", [("token", server.ownerToken)], headers: [.origin: "http://evil.example"])
            #expect(forged.status == .forbidden && forged.headers[.setCookie] == nil)

            let signedIn = try await browser.signIn(server.ownerToken)
            #expect(signedIn.status == .seeOther && signedIn.headers[.location] == "/")
            let setCookie = try #require(signedIn.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Lax") && !setCookie.contains("Secure"))
            #expect(signedIn.headers[.contentSecurityPolicy] != nil)
            let cookie = try #require(browser.cookie)
            // PostgreSQL holds one session, and not its id.
            #expect(try await TestDatabase.count(server.database, "SELECT count(*)::int FROM dashboard_sessions") == 1)
            #expect(try await TestDatabase.count(server.database,
                "SELECT count(*)::int FROM dashboard_sessions WHERE position(convert_to(\(cookie), 'UTF8') IN id_hash) > 0") == 0)
            let overview = try await browser.get("/")
            #expect(overview.status == .ok && overview.text.contains("<h1>acme</h1>") && overview.text.contains("owner@acme.test"))
            #expect(overview.headers[.contentSecurityPolicy] != nil)

            // Behind an HTTPS proxy the cookie is Secure.
            var secure = Browser(server: server)
            let viaHTTPS = try await secure.signIn(server.ownerToken, headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            #expect(viaHTTPS.headers[.setCookie]?.contains("; Secure") == true)

            // A project token's session sees its project, not the organization's members or other projects.
            let projectA = try await server.createProject("alpha")
            let projectB = try await server.createProject("beta")
            let (_, projectToken) = try await server.createToken(#"{"name":"ci","kind":"project","projectId":"\#(projectA)"}"#)
            var ci = Browser(server: server)
            #expect(try await ci.signIn(projectToken).status == .seeOther)
            #expect(try await ci.get("/projects/\(projectA)").status == .ok)
            let other = try await ci.get("/projects/\(projectB)")
            #expect(other.status == .notFound && other.text.contains("does not exist or is not visible"))
            let members = try await ci.get("/members")
            #expect(members.status == .forbidden && members.text.contains("may not see the organization"))
            // Error pages keep the signed-in navigation (and a way to sign out).
            for page in [other, members] { #expect(page.text.contains("<nav>") && page.text.contains("id=\"signout\""), "\(page.text)") }
            let ciOverview = try await ci.get("/")
            #expect(ciOverview.text.contains("alpha") && !ciOverview.text.contains("beta"))

            // State changes need the page's CSRF token, from this site.
            let noToken = try await browser.post("/projects/\(projectA)/settings", [("name", "renamed")])
            #expect(noToken.status == .forbidden)
            let csrf = try await browser.csrf("/projects/\(projectA)")
            let otherSite = try await browser.post("/projects/\(projectA)/settings", [("csrf", csrf), ("name", "renamed")],
                                                   headers: [.origin: "http://evil.example"])
            #expect(otherSite.status == .forbidden)
            #expect(try await server.request(.get, "/api/v1/projects/\(projectA)", token: server.ownerToken).decoded(Schemas.Project.self).name == "alpha")
            let saved = try await browser.post("/projects/\(projectA)/settings", [("csrf", csrf), ("name", "renamed"), ("keepDays", "3"),
                                                                                 ("keepGigabytes", "20"), ("emulation", "native-only")])
            #expect(saved.status == .seeOther)
            let project = try await server.request(.get, "/api/v1/projects/\(projectA)", token: server.ownerToken).decoded(Schemas.Project.self)
            #expect(project.name == "renamed" && project.cachePolicy.keepDays == 3 && project.cachePolicy.keepGigabytes == 20
                    && project.builds?.emulation == .nativeOnly)
            let invalid = try await browser.post("/projects/\(projectA)/settings", [("csrf", csrf), ("keepDays", "999")])
            #expect(invalid.status == .badRequest && invalid.text.contains("keepDays"))

            // Cancel a queued build from its page (no builder: it stays queued until then).
            let context = try await server.uploadZeroContext(projectA)
            let queued = try await server.request(.post, "/api/v1/projects/\(projectA)/builds", token: server.ownerToken,
                                                  json: #"{"contextDigest":"\#(context)"}"#).decoded(Schemas.Build.self)
            let buildPage = try await browser.get("/builds/\(queued.id)")
            #expect(buildPage.status == .ok && buildPage.text.contains(#"id="cancel""#) && buildPage.text.contains(#"data-follow="true""#))
            #expect(try await browser.post("/builds/\(queued.id)/cancel", [("csrf", csrf)]).status == .seeOther)
            let canceled = try await server.request(.get, "/api/v1/builds/\(queued.id)", token: server.ownerToken).decoded(Schemas.Build.self)
            #expect(canceled.status == .canceled)

            // A token made on the tokens page: its secret on that page only, its name as text.
            let created = try await browser.post("/tokens", [("csrf", csrf), ("name", "<script>alert(1)</script>"), ("kind", "user")])
            #expect(created.status == .created)
            let secret = try #require(created.text.range(of: #"id="secret">"#).map { String(created.text[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(secret.hasPrefix("ddu_") && created.headers[.cacheControl] == "no-store")
            let list = try await browser.get("/tokens")
            #expect(!list.text.contains(secret) && list.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !list.text.contains("<script>alert"))

            // A session of that token ends when it is revoked (here from the owner's session).
            var second = Browser(server: server)
            #expect(try await second.signIn(secret).status == .seeOther)
            #expect(try await second.get("/").text.contains("<h1>acme</h1>"))
            let tokens = try await server.request(.get, "/api/v1/tokens", token: server.ownerToken).decoded(Schemas.TokenPage.self)
            let tokenId = try #require(tokens.items.first { $0.name == "<script>alert(1)</script>" }?.id)
            #expect(try await browser.post("/tokens/\(tokenId)/revoke", [("csrf", csrf)]).status == .seeOther)
            let afterRevoke = try await second.get("/")
            #expect(afterRevoke.text.contains(#"name="token""#) && !afterRevoke.text.contains("<h1>acme</h1>"))
            #expect(try await second.get("/projects/\(projectA)").status == .seeOther)

            // Sign-out ends the session: the cookie no longer works.
            let out = try await browser.post("/signout", [("csrf", csrf)])
            #expect(out.status == .seeOther && out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await browser.get("/").text.contains(#"name="token""#))
            #expect(try await TestDatabase.count(server.database,
                "SELECT count(*)::int FROM dashboard_sessions WHERE id_hash = sha256(convert_to('drydock-session:' || \(cookie), 'UTF8'))") == 0)

            // A path no page has: the dashboard's 404, with its headers.
            let missing = try await browser.get("/no/such/page")
            #expect(missing.status == .notFound && missing.headers[.contentSecurityPolicy] != nil)
        }
    }

    @Test("Another organization's project, build, registry, log and token URLs answer 404 as unknown ones do, and its build cannot be canceled from here")
    func tenantWalk() async throws {
        try await withTestServer { server in
            let (_, otherOwner) = try await server.bootstrap("globex")
            let otherProject = try await server.request(.post, "/api/v1/projects", token: otherOwner, json: #"{"name":"secret"}"#)
                .decoded(Schemas.Project.self).id
            let context = try await server.uploadZeroContext(otherProject, token: otherOwner)
            let otherBuild = try await server.request(.post, "/api/v1/projects/\(otherProject)/builds", token: otherOwner,
                                                      json: #"{"contextDigest":"\#(context)"}"#).decoded(Schemas.Build.self)
            let otherToken = try await server.createToken(#"{"name":"theirs","kind":"project","projectId":"\#(otherProject)"}"#, token: otherOwner).0

            var browser = Browser(server: server)
            #expect(try await browser.signIn(server.ownerToken).status == .seeOther)
            let csrf = try await browser.csrf()
            let unknown = "zzzzzzzzzzzzzzzz"
            for (theirs, none) in [
                ("/projects/\(otherProject)", "/projects/\(unknown)"),
                ("/projects/\(otherProject)/registry", "/projects/\(unknown)/registry"),
                ("/projects/\(otherProject)/registry/delete?repository=app&tag=v1", "/projects/\(unknown)/registry/delete?repository=app&tag=v1"),
                ("/builds/\(otherBuild.id)", "/builds/\(unknown)"),
                ("/builds/\(otherBuild.id)/log", "/builds/\(unknown)/log"),
                ("/tokens/\(otherToken)", "/tokens/\(unknown)"),
            ] {
                let a = try await browser.get(theirs)
                let b = try await browser.get(none)
                #expect(a.status == .notFound, "\(theirs): \(a.status)")
                #expect(b.status == .notFound, "\(none): \(b.status)")
                #expect(a.headers[.contentSecurityPolicy] != nil)
                #expect(!a.text.contains("secret") && !a.text.contains("globex"), "\(theirs) names the other organization's resource")
            }
            for (path, fields) in [
                ("/builds/\(otherBuild.id)/cancel", [("csrf", csrf)]),
                ("/tokens/\(otherToken)/revoke", [("csrf", csrf)]),
                ("/projects/\(otherProject)/settings", [("csrf", csrf), ("name", "mine")]),
                ("/projects/\(otherProject)/registry/delete", [("csrf", csrf), ("repository", "app"), ("tag", "v1")]),
            ] {
                #expect(try await browser.post(path, fields).status == .notFound, "\(path)")
            }
            let still = try await server.request(.get, "/api/v1/builds/\(otherBuild.id)", token: otherOwner).decoded(Schemas.Build.self)
            #expect(still.status == .queued)
            let theirProject = try await server.request(.get, "/api/v1/projects/\(otherProject)", token: otherOwner).decoded(Schemas.Project.self)
            #expect(theirProject.name == "secret")
            let overview = try await browser.get("/")
            #expect(!overview.text.contains(otherProject) && !overview.text.contains(otherBuild.id))
        }
    }

    @Test("Members from the dashboard: an admin adds one (their first token shown once), changes the role and removes them; a member's session may not; usage as CSV")
    func membersAndUsage() async throws {
        try await withTestServer { server in
            var owner = Browser(server: server)
            #expect(try await owner.signIn(server.ownerToken).status == .seeOther)
            let csrf = try await owner.csrf("/members")
            let added = try await owner.post("/members", [("csrf", csrf), ("email", "dev@acme.test"), ("role", "member")])
            #expect(added.status == .created && added.text.contains("dev@acme.test added as member"))
            let secret = try #require(added.text.range(of: #"<code class="secret">"#).map { String(added.text[$0.upperBound...].prefix { $0 != "<" }) })
            #expect(secret.hasPrefix("ddu_"))
            let listed = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken)
                .decoded(Schemas.MemberPage.self)
            let member = try #require(listed.items.first { $0.user.email == "dev@acme.test" })
            #expect(member.role == .member)

            // The member's own session sees the list but may not change it.
            var dev = Browser(server: server)
            #expect(try await dev.signIn(secret).status == .seeOther)
            let devPage = try await dev.get("/members")
            #expect(devPage.status == .ok && devPage.text.contains("dev@acme.test") && !devPage.text.contains("/role\""))
            let devCsrf = try await dev.csrf("/members")
            let refused = try await dev.post("/members/\(member.user.id)/role", [("csrf", devCsrf), ("role", "owner")])
            #expect(refused.status == .forbidden && refused.text.contains("owners and admins"))

            #expect(try await owner.post("/members/\(member.user.id)/role", [("csrf", csrf), ("role", "admin")]).status == .seeOther)
            let promoted = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/members", token: server.ownerToken)
                .decoded(Schemas.MemberPage.self)
            #expect(promoted.items.first { $0.user.id == member.user.id }?.role == .admin)
            let badRole = try await owner.post("/members/\(member.user.id)/role", [("csrf", csrf), ("role", "<b>king</b>")])
            #expect(badRole.status == .badRequest && badRole.text.contains("&lt;b&gt;king&lt;/b&gt;"))
            #expect(try await owner.post("/members/\(member.user.id)/remove", [("csrf", csrf)]).status == .seeOther)
            // Removed from the organization: their session ends with their token's grant.
            #expect(try await dev.get("/").text.contains(#"name="token""#))

            let csv = try await owner.get("/usage.csv")
            #expect(csv.status == .ok && csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(csv.headers[.contentDisposition]?.contains("drydock-usage-") == true)
            let lines = csv.text.split(separator: "\r\n")
            #expect(lines.first == "section,key,name,build_seconds,build_minutes,storage_gb_months,quantity,unit_price,amount")
            #expect(lines.contains { $0.hasPrefix("cost,") && $0.contains("Startup plan") } && lines.last?.hasPrefix("total,") == true)
            let usage = try await owner.get("/usage?month=2026-01")
            #expect(usage.status == .ok && usage.text.contains("Usage · 2026-01") && usage.text.contains("No builds in this period"))
        }
    }

    @Test("In a real browser: sign in, follow a running build's log live and cancel it from its page, every page at desktop and phone widths, user text shown as text and never run, a token created and revoked, the cache policy changed, a tag deleted, sign out; the cache's saved time in the API")
    func browser() async throws {
        try await withTestServer { server in
            let fixture = try await BuildFixture.make(server, project: "web")
            try await withTemporaryDirectory { dir in
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server),
                                                       cache: dir.appendingPathComponent("cache"), name: "dashboard-builder")
                do {
                    try await browserSession(fixture, builder: builder)
                } catch {
                    await builder.stop()
                    throw error
                }
                await builder.stop()
            }
        }
    }

    func browserSession(_ fixture: BuildFixture, builder: BuilderProcess) async throws {
        let server = fixture.server
        let dockerfile = """
            FROM \(fixture.base)
            ARG GREETING
            RUN echo "$GREETING" && echo '<script>window.__xss=1</script><b class="injected">bold</b>'
            RUN echo second > /second && sleep 1
            """
        let html = "<img src=x onerror=window.__xss2=1>"
        let first = try await fixture.queue(["Dockerfile": dockerfile]) {
            .init(contextDigest: $0, buildArgs: .init(additionalProperties: ["GREETING": html]), tags: ["app:v1"])
        }
        let built = try await fixture.finished(first.id)
        try #require(built.status == .succeeded, "the first build: \(built.error ?? "") \(builder.output.suffix(2000))")
        let again = try await fixture.queue(["Dockerfile": dockerfile]) {
            .init(contextDigest: $0, buildArgs: .init(additionalProperties: ["GREETING": html]), tags: ["app:v2"])
        }
        let cached = try await fixture.finished(again.id)
        try #require(cached.status == .succeeded, "the cached rebuild: \(cached.error ?? "")")

        // The cache's saved time: each cached step saved what it took when it last ran uncached.
        let runs = built.steps.filter { $0.instruction.hasPrefix("RUN") }
        let reused = cached.steps.filter { $0.instruction.hasPrefix("RUN") }
        #expect(runs.count == 2 && runs.allSatisfy { !$0.cached && ($0.durationMs ?? 0) > 0 })
        #expect(reused.count == 2 && reused.allSatisfy(\.cached))
        for step in reused {
            let original = try #require(runs.first { $0.instruction == step.instruction })
            #expect(step.savedMs == original.durationMs, "\(step.instruction): saved \(step.savedMs ?? -1) ms, it took \(original.durationMs ?? -1) ms")
        }
        #expect(built.cacheSavedMs == 0)
        #expect(cached.cacheSavedMs == cached.steps.filter(\.cached).reduce(0) { $0 + ($1.savedMs ?? 0) } && (cached.cacheSavedMs ?? 0) >= 1000,
                "the sleeping step alone saved a second: \(cached.cacheSavedMs ?? -1) ms")

        // A build that runs for ten minutes, for the browser to follow as it runs and cancel from its page
        // (whatever the machine's load, it is still printing when the page opens).
        let live = try await fixture.queue(["Dockerfile": """
            FROM \(fixture.base)
            RUN for i in $(seq 1 600); do echo "tick $i"; sleep 1; done
            """]) { .init(contextDigest: $0, tags: ["app:live"]) }
        _ = try await fixture.wait(live.id) { $0.status != .queued }

        let shots = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-dashboard-screenshots-\(getpid())").path
        try? FileManager.default.removeItem(atPath: shots)
        let script = packageRoot.appendingPathComponent("Tests/Fixtures/dashboard-browser.py").path
        let outcome = try await ChildProcess.run(["python3", script, server.baseURL, server.ownerToken, fixture.projectId, again.id, live.id, shots, first.id])
        print("dashboard screenshots (desktop and phone widths): \(shots)")
        print(outcome.output)
        #expect(outcome.status == 0, "the browser session failed: \(outcome.errorOutput.suffix(4000))")
        let pictures = (try? FileManager.default.contentsOfDirectory(atPath: shots)) ?? []
        #expect(pictures.filter { $0.hasSuffix("-phone.png") }.count >= 10 && pictures.filter { $0.hasSuffix("-desktop.png") }.count >= 10)
        let finished = try await fixture.finished(live.id)
        #expect(finished.status == .canceled)
    }
}
