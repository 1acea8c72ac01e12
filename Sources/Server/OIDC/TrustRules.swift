import Foundation

/// Which CI jobs a trust relationship hands tokens that can start isolated builds only.
public enum TrustIsolation: String, Sendable, Codable, CaseIterable {
    case never
    case pullRequests = "pull-requests"
    case always
}

/// What an admin asks a project to trust, before it is turned into claim conditions.
public struct TrustRequest: Sendable {
    public var provider: TrustProvider
    public var subject: String?
    public var refs: [String] = []
    public var environments: [String] = []
    public var workflows: [String] = []
    public var issuer: String?
    public var claims: [String: String] = [:]
    public var isolate: TrustIsolation = .never

    public init(provider: TrustProvider, subject: String? = nil, refs: [String] = [], environments: [String] = [], workflows: [String] = [],
                issuer: String? = nil, claims: [String: String] = [:], isolate: TrustIsolation = .never) {
        self.provider = provider
        self.subject = subject
        self.refs = refs
        self.environments = environments
        self.workflows = workflows
        self.issuer = issuer
        self.claims = claims
        self.isolate = isolate
    }
}

/// A trust relationship as stored: the issuer and the claims (each with the values it may take)
/// an ID token must carry.
public struct TrustRule: Sendable, Equatable {
    public var issuer: String
    public var subject: String
    public var conditions: [String: [String]]
    public var isolate: TrustIsolation
}

/// How trust requests become claim conditions, and how ID tokens are matched against them. No
/// I/O: unit-tested on its own.
public enum TrustRules {
    /// Claims compared without regard to case (names on the providers are case-insensitive).
    static let caseInsensitiveClaims: Set<String> = ["repository", "repository_owner", "project_path", "namespace_path",
                                                     "organization_slug", "pipeline_slug"]

    public static func rule(for request: TrustRequest, settings: OIDCSettings) throws -> TrustRule {
        var conditions: [String: [String]] = [:]
        let issuers = settings.issuers[request.provider] ?? []
        func issuer() throws -> String {
            guard let requested = request.issuer.map(OIDCSettings.normalize) else {
                guard let first = issuers.first else {
                    throw DomainError.invalidField("issuer", "this server accepts no \(request.provider.displayName) issuer")
                }
                return first
            }
            guard issuers.contains(requested) else {
                let known = issuers.isEmpty ? "none" : issuers.joined(separator: ", ")
                throw DomainError.invalidField("issuer", "'\(requested)' is not an issuer this server accepts for \(request.provider.displayName) (accepted: \(known)); its operator adds issuers with DRYDOCK_OIDC_ISSUERS=\(request.provider.rawValue)=URL")
            }
            return requested
        }
        func subjectParts(_ what: String, example: String, exactly: Int? = nil) throws -> [String] {
            guard let subject = request.subject?.trimmingCharacters(in: .whitespaces), !subject.isEmpty else {
                throw DomainError.invalidField("subject", "is required for \(request.provider.displayName): \(what), such as \(example)")
            }
            let parts = subject.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            let valid = parts.count >= 2 && (exactly == nil || parts.count == exactly)
                && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || "._-".contains($0) } }
            guard valid else { throw DomainError.invalidField("subject", "'\(subject)' is not \(what), such as \(example)") }
            return parts
        }
        func refuse(_ field: String, _ values: [String]) throws {
            guard values.isEmpty else {
                throw DomainError.invalidField(field, "does not apply to \(request.provider.displayName) trust relationships")
            }
        }
        let subject: String
        let issuerValue: String
        switch request.provider {
        case .github:
            let parts = try subjectParts("a repository owner/repo", example: "acme/api", exactly: 2)
            subject = parts.joined(separator: "/")
            issuerValue = try issuer()
            conditions["repository"] = [subject]
            if !request.refs.isEmpty { conditions["ref"] = request.refs.map { $0.hasPrefix("refs/") ? $0 : "refs/heads/" + $0 } }
            if !request.environments.isEmpty { conditions["environment"] = request.environments }
            if !request.workflows.isEmpty { conditions["workflow"] = request.workflows }
        case .gitlab:
            let parts = try subjectParts("a project path group/project", example: "acme/api or acme/backend/api")
            subject = parts.joined(separator: "/")
            issuerValue = try issuer()
            conditions["project_path"] = [subject]
            if !request.refs.isEmpty { conditions["ref"] = request.refs.map(bareRef) }
            if !request.environments.isEmpty { conditions["environment"] = request.environments }
            try refuse("workflows", request.workflows)
        case .circleci:
            let parts = try subjectParts("organization-id/project-id (CircleCI's ids, from the organization and project settings)",
                                         example: "c1a2…/f0e9…", exactly: 2)
            subject = parts.joined(separator: "/")
            issuerValue = try issuer() + "/org/" + parts[0]
            conditions["oidc.circleci.com/project-id"] = [parts[1]]
            if !request.refs.isEmpty { conditions["oidc.circleci.com/vcs-ref"] = request.refs.map { $0.hasPrefix("refs/") ? $0 : "refs/heads/" + $0 } }
            try refuse("environments", request.environments)
            try refuse("workflows", request.workflows)
        case .buildkite:
            let parts = try subjectParts("organization/pipeline (their slugs)", example: "acme/api", exactly: 2)
            subject = parts.joined(separator: "/")
            issuerValue = try issuer()
            conditions["organization_slug"] = [parts[0]]
            conditions["pipeline_slug"] = [parts[1]]
            if !request.refs.isEmpty { conditions["build_branch"] = request.refs.map(bareRef) }
            try refuse("environments", request.environments)
            try refuse("workflows", request.workflows)
        case .oidc:
            guard request.issuer != nil else {
                throw DomainError.invalidField("issuer", "is required for a generic OIDC trust relationship (one of the server's DRYDOCK_OIDC_ISSUERS oidc=URL)")
            }
            issuerValue = try issuer()
            guard !request.claims.isEmpty else {
                throw DomainError.invalidField("claims", "a generic OIDC trust relationship needs at least one claim to match (such as sub=…); without one, every token of the issuer would match")
            }
            subject = request.claims.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            try refuse("refs", request.refs)
            try refuse("environments", request.environments)
            try refuse("workflows", request.workflows)
        }
        for (key, value) in request.claims {
            guard !key.isEmpty, key.count <= 128, !["iss", "aud", "exp", "nbf", "iat"].contains(key) else {
                throw DomainError.invalidField("claims", "'\(key)' cannot be matched (iss, aud and the time claims are checked by the server itself)")
            }
            guard !value.isEmpty else { throw DomainError.invalidField("claims.\(key)", "must not be empty") }
            conditions[key] = [value]
        }
        for values in conditions.values {
            for value in values where value.isEmpty || value.count > 512 || value == "*" {
                throw DomainError.invalidField("refs", "'\(value)' is not a value to match (a lone * would match anything)")
            }
        }
        if request.isolate == .pullRequests, ![.github, .gitlab].contains(request.provider) {
            throw DomainError.invalidField("isolate", "\(request.provider.displayName) ID tokens do not say whether a job builds a pull request; use always or never")
        }
        return TrustRule(issuer: issuerValue, subject: subject, conditions: conditions, isolate: request.isolate)
    }

    static func bareRef(_ ref: String) -> String {
        for prefix in ["refs/heads/", "refs/tags/"] where ref.hasPrefix(prefix) { return String(ref.dropFirst(prefix.count)) }
        return ref
    }

    /// Whether every condition holds: the claim is present and equals one of its values (a
    /// value ending in `*` matches by prefix).
    public static func matches(_ rule: TrustRule, issuer: String, claims: IDTokenClaims) -> Bool {
        guard rule.issuer == issuer, !rule.conditions.isEmpty else { return false }
        for (claim, accepted) in rule.conditions {
            guard let value = claims[claim] else { return false }
            let insensitive = caseInsensitiveClaims.contains(claim)
            guard accepted.contains(where: { matches(pattern: $0, value: value, caseInsensitive: insensitive) }) else { return false }
        }
        return true
    }

    static func matches(pattern: String, value: String, caseInsensitive: Bool) -> Bool {
        let (p, v) = caseInsensitive ? (pattern.lowercased(), value.lowercased()) : (pattern, value)
        if p.hasSuffix("*") { return v.hasPrefix(p.dropLast()) }
        return p == v
    }

    /// Whether a matching relationship hands this job an isolated-only token.
    public static func isolates(_ rule: TrustRule, provider: TrustProvider, claims: IDTokenClaims) -> Bool {
        switch rule.isolate {
        case .never: return false
        case .always: return true
        case .pullRequests:
            switch provider {
            case .github:
                guard let event = claims["event_name"], ["pull_request", "pull_request_target"].contains(event) else { return false }
                // GitHub's token does not name a pull request's head repository; when a token
                // does (`head_repository`), a pull request from the repository itself is trusted.
                if let head = claims["head_repository"], let base = claims["repository"], head.lowercased() == base.lowercased() { return false }
                return true
            case .gitlab:
                return claims["pipeline_source"] == "merge_request_event"
            default:
                return true
            }
        }
    }

    /// Who the token says the job is, for answers and token names.
    public static func describe(provider: TrustProvider, issuer: String, claims: IDTokenClaims) -> String {
        switch provider {
        case .github:
            var text = "GitHub repository \(claims["repository"] ?? "?")@\(claims["ref"] ?? "?")"
            if let event = claims["event_name"] { text += " (event \(event))" }
            return text
        case .gitlab:
            return "GitLab project \(claims["project_path"] ?? "?")@\(claims["ref"] ?? "?")"
        case .circleci:
            let org = issuer.split(separator: "/").last.map(String.init) ?? "?"
            return "CircleCI project \(claims["oidc.circleci.com/project-id"] ?? "?") of organization \(org)"
        case .buildkite:
            return "Buildkite pipeline \(claims["organization_slug"] ?? "?")/\(claims["pipeline_slug"] ?? "?")@\(claims["build_branch"] ?? "?")"
        case .oidc:
            return "subject '\(claims["sub"] ?? "?")' of \(issuer)"
        }
    }

    /// The command that would trust this job, for the refusal's last words.
    static func suggestion(provider: TrustProvider, issuer: String, claims: IDTokenClaims) -> String? {
        switch provider {
        case .github:
            guard let repo = claims["repository"] else { return nil }
            return "drydock projects trust add PROJECT --github \(repo)" + (claims["ref"].map { " --ref \($0)" } ?? "")
        case .gitlab:
            guard let path = claims["project_path"] else { return nil }
            return "drydock projects trust add PROJECT --gitlab \(path)" + (claims["ref"].map { " --ref \($0)" } ?? "")
        case .circleci:
            guard let project = claims["oidc.circleci.com/project-id"], let org = issuer.split(separator: "/").last else { return nil }
            return "drydock projects trust add PROJECT --circleci \(org)/\(project)"
        case .buildkite:
            guard let org = claims["organization_slug"], let pipeline = claims["pipeline_slug"] else { return nil }
            return "drydock projects trust add PROJECT --buildkite \(org)/\(pipeline)"
        case .oidc:
            guard let sub = claims["sub"] else { return nil }
            return "drydock projects trust add PROJECT --issuer \(issuer) --claim sub=\(sub)"
        }
    }
}
