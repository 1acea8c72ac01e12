import DrydockAPITypes
import Foundation

/// OIDC trust relationships and the CI token exchange.
struct OIDCExchange: Sendable {
    let settings: OIDCSettings
    let audience: String
    let verifier: OIDCVerifier
    let trust: TrustStore
    /// The longest a CI token lives, and how far past its ID token's own life it may go.
    static let maximumLifetime: TimeInterval = 3600
    static let margin: TimeInterval = 300
}

extension APIHandler {
    func getOIDCConfiguration(_ input: Operations.GetOIDCConfiguration.Input) async throws -> Operations.GetOIDCConfiguration.Output {
        .ok(.init(body: .json(.init(
            audience: oidc.audience,
            issuers: oidc.settings.listed.map { .init(provider: .init($0.provider), issuer: $0.issuer) }))))
    }

    func exchangeOIDCToken(_ input: Operations.ExchangeOIDCToken.Input) async throws -> Operations.ExchangeOIDCToken.Output {
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        func refuse(_ reason: String) -> APIError { APIError(status: .unauthorized, code: "oidc_refused", detail: reason) }
        let verified: VerifiedIDToken
        do {
            verified = try await oidc.verifier.verify(body.idToken.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch let refusal as OIDCRefusal {
            throw refuse(refusal.reason)
        }
        let who = TrustRules.describe(provider: verified.provider, issuer: verified.issuer, claims: verified.claims)
        var matched = try await oidc.trust.relationships(issuer: verified.issuer).filter {
            TrustRules.matches($0.rule, issuer: verified.issuer, claims: verified.claims)
        }
        if let wanted = body.projectId { matched = matched.filter { $0.projectId == wanted } }
        guard !matched.isEmpty else {
            let hint = TrustRules.suggestion(provider: verified.provider, issuer: verified.issuer, claims: verified.claims)
            throw refuse("no trust relationship matches \(who)" + (body.projectId.map { " in project \($0)" } ?? "")
                         + (hint.map { "; a project admin can add one with: \($0)" } ?? ""))
        }
        let organizations = Set(matched.map(\.organizationId))
        guard organizations.count == 1, let organizationId = organizations.first else {
            // Only said to a job that every one of these organizations trusts.
            throw APIError.badRequest("trust relationships in \(organizations.count) organizations match \(who); say which project with projectId",
                                      code: "ambiguous_trust")
        }
        var projectIds: [String] = []
        for record in matched where !projectIds.contains(record.projectId) { projectIds.append(record.projectId) }
        let isolated = matched.contains { TrustRules.isolates($0.rule, provider: verified.provider, claims: verified.claims) }
        let now = Date()
        let idLife = verified.expiresAt.timeIntervalSince(verified.issuedAt ?? now)
        let lifetime = max(60, min(OIDCExchange.maximumLifetime, idLife + OIDCExchange.margin))
        var token = NewToken(kind: .ci, name: String("oidc \(who)".prefix(200)), organizationId: organizationId,
                             expiresAt: now.addingTimeInterval(lifetime))
        token.projectIds = projectIds
        token.isolated = isolated
        let record = try await tokens.create(token)
        return .ok(.init(body: .json(.init(
            token: token.secret, expiresAt: record.expiresAt ?? token.expiresAt ?? now, projectIds: projectIds,
            organizationId: organizationId, isolated: isolated, subject: who))))
    }

    func listTrustRelationships(_ input: Operations.ListTrustRelationships.Input) async throws -> Operations.ListTrustRelationships.Output {
        let project = try await visibleProject(input.path.projectId)
        let items = try await oidc.trust.list(projectId: project.id)
        return .ok(.init(body: .json(.init(items: items.map(Components.Schemas.TrustRelationship.init)))))
    }

    func createTrustRelationship(_ input: Operations.CreateTrustRelationship.Input) async throws -> Operations.CreateTrustRelationship.Output {
        let caller = try Caller.require()
        let project = try await visibleProject(input.path.projectId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        guard let provider = TrustProvider(rawValue: body.provider.rawValue) else { throw APIError.invalidField("provider", "is not known") }
        let request = TrustRequest(
            provider: provider, subject: body.subject, refs: body.refs ?? [], environments: body.environments ?? [],
            workflows: body.workflows ?? [], issuer: body.issuer, claims: body.claims?.additionalProperties ?? [:],
            isolate: body.isolate.flatMap { TrustIsolation(rawValue: $0.rawValue) } ?? .never)
        let rule = try TrustRules.rule(for: request, settings: oidc.settings)
        let existing = try await oidc.trust.list(projectId: project.id)
        guard existing.count < 100 else { throw APIError.conflict("a project holds at most 100 trust relationships") }
        if existing.contains(where: { $0.rule == rule }) {
            throw APIError.conflict("the project already trusts \(provider.displayName) \(rule.subject) with these conditions")
        }
        let record = try await oidc.trust.create(organizationId: project.organizationId, projectId: project.id, provider: provider,
                                                 rule: rule, createdByTokenId: caller.tokenId)
        return .created(.init(body: .json(.init(record))))
    }

    func deleteTrustRelationship(_ input: Operations.DeleteTrustRelationship.Input) async throws -> Operations.DeleteTrustRelationship.Output {
        let project = try await visibleProject(input.path.projectId)
        guard Identifier.isValid(input.path.trustId), try await oidc.trust.delete(id: input.path.trustId, projectId: project.id) else {
            throw APIError.notFound("trust relationship", input.path.trustId)
        }
        return .noContent(.init())
    }
}

extension Components.Schemas.TrustRelationship {
    init(_ r: TrustRelationshipRecord) {
        self.init(id: r.id, projectId: r.projectId, provider: .init(r.provider), issuer: r.rule.issuer, subject: r.rule.subject,
                  conditions: .init(additionalProperties: r.rule.conditions),
                  isolate: Components.Schemas.TrustIsolation(rawValue: r.rule.isolate.rawValue) ?? .never, createdAt: r.createdAt)
    }
}

extension Components.Schemas.TrustProvider {
    init(_ provider: TrustProvider) {
        self = .init(rawValue: provider.rawValue) ?? .oidc
    }
}
