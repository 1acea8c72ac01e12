import DrydockAPITypes
import Foundation
import ServiceLifecycle

/// drydock-agent's operations (agent tokens), builder registration (one-time secrets), the
/// organization's view of agents, and the project cache's view and reset.
extension APIHandler {
    func pollAgent(_ input: Operations.PollAgent.Input) async throws -> Operations.PollAgent.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let name = try Validation.tokenName(body.name)
        var platforms: [String] = []
        for (i, raw) in body.platforms.enumerated() {
            guard let platform = Platform(raw), platform.isSupported else {
                throw APIError.invalidField("platforms[\(i)]", "'\(raw)' is not a supported platform; use \(Platform.supportedList)")
            }
            if !platforms.contains(platform.description) { platforms.append(platform.description) }
        }
        var emulated: [String] = []
        for (i, raw) in (body.emulatedPlatforms ?? []).enumerated() {
            guard let platform = Platform(raw), platform.isSupported else {
                throw APIError.invalidField("emulatedPlatforms[\(i)]", "'\(raw)' is not a supported platform; use \(Platform.supportedList)")
            }
            if !emulated.contains(platform.description) { emulated.append(platform.description) }
        }
        var builders: [(id: String, cacheBytes: Int64?)] = []
        for (i, builder) in body.builders.enumerated() {
            guard Identifier.isValid(builder.id) else { throw APIError.invalidField("builders[\(i)].id", "'\(builder.id)' is not a builder id") }
            builders.append((builder.id, builder.cacheBytes))
        }
        let report = AgentStore.Report(
            name: name, launcher: body.launcher.rawValue, platforms: platforms, emulated: emulated, maxBuilders: body.maxBuilders,
            cpus: body.cpusPerBuilder, memoryMegabytes: body.memoryMegabytesPerBuilder.map(Int64.init), builders: builders,
            draining: body.draining == true)
        var instructions = try await agents.record(tokenId: caller.tokenId, report: report)
        if !instructions.stop.isEmpty { authenticator.invalidate() }
        let wait = try Validation.range(body.waitSeconds, 0...60, field: "waitSeconds") ?? 25
        let deadline = ContinuousClock.now + .seconds(wait)
        let organization = caller.isServerWide ? nil : caller.organizationId
        while instructions.isEmpty && body.draining != true {
            let ticket = signals.ticket("jobs")
            // The agent went away while it waited: tell it nothing (it would never start it).
            if Task.isCancelled { break }
            instructions.start = try await agents.decide(agentId: instructions.agentId, organizationId: organization,
                                                         emulationFallbackSeconds: Double(jobs.emulationFallback.components.seconds))
            if !instructions.isEmpty { break }
            let now = ContinuousClock.now
            guard now < deadline else { break }
            // A builder finishing frees room only when it exits, which the agent says in its next
            // poll; new jobs are notified. Look again every 5 s for the rest.
            try? await cancelWhenGracefulShutdown { await self.signals.wait(ticket, timeout: min(deadline - now, .seconds(5))) }
            if Task.isShuttingDownGracefully || Task.isCancelled || signals.isClosed { break }
        }
        for launch in instructions.start {
            Observability.builderStarts.increment()
            agents.logger.info("agent told to start a builder", metadata: [
                "agent": "\(name)", "builder": "\(launch.builderId)", "project": "\(launch.projectId)", "platform": "\(launch.platform)",
                "clone": "\(launch.clone)",
            ])
        }
        Observability.builderStops.increment(by: Int64(instructions.stop.count))
        return .ok(.init(body: .json(.init(
            agentId: instructions.agentId,
            start: instructions.start.map { launch in
                .init(builderId: launch.builderId, organizationId: launch.organizationId, projectId: launch.projectId, platform: launch.platform,
                      registrationSecret: launch.registrationSecret,
                      cacheVolume: "\(launch.projectId)/\(launch.platform.replacingOccurrences(of: "/", with: "-"))",
                      clone: launch.clone, emulated: launch.emulated, buildsPerBuilder: launch.buildsPerBuilder, idleSeconds: launch.idleSeconds,
                      cpus: body.cpusPerBuilder, memoryMegabytes: body.memoryMegabytesPerBuilder)
            },
            stop: instructions.stop))))
    }

    func registerBuilder(_ input: Operations.RegisterBuilder.Input) async throws -> Operations.RegisterBuilder.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let name = try Validation.tokenName(body.name)
        let registered = try await agents.register(registrationTokenId: caller.tokenId, name: name)
        authenticator.invalidate()  // the secret works once
        guard let registered else {
            throw APIError.invalidToken
        }
        return .ok(.init(body: .json(.init(
            builderId: registered.builderId, workerToken: registered.workerToken, organizationId: registered.organizationId,
            projectId: registered.projectId, platform: registered.platform, emulated: registered.emulated, buildsPerBuilder: registered.buildsPerBuilder,
            idleSeconds: registered.idleSeconds))))
    }

    func listAgents(_ input: Operations.ListAgents.Input) async throws -> Operations.ListAgents.Output {
        let caller = try Caller.require()
        let agentRows = try await agents.agents(organizationId: caller.organizationId)
        let builderRows = try await agents.builders(organizationId: caller.organizationId)
        return .ok(.init(body: .json(.init(items: agentRows.map { agent in
            .init(id: agent.id, name: agent.name, launcher: agent.launcher, platforms: agent.platforms, emulatedPlatforms: agent.emulated,
                  maxBuilders: agent.maxBuilders,
                  cpusPerBuilder: agent.cpus, memoryMegabytesPerBuilder: agent.memoryMegabytes.map(Int.init), online: agent.online,
                  lastSeenAt: agent.lastSeenAt, serverWide: agent.serverWide,
                  builders: builderRows.filter { $0.agentId == agent.id && $0.state != "stopped" }.map(Components.Schemas.Builder.init))
        }))))
    }

    func getProjectCache(_ input: Operations.GetProjectCache.Input) async throws -> Operations.GetProjectCache.Output {
        let project = try await visibleProject(input.path.projectId)
        return .ok(.init(body: .json(.init(items: try await agents.caches(projectId: project.id).map(Components.Schemas.ProjectCache.init)))))
    }

    func resetProjectCache(_ input: Operations.ResetProjectCache.Input) async throws -> Operations.ResetProjectCache.Output {
        let project = try await visibleProject(input.path.projectId)
        var platform: String?
        if case .json(let body) = input.body, let raw = body.platform {
            guard let parsed = Platform(raw), parsed.isSupported else {
                throw APIError.invalidField("platform", "'\(raw)' is not a supported platform; use \(Platform.supportedList)")
            }
            platform = parsed.description
        }
        try await agents.resetCache(projectId: project.id, platform: platform)
        return .ok(.init(body: .json(.init(items: try await agents.caches(projectId: project.id).map(Components.Schemas.ProjectCache.init)))))
    }
}

extension Components.Schemas.Builder {
    init(_ b: AgentStore.BuilderRow) {
        self.init(name: "\(b.agentName)-\(b.id)", platforms: b.emulated ? [] : [b.platform], emulatedPlatforms: b.emulated ? [b.platform] : [], online: b.state == "idle" || b.state == "busy",
                  lastSeenAt: b.lastSeenAt ?? b.since, serverWide: b.serverWide,
                  running: b.running.map { .init(jobId: $0.jobId, buildId: $0.buildId, projectId: $0.projectId, platform: $0.platform, emulated: $0.emulated) },
                  id: b.id, agent: b.agentName, projectId: b.projectId, platform: b.platform,
                  state: .init(rawValue: b.state), since: b.since, jobsServed: b.jobsServed, cacheBytes: b.cacheBytes, clone: b.clone)
    }
}

extension Components.Schemas.ProjectCache {
    init(_ c: AgentStore.CacheRow) {
        self.init(platform: c.platform, bytes: c.bytes, images: c.images, lastUsedAt: c.lastUsedAt, generation: c.generation, resetAt: c.resetAt)
    }
}
