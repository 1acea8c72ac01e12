import Foundation
import HTTPTypes
import OpenAPIRuntime

/// Resolves the bearer token once per request, checks the operation against
/// `Authorization.table`, and binds the caller for the handler.
struct AuthMiddleware: ServerMiddleware {
    let authenticator: TokenAuthenticator

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        if Authorization.table[operationID] == .anyone {
            return try await next(request, body, metadata)
        }
        let caller = try await authenticator.authenticate(authorization: request.headerFields[.authorization])
        try Authorization.require(caller, operation: operationID)
        // The token's use is written while the request runs, not before it: the first request of
        // a token each minute (fifty builders starting at once wait for that one write) costs
        // no round trip and commit of its own. The answer still goes out after it is written.
        async let used: Void = authenticator.recordUse(caller)
        let answer = try await Caller.$current.withValue(caller) {
            try await next(request, body, metadata)
        }
        await used
        return answer
    }
}
