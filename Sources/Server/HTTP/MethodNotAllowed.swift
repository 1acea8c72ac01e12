import HTTPTypes
import Hummingbird
import Synchronization

/// The API's paths and the methods each answers, as the generated handlers are registered.
final class RouteTable: Sendable {
    private let routes = Mutex<[(segments: [Substring], method: HTTPRequest.Method)]>([])

    func add(_ path: String, method: HTTPRequest.Method) {
        routes.withLock { $0.append((path.split(separator: "/"), method)) }
    }

    /// The methods the path answers (`{param}` matches any one segment); empty for an unknown path.
    func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "/") } ?? []
        return routes.withLock { routes in
            routes.filter { route in
                route.segments.count == segments.count
                    && zip(route.segments, segments).allSatisfy { template, segment in
                        (template.hasPrefix("{") && template.hasSuffix("}")) || template.hasPrefix(":") || template == segment
                    }
            }.map(\.method)
        }
    }
}

/// An `/api/v1` request the router found no handler for: a known path with another method is
/// answered 405 with `Allow` (as HTTP says), an unknown path 404; both as problem+json.
struct APINotFoundMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && request.uri.path.hasPrefix("/api/") {
            let path = request.uri.path
            var methods = routes.methods(for: path)
            guard !methods.isEmpty else {
                return ProblemMiddleware.hummingbirdResponse(
                    APIError(status: .notFound, code: "not_found", detail: "no API operation at \(path); see /openapi.yaml"), path: path)
            }
            if methods.contains(.get), !methods.contains(.head) { methods.append(.head) }
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            var response = ProblemMiddleware.hummingbirdResponse(
                APIError(status: .methodNotAllowed, code: "method_not_allowed", detail: "\(path) answers \(allow), not \(request.method.rawValue)"),
                path: path)
            response.headers[.allow] = allow
            return response
        }
    }
}
