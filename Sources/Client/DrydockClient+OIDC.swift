import Foundation
import OpenAPIRuntime

extension DrydockClient {
    // MARK: OIDC

    /// The audience and issuers the server expects of CI ID tokens (no token needed).
    public func oidcConfiguration() async throws -> Components.Schemas.OIDCConfiguration {
        try await call { try await $0.getOIDCConfiguration().ok.body.json }
    }

    /// Trades a CI provider's ID token for a `ci` token of the projects that trust it.
    public func exchangeOIDCToken(_ idToken: String, projectId: String? = nil) async throws -> Components.Schemas.OIDCTokenGrant {
        try await call { try await $0.exchangeOIDCToken(body: .json(.init(idToken: idToken, projectId: projectId))).ok.body.json }
    }

    // MARK: trust relationships

    public func trustRelationships(projectId: String) async throws -> [Components.Schemas.TrustRelationship] {
        try await call { try await $0.listTrustRelationships(path: .init(projectId: projectId)).ok.body.json.items }
    }

    public func createTrustRelationship(projectId: String, _ body: Components.Schemas.TrustRelationshipCreate) async throws -> Components.Schemas.TrustRelationship {
        try await call { try await $0.createTrustRelationship(path: .init(projectId: projectId), body: .json(body)).created.body.json }
    }

    public func deleteTrustRelationship(projectId: String, id: String) async throws {
        _ = try await call { try await $0.deleteTrustRelationship(path: .init(projectId: projectId, trustId: id)).noContent }
    }
}
