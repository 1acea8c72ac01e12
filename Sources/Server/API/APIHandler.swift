import DrydockAPITypes
import Foundation
import OpenAPIRuntime
import Synchronization

/// The `/api/v1` operations, generated from `openapi.yaml`. Authentication and the coarse
/// permission check happen in `AuthMiddleware` before any of these run; here each operation
/// narrows to what the caller can reach. Failures are thrown as `APIError` and rendered by
/// `ProblemMiddleware`.
struct APIHandler: APIProtocol {
    let organizations: any OrganizationStore
    let projects: any ProjectStore
    let tokens: any TokenStore
    let registry: RegistryStore
    let builds: BuildStore
    let jobs: JobQueue
    let buildLog: BuildLog
    let contexts: ContextStore
    let signals: BuildSignals
    let usage: UsageStore
    /// Cached grants: whatever narrows one (a revocation, a role change, a removal, a deleted
    /// project, a finished job's build token) drops them right where it happens.
    let authenticator: TokenAuthenticator

    /// Writes multi-platform builds' image indexes (and pushes them where asked).
    let indexes: IndexAssembler
    /// drydock-agent's builders on demand, and project caches.
    let agents: AgentStore
    /// OIDC trust relationships and the CI token exchange.
    let oidc: OIDCExchange

    // MARK: identity

    func getCurrentCaller(_ input: Operations.GetCurrentCaller.Input) async throws -> Operations.GetCurrentCaller.Output {
        let caller = try Caller.require()
        if caller.isServerWide {
            throw APIError.forbidden("a server-wide \(caller.kind.rawValue) token belongs to no organization; it can only serve builds")
        }
        guard let token = try await tokens.token(id: caller.tokenId, organizationId: caller.organizationId),
              let organization = try await organizations.organization(id: caller.organizationId)
        else { throw APIError.invalidToken }
        let user = try await caller.userId.asyncMap { try await organizations.user(id: $0) } ?? nil
        return .ok(.init(body: .json(.init(
            token: .init(token), organization: .init(organization), user: user.map(Components.Schemas.User.init),
            role: caller.role.map(Components.Schemas.Role.init), limits: .init(maxContextBytes: contexts.limit)))))
    }

    // MARK: organizations

    private func visibleOrganization(_ id: String) async throws -> OrganizationRecord {
        let caller = try Caller.require()
        guard id == caller.organizationId, let organization = try await organizations.organization(id: id) else {
            throw APIError.notFound("organization", id)
        }
        return organization
    }

    func getOrganization(_ input: Operations.GetOrganization.Input) async throws -> Operations.GetOrganization.Output {
        .ok(.init(body: .json(.init(try await visibleOrganization(input.path.orgId)))))
    }

    func updateOrganization(_ input: Operations.UpdateOrganization.Input) async throws -> Operations.UpdateOrganization.Output {
        let organization = try await visibleOrganization(input.path.orgId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        guard let name = body.name else { return .ok(.init(body: .json(.init(organization)))) }
        guard let renamed = try await organizations.rename(id: organization.id, to: try Validation.name(name)) else {
            throw APIError.notFound("organization", organization.id)
        }
        return .ok(.init(body: .json(.init(renamed))))
    }

    func listMembers(_ input: Operations.ListMembers.Input) async throws -> Operations.ListMembers.Output {
        let organization = try await visibleOrganization(input.path.orgId)
        let page = try await organizations.members(
            organizationId: organization.id, cursor: try PageCursor.decode(input.query.cursor),
            limit: try PageCursor.limit(input.query.limit))
        return .ok(.init(body: .json(.init(items: page.items.map(Components.Schemas.Member.init), nextCursor: page.nextCursor))))
    }

    /// Only owners grant or take away ownership.
    private func requireOwnerFor(_ roles: Role?...) throws {
        let caller = try Caller.require()
        if roles.contains(.owner), caller.role != .owner {
            throw APIError.forbidden("only an owner can make or unmake owners")
        }
    }

    func addMember(_ input: Operations.AddMember.Input) async throws -> Operations.AddMember.Output {
        let organization = try await visibleOrganization(input.path.orgId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let email = try Validation.email(body.email)
        let role = body.role?.domain ?? .member
        let terms = try await usage.terms(organizationId: organization.id)
        if let max = terms.maxUsers, try await usage.memberCount(organizationId: organization.id) >= max {
            throw APIError(status: .paymentRequired, code: "plan_limit",
                           detail: "the \(terms.name) plan allows \(max) user\(max == 1 ? "" : "s") per organization; "
                               + "the server operator can move it to the Startup plan (drydock-server set-plan --org \(organization.id) startup)")
        }
        try requireOwnerFor(role)
        let caller = try Caller.require()
        let secret = Mutex("")
        let member = try await organizations.addMember(organizationId: organization.id, email: email, role: role) { userId in
            let token = NewToken(kind: .user, name: "first token for \(email)", organizationId: organization.id,
                                 userId: userId, createdByUserId: caller.userId)
            secret.withLock { $0 = token.secret }
            return token
        }
        return .created(.init(body: .json(.init(member: .init(member), token: secret.withLock { $0 }))))
    }

    func updateMember(_ input: Operations.UpdateMember.Input) async throws -> Operations.UpdateMember.Output {
        let organization = try await visibleOrganization(input.path.orgId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let current = try await member(organization.id, input.path.userId)
        try requireOwnerFor(current.role, body.role.domain)
        guard let updated = try await organizations.setRole(organizationId: organization.id, userId: input.path.userId, role: body.role.domain) else {
            throw APIError.notFound("member", input.path.userId)
        }
        authenticator.invalidate()
        return .ok(.init(body: .json(.init(updated))))
    }

    func removeMember(_ input: Operations.RemoveMember.Input) async throws -> Operations.RemoveMember.Output {
        let organization = try await visibleOrganization(input.path.orgId)
        let current = try await member(organization.id, input.path.userId)
        try requireOwnerFor(current.role)
        guard try await organizations.removeMember(organizationId: organization.id, userId: input.path.userId) else {
            throw APIError.notFound("member", input.path.userId)
        }
        authenticator.invalidate()
        return .noContent(.init())
    }

    private func member(_ organizationId: String, _ userId: String) async throws -> MemberRecord {
        guard let member = try await organizations.member(organizationId: organizationId, userId: userId) else {
            throw APIError.notFound("member", userId)
        }
        return member
    }

    // MARK: projects

    func visibleProject(_ id: String) async throws -> ProjectRecord {
        let caller = try Caller.require()
        guard Identifier.isValid(id), let project = try await projects.project(id: id), caller.canSee(project: project) else {
            throw APIError.notFound("project", id)
        }
        return project
    }

    func listProjects(_ input: Operations.ListProjects.Input) async throws -> Operations.ListProjects.Output {
        let caller = try Caller.require()
        let page = try await projects.list(
            organizationId: caller.organizationId, onlyProjectIds: caller.projectScope,
            cursor: try PageCursor.decode(input.query.cursor), limit: try PageCursor.limit(input.query.limit))
        return .ok(.init(body: .json(.init(items: page.items.map(Components.Schemas.Project.init), nextCursor: page.nextCursor))))
    }

    func createProject(_ input: Operations.CreateProject.Input) async throws -> Operations.CreateProject.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let name = try Validation.name(body.name)
        let keepGB = try Validation.range(body.cachePolicy?.keepGigabytes, 1...500, field: "cachePolicy.keepGigabytes") ?? 50
        let keepDays = try Validation.range(body.cachePolicy?.keepDays, 1...365, field: "cachePolicy.keepDays") ?? 14
        let project = try await projects.create(organizationId: caller.organizationId, name: name, keepGigabytes: keepGB, keepDays: keepDays)
        return .created(.init(body: .json(.init(project))))
    }

    func getProject(_ input: Operations.GetProject.Input) async throws -> Operations.GetProject.Output {
        .ok(.init(body: .json(.init(try await visibleProject(input.path.projectId)))))
    }

    func updateProject(_ input: Operations.UpdateProject.Input) async throws -> Operations.UpdateProject.Output {
        let project = try await visibleProject(input.path.projectId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let changes = ProjectChanges(
            name: try body.name.map { try Validation.name($0) },
            keepGigabytes: try Validation.range(body.cachePolicy?.keepGigabytes, 1...500, field: "cachePolicy.keepGigabytes"),
            keepDays: try Validation.range(body.cachePolicy?.keepDays, 1...365, field: "cachePolicy.keepDays"),
            emulation: body.builds?.emulation?.rawValue,
            emulationFallbackSeconds: try Validation.range(body.builds?.emulationFallbackSeconds, 0...3600, field: "builds.emulationFallbackSeconds"),
            queueTimeoutSeconds: try Validation.range(body.builds?.queueTimeoutSeconds, 10...86_400, field: "builds.queueTimeoutSeconds"),
            maxBuilders: try Validation.range(body.builds?.maxBuilders, 1...100, field: "builds.maxBuilders"),
            buildsPerBuilder: try Validation.range(body.builds?.buildsPerBuilder, 1...64, field: "builds.buildsPerBuilder"),
            builderIdleSeconds: try Validation.range(body.builds?.builderIdleSeconds, 5...86_400, field: "builds.builderIdleSeconds"))
        guard let updated = try await projects.update(id: project.id, changes) else {
            throw APIError.notFound("project", project.id)
        }
        return .ok(.init(body: .json(.init(updated))))
    }

    func deleteProject(_ input: Operations.DeleteProject.Input) async throws -> Operations.DeleteProject.Output {
        let project = try await visibleProject(input.path.projectId)
        guard try await projects.delete(id: project.id) else { throw APIError.notFound("project", project.id) }
        authenticator.invalidate()  // project tokens of it grant nothing now
        await contexts.delete(projectId: project.id)  // its build contexts go with it
        return .noContent(.init())
    }

    // MARK: tokens

    /// Admins and organization tokens see every token of the organization; members see their own
    /// and those they created.
    private func tokenVisibility(_ caller: Caller) -> String? {
        caller.isOrganizationAdmin ? nil : (caller.userId ?? "-")
    }

    private func visibleToken(_ id: String) async throws -> TokenRecord {
        let caller = try Caller.require()
        guard Identifier.isValid(id), let token = try await tokens.token(id: id, organizationId: caller.organizationId) else {
            throw APIError.notFound("token", id)
        }
        if let me = tokenVisibility(caller), token.userId != me, token.createdByUserId != me {
            throw APIError.notFound("token", id)
        }
        return token
    }

    func listTokens(_ input: Operations.ListTokens.Input) async throws -> Operations.ListTokens.Output {
        let caller = try Caller.require()
        let filter = TokenFilter(
            kind: input.query.kind?.domain, projectId: input.query.projectId,
            includeRevoked: input.query.includeRevoked ?? false, visibleToUserId: tokenVisibility(caller))
        let page = try await tokens.list(
            organizationId: caller.organizationId, filter: filter,
            cursor: try PageCursor.decode(input.query.cursor), limit: try PageCursor.limit(input.query.limit))
        return .ok(.init(body: .json(.init(items: page.items.map(Components.Schemas.Token.init), nextCursor: page.nextCursor))))
    }

    func createToken(_ input: Operations.CreateToken.Input) async throws -> Operations.CreateToken.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let name = try Validation.tokenName(body.name)
        let kind = body.kind?.domain ?? (body.projectId == nil ? .user : .project)
        var lifetime = try Validation.range(body.expiresInSeconds, 60...315_360_000, field: "expiresInSeconds")
        var projectId: String?
        var userId: String?
        switch kind {
        case .build, .registration, .ci:
            throw APIError.invalidField("kind", "\(kind.rawValue) tokens are minted by the server (for each job, for each builder an agent starts, for each OIDC exchange) and cannot be created")
        case .user:
            guard let me = caller.userId else {
                throw APIError.forbidden("user tokens act as a person; only a user token can create one")
            }
            userId = me
        case .organization, .worker, .agent:
            guard caller.isOrganizationAdmin else {
                throw APIError.forbidden("only owners, admins and organization tokens can create \(kind.rawValue) tokens")
            }
        case .project, .pull:
            guard let requested = body.projectId else {
                throw APIError.invalidField("projectId", "is required for \(kind.rawValue) tokens")
            }
            projectId = try await visibleProject(requested).id
            if kind == .pull {
                lifetime = lifetime ?? 3600
                if lifetime! > 86_400 {
                    throw APIError.invalidField("expiresInSeconds", "pull tokens live at most 86400 seconds (24 hours)")
                }
            }
        }
        if body.projectId != nil, projectId == nil {
            throw APIError.invalidField("projectId", "applies only to project and pull tokens")
        }
        let new = NewToken(
            kind: kind, name: name, organizationId: caller.organizationId, userId: userId, projectId: projectId,
            createdByUserId: caller.userId, expiresAt: lifetime.map { Date().addingTimeInterval(TimeInterval($0)) })
        let record = try await tokens.create(new)
        return .created(.init(body: .json(.init(record, secret: new.secret))))
    }

    func getToken(_ input: Operations.GetToken.Input) async throws -> Operations.GetToken.Output {
        .ok(.init(body: .json(.init(try await visibleToken(input.path.tokenId)))))
    }

    func revokeToken(_ input: Operations.RevokeToken.Input) async throws -> Operations.RevokeToken.Output {
        let token = try await visibleToken(input.path.tokenId)
        try await tokens.revoke(id: token.id, organizationId: token.organizationId ?? "")
        authenticator.invalidate()
        return .noContent(.init())
    }
}

// MARK: registry management

extension APIHandler {
    func createPullToken(_ input: Operations.CreatePullToken.Input) async throws -> Operations.CreatePullToken.Output {
        let caller = try Caller.require()
        let project = try await visibleProject(input.path.projectId)
        var body: Components.Schemas.PullTokenCreate?
        if case .json(let json) = input.body { body = json }
        let lifetime = try Validation.range(body?.expiresInSeconds, 60...86_400, field: "expiresInSeconds") ?? 3600
        let name = try Validation.tokenName(body?.name ?? "pull token for \(project.name)")
        let new = NewToken(kind: .pull, name: name, organizationId: caller.organizationId, projectId: project.id,
                           createdByUserId: caller.userId, expiresAt: Date().addingTimeInterval(TimeInterval(lifetime)))
        let record = try await tokens.create(new)
        return .created(.init(body: .json(.init(record, secret: new.secret))))
    }

    func listRepositories(_ input: Operations.ListRepositories.Input) async throws -> Operations.ListRepositories.Output {
        let project = try await visibleProject(input.path.projectId)
        let items = try await registry.repositories(projectId: project.id).map {
            Components.Schemas.Repository(
                name: $0.name, reference: "\(project.id)/\($0.name)", tagCount: $0.tagCount, manifestCount: $0.manifestCount,
                sizeBytes: $0.sizeBytes, createdAt: $0.createdAt)
        }
        return .ok(.init(body: .json(.init(items: items))))
    }

    func listRepositoryTags(_ input: Operations.ListRepositoryTags.Input) async throws -> Operations.ListRepositoryTags.Output {
        let project = try await visibleProject(input.path.projectId)
        let repository = input.query.repository
        guard let tags = try await registry.tagDetails(projectId: project.id, repository: repository) else {
            throw APIError.notFound("repository", repository)
        }
        let items = tags.map {
            Components.Schemas.Tag(name: $0.name, digest: $0.digest, mediaType: $0.mediaType, sizeBytes: $0.sizeBytes,
                                   updatedAt: $0.updatedAt, platforms: $0.platforms)
        }
        return .ok(.init(body: .json(.init(repository: "\(project.id)/\(repository)", items: items))))
    }

    func deleteRepositoryTag(_ input: Operations.DeleteRepositoryTag.Input) async throws -> Operations.DeleteRepositoryTag.Output {
        let project = try await visibleProject(input.path.projectId)
        guard try await registry.deleteTag(projectId: project.id, repository: input.query.repository, tag: input.query.tag) else {
            throw APIError.notFound("tag", "\(input.query.repository):\(input.query.tag)")
        }
        return .noContent(.init())
    }

    func deleteImage(_ input: Operations.DeleteImage.Input) async throws -> Operations.DeleteImage.Output {
        let project = try await visibleProject(input.path.projectId)
        guard let digest = Digest(input.query.digest) else {
            throw APIError.invalidField("digest", "must be sha256:<64 hex> or sha512:<128 hex>")
        }
        guard try await registry.deleteManifest(projectId: project.id, repository: input.query.repository, digest: digest) else {
            throw APIError.notFound("image", "\(input.query.repository)@\(digest)")
        }
        return .noContent(.init())
    }

    func getRetentionPolicy(_ input: Operations.GetRetentionPolicy.Input) async throws -> Operations.GetRetentionPolicy.Output {
        let project = try await visibleProject(input.path.projectId)
        return .ok(.init(body: .json(.init(try await registry.retention(projectId: project.id)))))
    }

    func setRetentionPolicy(_ input: Operations.SetRetentionPolicy.Input) async throws -> Operations.SetRetentionPolicy.Output {
        let project = try await visibleProject(input.path.projectId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        var policy = RetentionPolicy(untaggedDays: body.untaggedDays, buildTagDays: body.buildTagDays)
        for (i, rule) in (body.keep ?? []).enumerated() {
            if let problem = TagPattern.problem(rule.pattern) { throw APIError.invalidField("keep[\(i)].pattern", problem) }
            policy.keep.append(.init(pattern: rule.pattern, count: rule.count))
        }
        for (i, pattern) in (body.immutableTags ?? []).enumerated() {
            if let problem = TagPattern.problem(pattern) { throw APIError.invalidField("immutableTags[\(i)]", problem) }
            policy.immutableTags.append(pattern)
        }
        try await registry.setRetention(projectId: project.id, policy)
        return .ok(.init(body: .json(.init(policy))))
    }

    func previewRetention(_ input: Operations.PreviewRetention.Input) async throws -> Operations.PreviewRetention.Output {
        let project = try await visibleProject(input.path.projectId)
        let policy = try await registry.retention(projectId: project.id)
        let plan = try await registry.retentionPlan(projectId: project.id, policy: policy)
        return .ok(.init(body: .json(.init(
            policy: .init(policy),
            tags: plan.tags.map { .init(repository: $0.repository, tag: $0.tag, digest: $0.digest, reason: $0.reason) },
            manifests: plan.manifests.map { .init(repository: $0.repository, digest: $0.digest, reason: $0.reason) }))))
    }

    func getRegistryUsage(_ input: Operations.GetRegistryUsage.Input) async throws -> Operations.GetRegistryUsage.Output {
        let project = try await visibleProject(input.path.projectId)
        let usage = try await registry.usage(projectId: project.id)
        return .ok(.init(body: .json(.init(projectId: project.id, repositories: usage.repositories, blobs: usage.blobs, sizeBytes: usage.bytes))))
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
