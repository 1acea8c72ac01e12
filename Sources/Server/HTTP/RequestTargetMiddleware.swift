import Foundation
import Hummingbird

/// Refuses, before routing, a request whose path or query does not decode to clean text: a
/// malformed percent escape, a NUL byte or invalid UTF-8. Nothing behind it (PostgreSQL rejects
/// NUL; the parsers expect text) ever sees such a value. Registry paths get the OCI error
/// format, everything else problem+json.
struct RequestTargetMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let target = request.uri.description
        guard isCleanRequestTarget(target) else {
            let message = "the request's path or query holds a malformed percent escape, a NUL byte or invalid UTF-8"
            if request.uri.path.hasPrefix("/v2") {
                throw RegistryError(.badRequest, "UNSUPPORTED", message)
            }
            return ProblemMiddleware.hummingbirdResponse(APIError.badRequest(message, code: "malformed_request"), path: request.uri.path)
        }
        return try await next(request, context)
    }
}
