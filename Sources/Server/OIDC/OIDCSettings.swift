import Foundation

/// The CI providers whose OIDC ID tokens a project can trust.
public enum TrustProvider: String, Sendable, CaseIterable, Codable {
    case github, gitlab, circleci, buildkite, oidc

    /// The provider's public issuer; `oidc` (a generic issuer) has none.
    var publicIssuer: String? {
        switch self {
        case .github: "https://token.actions.githubusercontent.com"
        case .gitlab: "https://gitlab.com"
        // One issuer per CircleCI organization: this, then `/org/<organization id>`.
        case .circleci: "https://oidc.circleci.com"
        case .buildkite: "https://agent.buildkite.com"
        case .oidc: nil
        }
    }

    var displayName: String {
        switch self {
        case .github: "GitHub"
        case .gitlab: "GitLab"
        case .circleci: "CircleCI"
        case .buildkite: "Buildkite"
        case .oidc: "OIDC"
        }
    }
}

/// Which OIDC issuers this server accepts ID tokens from, and the audience they must carry.
/// `DRYDOCK_OIDC_ISSUERS` (`github=https://ghes.example.com/_services/token,gitlab=https://gitlab.example.com,oidc=https://idp.example.com`)
/// replaces a provider's public issuer with the ones listed for it; `oidc=` adds generic issuers.
public struct OIDCSettings: Sendable, Equatable {
    /// `DRYDOCK_OIDC_AUDIENCE`; nil means the server's public URL.
    public var audience: String?
    /// Provider → its issuers (base URLs; CircleCI's get `/org/<id>` appended).
    public var issuers: [TrustProvider: [String]]

    public init(audience: String? = nil, issuers: [TrustProvider: [String]] = [:]) {
        self.audience = audience
        var all: [TrustProvider: [String]] = [:]
        for provider in TrustProvider.allCases {
            if let listed = issuers[provider], !listed.isEmpty {
                all[provider] = listed.map(Self.normalize)
            } else if let issuer = provider.publicIssuer {
                all[provider] = [issuer]
            }
        }
        self.issuers = all
    }

    /// Parses `provider=URL,provider=URL`.
    public static func parse(issuers raw: String?, audience: String?) throws -> OIDCSettings {
        var listed: [TrustProvider: [String]] = [:]
        for item in (raw ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let provider = TrustProvider(rawValue: parts[0].lowercased()) else {
                throw ConfigurationError("DRYDOCK_OIDC_ISSUERS: '\(item)' is not provider=URL with a provider of github, gitlab, circleci, buildkite or oidc")
            }
            guard let url = URL(string: parts[1]), let scheme = url.scheme, ["https", "http"].contains(scheme), url.host != nil else {
                throw ConfigurationError("DRYDOCK_OIDC_ISSUERS: '\(parts[1])' is not an https:// issuer URL")
            }
            listed[provider, default: []].append(parts[1])
        }
        if let audience, audience.isEmpty { throw ConfigurationError("DRYDOCK_OIDC_AUDIENCE must not be empty") }
        return OIDCSettings(audience: audience, issuers: listed)
    }

    static func normalize(_ url: String) -> String {
        url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// The provider an ID token's `iss` belongs to, or nil when this server does not accept it.
    public func provider(ofIssuer issuer: String) -> TrustProvider? {
        for (provider, list) in issuers {
            for base in list {
                if provider == .circleci {
                    // `<base>/org/<organization id>`, one path component.
                    let prefix = base + "/org/"
                    if issuer.hasPrefix(prefix), let rest = Optional(issuer.dropFirst(prefix.count)), !rest.isEmpty,
                       rest.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) {
                        return provider
                    }
                } else if issuer == base {
                    return provider
                }
            }
        }
        return nil
    }

    /// Everything accepted, for `GET /api/v1/oidc/configuration` and error messages.
    public var listed: [(provider: TrustProvider, issuer: String)] {
        TrustProvider.allCases.flatMap { provider in (issuers[provider] ?? []).map { (provider, $0) } }
    }
}
