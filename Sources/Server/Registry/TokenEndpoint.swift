import Foundation
import Hummingbird
import NIOCore

extension RegistryRoutes {
    /// The docker token endpoint: grants the intersection of the scopes asked for and what the
    /// credential may do. GET with Basic auth, or the OAuth2 POST form (password grant).
    func token(_ request: Request, context: RegistryRequestContext, form: String?) async throws -> Response {
        var scopes: [String] = []
        var formFields: [String: String] = [:]
        if let form {
            guard let pairs = parseFormURLEncoded(form) else {
                throw RegistryError(.badRequest, "UNSUPPORTED", "the token request's form is malformed (a bad percent escape, a NUL byte or invalid UTF-8)")
            }
            for (key, value) in pairs {
                if key == "scope" { scopes += value.split(separator: " ").map(String.init) } else { formFields[key] = value }
            }
        }
        for item in request.uri.queryParameters.getAll("scope") { scopes += item.split(separator: " ").map(String.init) }

        let caller: Caller
        do {
            if let password = formFields["password"] ?? formFields["refresh_token"] {
                caller = try await authenticator.authenticate(secret: password)
            } else {
                let grant = try requireGrant(request, context, scope: nil)
                // A registry token does not buy another one: only Drydock tokens do.
                guard grant.access == nil else { throw DomainError.invalidToken }
                caller = grant.caller
            }
        } catch is DomainError {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "invalid credentials", headers: challenge(request, scope: nil))
        }

        var access: [String: Set<String>] = [:]
        var catalog = false
        for scope in scopes.compactMap(RegistryScope.init) {
            let name = scope.name
            if scope.type == "registry", name == "catalog" {
                catalog = true
                continue
            }
            guard scope.type == "repository", let repository = RepositoryName(name),
                  try await visibleProject(caller, repository.projectId)
            else { continue }
            var granted = Set<String>()
            for action in scope.actions {
                let wanted = action == "*" ? ["pull", "push", "delete"] : [action]
                for name in wanted {
                    if let action = RegistryAction(rawValue: name), caller.registryActions.contains(action) { granted.insert(name) }
                }
            }
            if !granted.isEmpty { access[name, default: []].formUnion(granted) }
        }
        let (token, expiresIn) = try signer.issue(caller: caller, access: access, catalog: catalog)
        struct Answer: Encodable {
            let token: String
            let access_token: String
            let expires_in: Int
            let issued_at: String
            let refresh_token: String?
        }
        let answer = Answer(token: token, access_token: token, expires_in: expiresIn,
                            issued_at: (try? RFC3339DateTranscoder().encode(Date())) ?? "",
                            refresh_token: form != nil && formFields["grant_type"] == "password" ? formFields["password"] : nil)
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(answer))))
    }
}
