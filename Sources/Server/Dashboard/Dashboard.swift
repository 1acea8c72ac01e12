import Crypto
import DrydockAPITypes
import DrydockWireFormats
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore

/// The web dashboard under `/`: pages rendered on the server from the API's own operations.
///
/// A signed-in browser holds a session (`DashboardSessions`) that stands for one token. Every
/// page resolves it to that token's current grant, checks each operation it calls against
/// `Authorization.table` exactly as `AuthMiddleware` does, and calls the `APIHandler` with the
/// caller bound, so a page can show and change only what the token could through the API, and
/// another organization's resources answer 404 here as they do there.
struct Dashboard: Sendable {
    let api: APIHandler
    let authenticator: TokenAuthenticator
    let sessions: DashboardSessions
    let queries: DashboardQueries
    let library: MustacheLibrary
    /// Cookies carry `Secure` when the server's public URL is HTTPS (or the request came through
    /// an HTTPS proxy).
    let publicURL: String?
    let logger: Logger

    init(api: APIHandler, authenticator: TokenAuthenticator, database: Database, publicURL: String?, logger: Logger) throws {
        self.api = api
        self.authenticator = authenticator
        self.sessions = DashboardSessions(client: database, logger: logger)
        self.queries = DashboardQueries(client: database, logger: logger)
        self.library = try DashboardTemplates.library()
        self.publicURL = publicURL
        self.logger = logger
    }

    /// A signed-in request: the session and the caller its token is now.
    struct Session {
        let id: String
        let caller: Caller
        var csrf: String { DashboardSessions.csrfToken(sessionId: id) }
    }

    // MARK: routes

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/static/dashboard.css") { _, _ in Self.asset(DashboardAssets.css, type: "text/css; charset=utf-8") }
        router.get("/static/dashboard.js") { _, _ in Self.asset(DashboardAssets.javascript, type: "text/javascript; charset=utf-8") }

        router.get("/") { request, _ in
            await timed { signedIn in
                guard let session = try await session(request) else { return signInPage(error: nil, status: .ok) }
                signedIn = session
                return try await overview(session, request: request)
            }
        }
        router.post("/signin") { request, _ in await timed { _ in try await signIn(request) } }
        router.post("/signout") { request, _ in await timed { _ in try await signOut(request) } }

        router.get("/projects/:id") { request, context in
            await page(request) { try await projectPage($0, id: context.parameters.get("id") ?? "", request: request) }
        }
        router.post("/projects/:id/settings") { request, context in
            await form(request) { try await saveSettings($0, id: context.parameters.get("id") ?? "", form: $1) }
        }
        router.get("/projects/:id/registry") { request, context in
            await page(request) { try await registryPage($0, id: context.parameters.get("id") ?? "", request: request) }
        }
        router.get("/projects/:id/registry/delete") { request, context in
            await page(request) { try await confirmDelete($0, id: context.parameters.get("id") ?? "", request: request) }
        }
        router.post("/projects/:id/registry/delete") { request, context in
            await form(request) { try await deleteFromRegistry($0, id: context.parameters.get("id") ?? "", form: $1) }
        }
        router.get("/builds/:id") { request, context in
            await page(request) { try await buildPage($0, id: context.parameters.get("id") ?? "", request: request) }
        }
        router.get("/builds/:id/log") { request, context in
            await page(request) { try await buildLog($0, id: context.parameters.get("id") ?? "", request: request) }
        }
        router.post("/builds/:id/cancel") { request, context in
            await form(request) { session, _ in try await cancelBuild(session, id: context.parameters.get("id") ?? "") }
        }
        router.get("/usage") { request, _ in await page(request) { try await usagePage($0, request: request) } }
        router.get("/usage.csv") { request, _ in await page(request) { try await usageCSV($0, request: request) } }
        router.get("/tokens") { request, _ in await page(request) { try await tokensPage($0, request: request) } }
        router.post("/tokens") { request, _ in await form(request) { try await createToken($0, form: $1) } }
        router.get("/tokens/:id") { request, context in
            await page(request) { try await tokenPage($0, id: context.parameters.get("id") ?? "") }
        }
        router.post("/tokens/:id/revoke") { request, context in
            await form(request) { session, _ in try await revokeToken(session, id: context.parameters.get("id") ?? "") }
        }
        router.get("/members") { request, _ in await page(request) { try await membersPage($0, request: request) } }
        router.post("/members") { request, _ in await form(request) { try await addMember($0, form: $1) } }
        router.post("/members/:user/role") { request, context in
            await form(request) { try await changeRole($0, userId: context.parameters.get("user") ?? "", form: $1) }
        }
        router.post("/members/:user/remove") { request, context in
            await form(request) { session, _ in try await removeMember(session, userId: context.parameters.get("user") ?? "") }
        }
    }

    // MARK: sessions, forms, errors

    func session(_ request: Request) async throws -> Session? {
        guard let id = request.cookies[DashboardSessions.cookieName]?.value, !id.isEmpty else { return nil }
        guard let grant = try await sessions.grant(sessionId: id), let caller = try? TokenAuthenticator.caller(for: grant) else { return nil }
        await authenticator.recordUse(caller)
        return Session(id: id, caller: caller)
    }

    /// Runs one API operation as the session's token: refused exactly as the API would refuse it.
    func call<T>(_ session: Session, _ operation: String, _ body: () async throws -> T) async throws -> T {
        try Authorization.require(session.caller, operation: operation)
        return try await Caller.$current.withValue(session.caller) { try await body() }
    }

    func may(_ session: Session, _ operation: String) -> Bool { Authorization.allows(session.caller, operation: operation) }

    /// A page for signed-in users; signed out, the sign-in page.
    func page(_ request: Request, _ render: (Session) async throws -> Response) async -> Response {
        await timed { signedIn in
            guard let session = try await session(request) else { return redirect("/") }
            signedIn = session
            return try await render(session)
        }
    }

    /// A form post: signed in, with the page's CSRF token, from this site.
    func form(_ request: Request, _ handle: (Session, Form) async throws -> Response) async -> Response {
        await timed { signedIn in
            guard let session = try await session(request) else { return redirect("/") }
            signedIn = session
            let form = try await Form(request)
            guard sameOrigin(request),
                  let sent = form["csrf"], Self.constantTimeEqual(sent, session.csrf)
            else {
                return errorPage(status: .forbidden, heading: "Form expired",
                                 message: "This form came from another site or an old page; reload the page and try again.", session: session)
            }
            return try await handle(session, form)
        }
    }

    /// Renders what went wrong in the user's words (with the navigation, once `body` has said who
    /// is signed in); times the page (`Server-Timing`).
    func timed(_ body: (inout Session?) async throws -> Response) async -> Response {
        let start = ContinuousClock.now
        var response: Response
        var session: Session?
        do {
            response = try await body(&session)
        } catch let error as FormError {
            response = errorPage(status: .badRequest, heading: "That did not work", message: error.message, session: session)
        } catch {
            let problem = ProblemMiddleware.problem(for: error, operationID: "dashboard", logger: logger)
            let heading = switch problem.status.code {
            case 404: "Not found"
            case 403: "Not allowed"
            case 400, 409, 402: "That did not work"
            default: "Something went wrong"
            }
            response = errorPage(status: problem.status, heading: heading, message: problem.detail, session: session)
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        response.headers[HTTPField.Name("Server-Timing")!] = String(format: "app;dur=%.2f", ms)
        return response
    }

    struct FormError: Error { let message: String }

    struct Form {
        let pairs: [(name: String, value: String)]

        init(_ request: Request) async throws {
            let type = request.headers[.contentType] ?? ""
            guard type.lowercased().hasPrefix("application/x-www-form-urlencoded") else {
                throw FormError(message: "expected a form (application/x-www-form-urlencoded)")
            }
            let buffer = try await request.body.collect(upTo: 64 * 1024)
            guard let pairs = parseFormURLEncoded(String(buffer: buffer)) else {
                throw FormError(message: "the form's fields are not valid text")
            }
            self.pairs = pairs
        }

        subscript(_ name: String) -> String? { pairs.first { $0.name == name }?.value }

        func text(_ name: String) -> String? {
            guard let value = self[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }

        func integer(_ name: String, label: String) throws -> Int? {
            guard let text = text(name) else { return nil }
            guard let value = Int(text) else { throw FormError(message: "\(label) must be a whole number, not '\(text)'") }
            return value
        }
    }

    func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin], origin != "null" else { return true }
        guard let host = request.head.authority else { return false }
        let originHost = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
        if originHost == host { return true }
        if let publicURL, origin == publicURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) { return true }
        return false
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    // MARK: rendering

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func html(_ template: String, _ context: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let body = library.render(context, withTemplate: template) ?? "template \(template) is missing"
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func redirect(_ location: String, cookie: String? = nil) -> Response {
        var headers: HTTPFields = [.location: location, .cacheControl: "no-store"]
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: .seeOther, headers: headers)
    }

    /// The frame of every signed-in page: who is signed in and the sign-out form's token.
    func frame(_ session: Session?, title: String, flash: String? = nil) -> [String: Any] {
        var context: [String: Any] = ["title": title, "nav": session != nil, "flash": Self.optional(flash)]
        if let session {
            context["csrf"] = session.csrf
            context["canUsage"] = may(session, "getOrganizationUsage")
            context["canMembers"] = may(session, "listMembers")
            context["who"] = "\(session.caller.kind.rawValue) token\(session.caller.role.map { " · \($0.rawValue)" } ?? "")"
        }
        return context
    }

    /// A value the templates test with a section: absent (and not looked up in outer contexts) when nil or empty.
    static func optional(_ text: String?) -> Any {
        guard let text, !text.isEmpty else { return NSNull() }
        return text
    }

    func errorPage(status: HTTPResponse.Status, heading: String, message: String, session: Session?) -> Response {
        var context = frame(session, title: heading)
        context["heading"] = heading
        context["message"] = message
        context["back"] = "/"
        context["backLabel"] = "Back to the overview"
        return html("error", context, status: status)
    }

    func signInPage(error: String?, status: HTTPResponse.Status) -> Response {
        var context = frame(nil, title: "Sign in")
        context["error"] = Self.optional(error)
        return html("signin", context, status: status)
    }

    // MARK: sign-in

    func signIn(_ request: Request) async throws -> Response {
        guard sameOrigin(request) else {
            return signInPage(error: "This sign-in form came from another site.", status: .forbidden)
        }
        let form = try await Form(request)
        guard let secret = form.text("token") else { return signInPage(error: "Paste a token to sign in.", status: .badRequest) }
        let caller: Caller
        do {
            caller = try await authenticator.authenticate(secret: secret)
        } catch {
            return signInPage(error: "That token is unknown, revoked or expired.", status: .unauthorized)
        }
        switch caller.kind {
        case .user, .organization, .project, .ci:
            break
        default:
            return signInPage(error: "A \(caller.kind.rawValue) token cannot sign in to the dashboard; use a user, organization or project token.",
                              status: .forbidden)
        }
        let id = try await sessions.start(tokenId: caller.tokenId)
        await authenticator.recordUse(caller)
        logger.info("dashboard sign-in", metadata: ["token": "\(caller.tokenId)", "kind": "\(caller.kind.rawValue)"])
        let maxAge = Int(sessions.lifetime.components.seconds)
        return redirect("/", cookie: cookie(id, maxAge: maxAge, request: request))
    }

    func signOut(_ request: Request) async throws -> Response {
        if let session = try await session(request) {
            let form = try await Form(request)
            guard let sent = form["csrf"], Self.constantTimeEqual(sent, session.csrf) else {
                return errorPage(status: .forbidden, heading: "Form expired", message: "Reload the page and sign out again.", session: session)
            }
            try await sessions.end(sessionId: session.id)
        }
        return redirect("/", cookie: cookie("", maxAge: 0, request: request))
    }

    func cookie(_ value: String, maxAge: Int, request: Request) -> String {
        let secure = (publicURL?.lowercased().hasPrefix("https://") ?? false)
            || request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
        return "\(DashboardSessions.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax\(secure ? "; Secure" : "")"
    }
}
