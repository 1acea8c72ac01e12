import AsyncHTTPClient
@_exported import DrydockAPITypes
import Foundation
import HTTPTypes
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

/// A failure talking to a Drydock server, as one clear sentence.
public enum DrydockClientError: Error, CustomStringConvertible, Sendable {
    /// The server answered with a problem (4xx/5xx).
    case api(status: Int, code: String, detail: String, fields: [Components.Schemas.FieldError])
    /// The server could not be reached.
    case unreachable(url: String, reason: String)
    /// Anything else (an answer the contract does not describe, a bad URL).
    case other(String)

    public var description: String {
        switch self {
        case .api(let status, let code, let detail, _):
            switch status {
            case 401: return "\(detail) (HTTP 401)"
            default: return "\(detail) (HTTP \(status) \(code))"
            }
        case .unreachable(let url, let reason):
            return "cannot reach the Drydock server at \(url): \(reason). Is it running? (set DRYDOCK_API_URL or use 'drydock login --api-url')"
        case .other(let message):
            return message
        }
    }

    public var status: Int? {
        if case .api(let status, _, _, _) = self { return status }
        return nil
    }
}

/// The Swift client for the Drydock API: the client generated from `openapi.yaml` behind a small
/// façade that sets the token, applies timeouts and turns every failure into `DrydockClientError`.
/// The CLI and the builder workers talk to the server only through this.
public struct DrydockClient: Sendable {
    public let baseURL: URL
    /// The generated client, for operations the façade does not wrap yet.
    public let api: Client
    /// The token the client sends (nil: none).
    public let token: String?

    public init(baseURL: URL, token: String?, timeout: Duration = .seconds(30), httpClient: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.token = token
        let transport = AsyncHTTPClientTransport(configuration: .init(client: httpClient, timeout: .init(timeout)))
        self.api = Client(
            serverURL: baseURL, configuration: .init(dateTranscoder: RFC3339DateTranscoder()), transport: transport,
            middlewares: [ClientHeadersMiddleware(token: token), ProblemDecodingMiddleware()])
    }

    /// Runs one call, mapping transport and server failures to `DrydockClientError`.
    public func call<T>(_ body: (Client) async throws -> T) async throws -> T {
        do {
            return try await body(api)
        } catch let error as ClientError {
            throw map(error.underlyingError, causeDescription: error.causeDescription)
        } catch let error as DrydockClientError {
            throw error
        } catch {
            throw map(error, causeDescription: "\(error)")
        }
    }

    private func map(_ error: any Error, causeDescription: String) -> DrydockClientError {
        if let error = error as? DrydockClientError { return error }
        let text = "\(error)"
        if baseURL.scheme == "https", text.contains("SSL") || text.contains("TLS") || text.lowercased().contains("handshake") {
            let plain = "http://\(baseURL.host ?? "")\(baseURL.port.map { ":\($0)" } ?? "")"
            return .other("cannot talk to \(baseURL.absoluteString): the TLS handshake failed, so nothing speaks HTTPS there; if the server serves plain HTTP, use \(plain)")
        }
        if let error = error as? HTTPClientError {
            return .unreachable(url: baseURL.absoluteString, reason: "\(error)")
        }
        if text.contains("connect") || text.contains("Connection") || text.contains("refused") {
            return .unreachable(url: baseURL.absoluteString, reason: text.contains("refused") ? "connection refused" : text)
        }
        return .other("unexpected answer from \(baseURL.absoluteString): \(causeDescription) (\(text))")
    }

    // MARK: identity

    public func whoami() async throws -> Components.Schemas.Caller {
        try await call { try await $0.getCurrentCaller().ok.body.json }
    }

    // MARK: organizations

    public func organization(_ id: String) async throws -> Components.Schemas.Organization {
        try await call { try await $0.getOrganization(path: .init(orgId: id)).ok.body.json }
    }

    public func members(_ orgId: String, limit: Int? = nil, cursor: String? = nil) async throws -> Components.Schemas.MemberPage {
        try await call { try await $0.listMembers(path: .init(orgId: orgId), query: .init(limit: limit, cursor: cursor)).ok.body.json }
    }

    public func addMember(_ orgId: String, email: String, role: Components.Schemas.Role? = nil) async throws -> Components.Schemas.CreatedMember {
        try await call {
            try await $0.addMember(path: .init(orgId: orgId), body: .json(.init(email: email, role: role))).created.body.json
        }
    }

    /// Every member, following cursors.
    public func allMembers(_ orgId: String) async throws -> [Components.Schemas.Member] {
        var items: [Components.Schemas.Member] = []
        var cursor: String?
        repeat {
            let page = try await members(orgId, limit: 200, cursor: cursor)
            items += page.items
            cursor = page.nextCursor
        } while cursor != nil
        return items
    }

    public func updateMember(_ orgId: String, userId: String, role: Components.Schemas.Role) async throws -> Components.Schemas.Member {
        try await call {
            try await $0.updateMember(path: .init(orgId: orgId, userId: userId), body: .json(.init(role: role))).ok.body.json
        }
    }

    public func removeMember(_ orgId: String, userId: String) async throws {
        try await call { _ = try await $0.removeMember(path: .init(orgId: orgId, userId: userId)).noContent }
    }

    // MARK: projects

    public func projects(limit: Int? = nil, cursor: String? = nil) async throws -> Components.Schemas.ProjectPage {
        try await call { try await $0.listProjects(query: .init(limit: limit, cursor: cursor)).ok.body.json }
    }

    /// Every project, following cursors.
    public func allProjects() async throws -> [Components.Schemas.Project] {
        var items: [Components.Schemas.Project] = []
        var cursor: String?
        repeat {
            let page = try await projects(limit: 200, cursor: cursor)
            items += page.items
            cursor = page.nextCursor
        } while cursor != nil
        return items
    }

    public func createProject(name: String, keepGigabytes: Int? = nil, keepDays: Int? = nil) async throws -> Components.Schemas.Project {
        let policy = (keepGigabytes == nil && keepDays == nil) ? nil : Components.Schemas.CachePolicyUpdate(keepGigabytes: keepGigabytes, keepDays: keepDays)
        return try await call { try await $0.createProject(body: .json(.init(name: name, cachePolicy: policy))).created.body.json }
    }

    public func project(_ id: String) async throws -> Components.Schemas.Project {
        try await call { try await $0.getProject(path: .init(projectId: id)).ok.body.json }
    }

    public func updateProject(_ id: String, name: String? = nil, keepGigabytes: Int? = nil, keepDays: Int? = nil,
                              builds: Components.Schemas.BuildSettingsUpdate? = nil) async throws -> Components.Schemas.Project {
        let policy = (keepGigabytes == nil && keepDays == nil) ? nil : Components.Schemas.CachePolicyUpdate(keepGigabytes: keepGigabytes, keepDays: keepDays)
        return try await call {
            try await $0.updateProject(path: .init(projectId: id), body: .json(.init(name: name, cachePolicy: policy, builds: builds))).ok.body.json
        }
    }

    public func deleteProject(_ id: String) async throws {
        try await call { _ = try await $0.deleteProject(path: .init(projectId: id)).noContent }
    }

    // MARK: tokens

    public func tokens(limit: Int? = nil, cursor: String? = nil, kind: Components.Schemas.TokenKind? = nil,
                       projectId: String? = nil, includeRevoked: Bool? = nil) async throws -> Components.Schemas.TokenPage {
        try await call {
            try await $0.listTokens(query: .init(limit: limit, cursor: cursor, kind: kind, projectId: projectId, includeRevoked: includeRevoked)).ok.body.json
        }
    }

    public func createToken(name: String, kind: Components.Schemas.TokenKind? = nil, projectId: String? = nil,
                            expiresInSeconds: Int? = nil) async throws -> Components.Schemas.CreatedToken {
        try await call {
            try await $0.createToken(body: .json(.init(name: name, kind: kind, projectId: projectId, expiresInSeconds: expiresInSeconds))).created.body.json
        }
    }

    public func token(_ id: String) async throws -> Components.Schemas.Token {
        try await call { try await $0.getToken(path: .init(tokenId: id)).ok.body.json }
    }

    public func revokeToken(_ id: String) async throws {
        try await call { _ = try await $0.revokeToken(path: .init(tokenId: id)).noContent }
    }
}

extension DrydockClient {
    // MARK: registry

    public func createPullToken(projectId: String, name: String? = nil, expiresInSeconds: Int? = nil) async throws -> Components.Schemas.CreatedToken {
        try await call {
            try await $0.createPullToken(path: .init(projectId: projectId), body: .json(.init(name: name, expiresInSeconds: expiresInSeconds))).created.body.json
        }
    }

    public func repositories(projectId: String) async throws -> [Components.Schemas.Repository] {
        try await call { try await $0.listRepositories(path: .init(projectId: projectId)).ok.body.json.items }
    }

    public func tags(projectId: String, repository: String) async throws -> Components.Schemas.TagList {
        try await call {
            try await $0.listRepositoryTags(path: .init(projectId: projectId), query: .init(repository: repository)).ok.body.json
        }
    }

    public func deleteTag(projectId: String, repository: String, tag: String) async throws {
        try await call {
            _ = try await $0.deleteRepositoryTag(path: .init(projectId: projectId), query: .init(repository: repository, tag: tag)).noContent
        }
    }

    public func deleteImage(projectId: String, repository: String, digest: String) async throws {
        try await call {
            _ = try await $0.deleteImage(path: .init(projectId: projectId), query: .init(repository: repository, digest: digest)).noContent
        }
    }

    public func registryUsage(projectId: String) async throws -> Components.Schemas.RegistryUsage {
        try await call { try await $0.getRegistryUsage(path: .init(projectId: projectId)).ok.body.json }
    }

    public func retentionPolicy(projectId: String) async throws -> Components.Schemas.RetentionPolicy {
        try await call { try await $0.getRetentionPolicy(path: .init(projectId: projectId)).ok.body.json }
    }

    public func setRetentionPolicy(projectId: String, _ policy: Components.Schemas.RetentionPolicy) async throws -> Components.Schemas.RetentionPolicy {
        try await call { try await $0.setRetentionPolicy(path: .init(projectId: projectId), body: .json(policy)).ok.body.json }
    }

    public func previewRetention(projectId: String) async throws -> Components.Schemas.RetentionPreview {
        try await call { try await $0.previewRetention(path: .init(projectId: projectId)).ok.body.json }
    }
}

/// Sets `Authorization` and `User-Agent` on every request. The token never appears in errors.
struct ClientHeadersMiddleware: ClientMiddleware {
    let token: String?

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        if let token, !token.isEmpty { request.headerFields[.authorization] = "Bearer \(token)" }
        request.headerFields[.userAgent] = "drydock-client/1.0"
        return try await next(request, body, baseURL)
    }
}

/// Turns any 4xx/5xx answer into `DrydockClientError.api` carrying the server's problem detail,
/// so callers only ever handle the success case of each operation.
struct ProblemDecodingMiddleware: ClientMiddleware {
    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let (response, responseBody) = try await next(request, body, baseURL)
        guard response.status.code >= 400 else { return (response, responseBody) }
        var data = Data()
        if let responseBody { data = (try? await Data(collecting: responseBody, upTo: 256 * 1024)) ?? Data() }
        if let problem = try? JSONDecoder().decode(Components.Schemas.Problem.self, from: data) {
            throw DrydockClientError.api(status: response.status.code, code: problem.code,
                                         detail: problem.detail ?? problem.title, fields: problem.errors ?? [])
        }
        // Not a Drydock answer (every error of the API is problem+json): a wrong address or a proxy.
        let text = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let host = baseURL.absoluteString
        let reason = response.status.reasonPhrase.isEmpty ? "" : " \(response.status.reasonPhrase)"
        let answer = "\(response.status.code)\(reason)\(text.isEmpty ? "" : ": \(text)")"
        throw DrydockClientError.api(
            status: response.status.code, code: "not_drydock",
            detail: "\(host) answered \(answer), which is not a Drydock server's answer to \(request.path ?? "the request"); "
                + "is \(host) the server's address (such as http://127.0.0.1:8080, without /api/v1)?",
            fields: [])
    }
}
