import AsyncHTTPClient
import DrydockClient
import DrydockProcess
import Foundation
import NIOCore
import NIOFoundationCompat

/// Where the CLI's token came from, in the order it looks: `--token`, `DRYDOCK_TOKEN`, an OIDC
/// exchange when running in CI, the saved login.
enum TokenSource: Equatable, Sendable {
    case flag
    case environment
    case oidc(CIProvider)
    case savedLogin
    case none

    var description: String {
        switch self {
        case .flag: "--token"
        case .environment: "DRYDOCK_TOKEN"
        case .oidc(let provider): "OIDC exchange (\(provider.name) ID token from \(provider.source))"
        case .savedLogin: "saved login (\(CLIConfiguration.directory().appendingPathComponent("config.json").path))"
        case .none: "none"
        }
    }
}

/// A CI system whose jobs can prove who they are with an OIDC ID token.
enum CIProvider: String, Equatable, Sendable {
    case github, gitlab, circleci, buildkite

    var name: String {
        switch self {
        case .github: "GitHub Actions"
        case .gitlab: ProcessInfo.processInfo.environment["GITLAB_CI"] == "true" ? "GitLab CI" : "CI"
        case .circleci: "CircleCI"
        case .buildkite: "Buildkite"
        }
    }

    /// Where the ID token is read from.
    var source: String {
        switch self {
        case .github: "ACTIONS_ID_TOKEN_REQUEST_URL"
        case .gitlab: "DRYDOCK_OIDC_TOKEN"
        case .circleci: "CIRCLE_OIDC_TOKEN_V2"
        case .buildkite: "buildkite-agent oidc request-token"
        }
    }

    /// The CI system this process runs in, when it offers an ID token.
    static func detect(_ environment: [String: String]) -> CIProvider? {
        func set(_ name: String) -> Bool { !(environment[name] ?? "").isEmpty }
        if set("ACTIONS_ID_TOKEN_REQUEST_URL"), set("ACTIONS_ID_TOKEN_REQUEST_TOKEN") { return .github }
        // GitLab hands ID tokens out through `id_tokens:` variables; ours is DRYDOCK_OIDC_TOKEN
        // (any CI that sets it is served the same way).
        if set("DRYDOCK_OIDC_TOKEN") { return .gitlab }
        if set("CIRCLE_OIDC_TOKEN_V2") { return .circleci }
        if environment["BUILDKITE"] == "true", set("BUILDKITE_AGENT_ACCESS_TOKEN") || ImageExport.which("buildkite-agent") != nil { return .buildkite }
        return nil
    }

    /// The job's ID token, asked for with this audience where the CI system lets the job choose.
    func idToken(audience: String, environment: [String: String]) async throws -> String {
        switch self {
        case .github:
            // As GitHub documents: the request URL plus `&audience=`, the request token as a bearer.
            guard let base = environment["ACTIONS_ID_TOKEN_REQUEST_URL"], let bearer = environment["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] else {
                throw CLIError("ACTIONS_ID_TOKEN_REQUEST_URL is not set: give the workflow 'permissions: id-token: write'")
            }
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+?/:")
            let url = base + (base.contains("?") ? "&" : "?") + "audience=" + (audience.addingPercentEncoding(withAllowedCharacters: allowed) ?? audience)
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "bearer \(bearer)")
            request.headers.add(name: "Accept", value: "application/json")
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .ok else {
                    throw CLIError("GitHub Actions refused an ID token (HTTP \(response.status.code)); the workflow needs 'permissions: id-token: write'")
                }
                struct Answer: Decodable { var value: String }
                guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(buffer: body)), !answer.value.isEmpty else {
                    throw CLIError("GitHub Actions answered the ID token request without a 'value'")
                }
                return answer.value
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("could not ask GitHub Actions for an ID token at ACTIONS_ID_TOKEN_REQUEST_URL: \(error)")
            }
        case .gitlab:
            return environment["DRYDOCK_OIDC_TOKEN"] ?? ""
        case .circleci:
            return environment["CIRCLE_OIDC_TOKEN_V2"] ?? ""
        case .buildkite:
            let result = try await ChildProcess.run(["buildkite-agent", "oidc", "request-token", "--audience", audience],
                                                    environment: environment)
            let token = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            guard result.succeeded, !token.isEmpty else {
                throw CLIError("buildkite-agent oidc request-token failed (exit \(result.status)): \(result.failureText(limit: 300))")
            }
            return token
        }
    }
}

/// One OIDC exchange per CLI process: every client it makes shares the token.
actor OIDCExchangeCache {
    static let shared = OIDCExchangeCache()
    private var grants: [String: Components.Schemas.OIDCTokenGrant] = [:]

    func token(server: URL, provider: CIProvider, environment: [String: String]) async throws -> Components.Schemas.OIDCTokenGrant {
        let key = server.absoluteString
        if let grant = grants[key], grant.expiresAt.timeIntervalSinceNow > 60 { return grant }
        let anonymous = DrydockClient(baseURL: server, token: nil)
        let audience: String
        if let configured = environment["DRYDOCK_OIDC_AUDIENCE"], !configured.isEmpty {
            audience = configured
        } else {
            do {
                audience = try await anonymous.oidcConfiguration().audience
            } catch {
                throw CLIError("running in \(provider.name) without a token, but \(server.absoluteString) does not say which OIDC audience it expects: \(error)")
            }
        }
        let idToken = try await provider.idToken(audience: audience, environment: environment)
        let grant: Components.Schemas.OIDCTokenGrant
        do {
            do {
                grant = try await anonymous.exchangeOIDCToken(idToken)
            } catch let error as DrydockClientError {
                // Trusted by projects of several organizations: DRYDOCK_PROJECT (an id) says which.
                guard case .api(_, "ambiguous_trust", _, _) = error, let project = environment["DRYDOCK_PROJECT"],
                      project.count == 16, project.allSatisfy({ $0.isLowercase || $0.isNumber })
                else { throw error }
                grant = try await anonymous.exchangeOIDCToken(idToken, projectId: project)
            }
        } catch let error as DrydockClientError {
            if case .api(_, _, let detail, _) = error {
                throw CLIError("the server refused this \(provider.name) job's ID token: \(detail)")
            }
            throw error
        }
        grants[key] = grant
        return grant
    }
}
