import DrydockServer
import Foundation
import Testing

@Suite("Unit: OIDC trust rules and issuers")
struct TrustRulesTests {
    let settings = OIDCSettings(audience: "https://drydock.test")

    func claims(_ values: [String: String]) -> IDTokenClaims {
        IDTokenClaims(values.mapValues { .string($0) })
    }

    @Test("DRYDOCK_OIDC_ISSUERS replaces a provider's public issuer and adds generic ones; bad entries are one clear error")
    func issuers() throws {
        let parsed = try OIDCSettings.parse(issuers: "github=https://ghes.example.com/_services/token/,oidc=https://idp.example.com", audience: nil)
        #expect(parsed.provider(ofIssuer: "https://ghes.example.com/_services/token") == .github)
        #expect(parsed.provider(ofIssuer: "https://token.actions.githubusercontent.com") == nil, "replaced")
        #expect(parsed.provider(ofIssuer: "https://gitlab.com") == .gitlab, "kept")
        #expect(parsed.provider(ofIssuer: "https://idp.example.com") == .oidc)
        #expect(settings.provider(ofIssuer: "https://oidc.circleci.com/org/1f2e-33") == .circleci)
        #expect(settings.provider(ofIssuer: "https://oidc.circleci.com/org/a/b") == nil)
        #expect(settings.provider(ofIssuer: "https://evil.test") == nil)
        #expect(throws: ConfigurationError.self) { try OIDCSettings.parse(issuers: "jenkins=https://x", audience: nil) }
        #expect(throws: ConfigurationError.self) { try OIDCSettings.parse(issuers: "github=ftp://x", audience: nil) }
    }

    @Test("GitHub refs become full refs, a trailing * matches by prefix, names ignore case, every condition must hold")
    func github() throws {
        let rule = try TrustRules.rule(for: TrustRequest(provider: .github, subject: "Acme/API", refs: ["main", "refs/tags/v*"]), settings: settings)
        #expect(rule.conditions["ref"] == ["refs/heads/main", "refs/tags/v*"])
        let issuer = "https://token.actions.githubusercontent.com"
        #expect(TrustRules.matches(rule, issuer: issuer, claims: claims(["repository": "acme/api", "ref": "refs/heads/main"])))
        #expect(TrustRules.matches(rule, issuer: issuer, claims: claims(["repository": "acme/api", "ref": "refs/tags/v1.0"])))
        #expect(!TrustRules.matches(rule, issuer: issuer, claims: claims(["repository": "acme/api", "ref": "refs/heads/mainline"])))
        #expect(!TrustRules.matches(rule, issuer: issuer, claims: claims(["repository": "acme/api"])), "a missing claim fails")
        #expect(!TrustRules.matches(rule, issuer: issuer, claims: claims(["repository": "acme/api2", "ref": "refs/heads/main"])))
        #expect(!TrustRules.matches(rule, issuer: "https://gitlab.com", claims: claims(["repository": "acme/api", "ref": "refs/heads/main"])))
        #expect(!TrustRules.matches(rule, issuer: issuer, claims: claims(["repository": "acme/api", "ref": "REFS/HEADS/MAIN"])), "refs keep their case")
    }

    @Test("pull-request isolation: GitHub pull_request events and GitLab merge request pipelines; providers that cannot tell are refused")
    func isolation() throws {
        let github = try TrustRules.rule(for: TrustRequest(provider: .github, subject: "acme/api", isolate: .pullRequests), settings: settings)
        #expect(TrustRules.isolates(github, provider: .github, claims: claims(["event_name": "pull_request"])))
        #expect(TrustRules.isolates(github, provider: .github, claims: claims(["event_name": "pull_request_target"])))
        #expect(!TrustRules.isolates(github, provider: .github, claims: claims(["event_name": "push"])))
        let gitlab = try TrustRules.rule(for: TrustRequest(provider: .gitlab, subject: "acme/api", isolate: .pullRequests), settings: settings)
        #expect(TrustRules.isolates(gitlab, provider: .gitlab, claims: claims(["pipeline_source": "merge_request_event"])))
        #expect(!TrustRules.isolates(gitlab, provider: .gitlab, claims: claims(["pipeline_source": "push"])))
        #expect(throws: DomainError.self) { try TrustRules.rule(for: TrustRequest(provider: .buildkite, subject: "a/b", isolate: .pullRequests), settings: settings) }
        let always = try TrustRules.rule(for: TrustRequest(provider: .buildkite, subject: "a/b", isolate: .always), settings: settings)
        #expect(TrustRules.isolates(always, provider: .buildkite, claims: claims([:])))
    }

    @Test("CircleCI relationships live under the organization's issuer; generic ones need a claim")
    func others() throws {
        let circle = try TrustRules.rule(for: TrustRequest(provider: .circleci, subject: "org-1/proj-1"), settings: settings)
        #expect(circle.issuer == "https://oidc.circleci.com/org/org-1")
        #expect(circle.conditions == ["oidc.circleci.com/project-id": ["proj-1"]])
        #expect(throws: DomainError.self) { try TrustRules.rule(for: TrustRequest(provider: .oidc, issuer: "https://evil.test", claims: ["sub": "x"]), settings: settings) }
        #expect(throws: DomainError.self) { try TrustRules.rule(for: TrustRequest(provider: .github, subject: "acme/api", claims: ["aud": "x"]), settings: settings) }
    }
}
