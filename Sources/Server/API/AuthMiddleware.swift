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
        let caller = try await authenticator.authenticate(authorization: request.headerFields[.authorization])
        guard Authorization.allows(caller, operation: operationID) else {
            throw APIError.forbidden("a \(caller.kind.rawValue) token\(caller.role.map { " (\($0.rawValue))" } ?? "") may not \(operationID)")
        }
        let response = try await Caller.$current.withValue(caller) {
            try await next(request, body, metadata)
        }
        // Grants may have narrowed: forget cached ones.
        if Self.mutatesGrants.contains(operationID), (200..<300).contains(response.0.status.code) {
            authenticator.invalidate()
        }
        return response
    }

    static let mutatesGrants: Set<String> = ["revokeToken", "removeMember", "updateMember", "deleteProject", "finishJob"]
}
