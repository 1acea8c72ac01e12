import DrydockAPITypes
import Foundation

extension DrydockClient {
    // MARK: agents (agent tokens) and the builders they start

    /// Reports what the agent can start and runs, waiting up to `waitSeconds` for instructions.
    public func pollAgent(_ report: Components.Schemas.AgentReport) async throws -> Components.Schemas.AgentInstructions {
        try await call { try await $0.pollAgent(body: .json(report)).ok.body.json }
    }

    /// A builder started by an agent trades its one-time registration secret (the client's token)
    /// for a worker token of its project and platform.
    public func registerBuilder(name: String) async throws -> Components.Schemas.BuilderRegistered {
        try await call { try await $0.registerBuilder(body: .json(.init(name: name))).ok.body.json }
    }

    /// The agents serving the caller's organization (owners and admins).
    public func agents() async throws -> [Components.Schemas.Agent] {
        try await call { try await $0.listAgents().ok.body.json.items }
    }

    /// The project's cache per platform.
    public func projectCache(_ projectId: String) async throws -> [Components.Schemas.ProjectCache] {
        try await call { try await $0.getProjectCache(path: .init(projectId: projectId)).ok.body.json.items }
    }

    /// Starts the project's cache over, for one platform or all.
    public func resetProjectCache(_ projectId: String, platform: String?) async throws -> [Components.Schemas.ProjectCache] {
        try await call {
            try await $0.resetProjectCache(path: .init(projectId: projectId), body: .json(.init(platform: platform))).ok.body.json.items
        }
    }
}
