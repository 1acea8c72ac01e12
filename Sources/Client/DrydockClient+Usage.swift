import Foundation

extension DrydockClient {
    public func usage(orgId: String, month: String? = nil, from: String? = nil, to: String? = nil) async throws -> Components.Schemas.Usage {
        try await call {
            try await $0.getOrganizationUsage(path: .init(orgId: orgId), query: .init(month: month, from: from, to: to)).ok.body.json
        }
    }

    public func projectUsage(projectId: String, month: String? = nil, from: String? = nil, to: String? = nil) async throws -> Components.Schemas.Usage {
        try await call {
            try await $0.getProjectUsage(path: .init(projectId: projectId), query: .init(month: month, from: from, to: to)).ok.body.json
        }
    }

    public func usageCaps(orgId: String) async throws -> Components.Schemas.UsageCaps {
        try await call { try await $0.getUsageCaps(path: .init(orgId: orgId)).ok.body.json }
    }

    public func setUsageCaps(orgId: String, minutes: Int64? = nil, spend: String? = nil, softThreshold: Int? = nil) async throws -> Components.Schemas.UsageCaps {
        try await call {
            try await $0.setUsageCaps(path: .init(orgId: orgId), body: .json(.init(minutesPerMonth: minutes, spendPerMonth: spend, softThresholdPercent: softThreshold))).ok.body.json
        }
    }

    public func clearUsageCaps(orgId: String) async throws {
        try await call { _ = try await $0.clearUsageCaps(path: .init(orgId: orgId)).noContent }
    }
}
