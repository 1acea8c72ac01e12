import HTTPTypes
import Hummingbird

/// Every answer outside the API and the registry (the dashboard's pages, its assets, its
/// redirects and its 404s) carries the browser protections: a Content-Security-Policy that allows
/// only this site's own script and style and no framing, `X-Frame-Options: DENY`, a
/// `Referrer-Policy`, and no MIME sniffing. A path no route knows answers the dashboard's own 404.
struct DashboardHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    let notFound: @Sendable () -> Response

    static var policy: String {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard !path.hasPrefix("/api/"), !path.hasPrefix("/v2/"), path != "/v2" else {
            return try await next(request, context)
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            response = notFound()
        }
        response.headers[.contentSecurityPolicy] = Self.policy
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return response
    }
}
