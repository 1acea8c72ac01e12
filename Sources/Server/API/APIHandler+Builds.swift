import DrydockAPITypes
import DrydockBuildContext
import Foundation
import HTTPTypes
import NIOCore
import OpenAPIRuntime
import ServiceLifecycle

// MARK: build contexts and builds

extension APIHandler {
    func getBuildContext(_ input: Operations.GetBuildContext.Input) async throws -> Operations.GetBuildContext.Output {
        let project = try await visibleProject(input.path.projectId)
        let digest = try Self.contextDigest(hex: input.path.digest)
        guard let found = try await builds.context(projectId: project.id, digest: digest.description),
              try await contexts.exists(projectId: project.id, digest: digest)
        else { throw APIError.notFound("build context", digest.description) }
        return .ok(.init(body: .json(.init(digest: digest.description, sizeBytes: found.size, createdAt: found.createdAt))))
    }

    func uploadBuildContext(_ input: Operations.UploadBuildContext.Input) async throws -> Operations.UploadBuildContext.Output {
        let project = try await visibleProject(input.path.projectId)
        let digest = try Self.contextDigest(hex: input.path.digest)
        guard case .applicationXTar(let body) = input.body else { throw APIError.badRequest("expected an application/x-tar body") }
        if case .known(let length) = body.length, length > contexts.limit {
            throw Self.contextTooLarge(contexts.limit)
        }
        let size: Int64
        do {
            size = try await contexts.put(projectId: project.id, digest: digest, body: body.map { ByteBuffer(bytes: $0) })
        } catch BlobStoreError.digestMismatch(let actual) {
            throw APIError.badRequest("the uploaded tar's digest is \(actual), not \(digest); nothing was kept", code: "digest_mismatch")
        } catch BlobStoreError.tooLarge {
            throw Self.contextTooLarge(contexts.limit)
        }
        let created = try await builds.recordContext(projectId: project.id, digest: digest.description, size: size)
        return .created(.init(body: .json(.init(digest: digest.description, sizeBytes: size, createdAt: created))))
    }

    static func contextTooLarge(_ limit: Int64) -> APIError {
        APIError(status: .contentTooLarge, code: "context_too_large",
                 detail: "the build context is larger than this server's limit of \(limit / (1 << 20)) MiB; "
                     + "leave large files out with .dockerignore (or raise DRYDOCK_MAX_CONTEXT_BYTES on the server)")
    }

    static func contextDigest(hex: String) throws -> Digest {
        guard let digest = Digest("sha256:\(hex)") else {
            throw APIError.invalidField("digest", "must be the 64 lowercase hex digits of the context tar's SHA-256")
        }
        return digest
    }

    func createBuild(_ input: Operations.CreateBuild.Input) async throws -> Operations.CreateBuild.Output {
        let caller = try Caller.require()
        let project = try await visibleProject(input.path.projectId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let new = try await newBuild(body, project: project, caller: caller, id: Identifier.generate(), bake: nil)
        return .created(.init(body: .json(.init(try await builds.create(new)))))
    }

    /// A bake: every target's build checked, then all queued in one transaction; `target:NAME`
    /// contexts name another target of the same request, whose build this one waits for.
    func createBake(_ input: Operations.CreateBake.Input) async throws -> Operations.CreateBake.Output {
        let caller = try Caller.require()
        let project = try await visibleProject(input.path.projectId)
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        guard !body.targets.isEmpty, body.targets.count <= 100 else {
            throw APIError.invalidField("targets", "a bake queues 1 to 100 targets")
        }
        let bakeId = Identifier.generate()
        var ids: [String: String] = [:]
        for (i, target) in body.targets.enumerated() {
            guard !target.name.isEmpty, target.name.count <= 256 else {
                throw APIError.invalidField("targets[\(i)].name", "must be 1 to 256 characters")
            }
            guard ids[target.name] == nil else {
                throw APIError.invalidField("targets[\(i)].name", "'\(target.name)' is given twice")
            }
            ids[target.name] = Identifier.generate()
        }
        // target:NAME contexts must not form a cycle (each target would wait for itself).
        var edges: [String: [String]] = [:]
        for target in body.targets {
            edges[target.name] = (target.build.contexts?.additionalProperties ?? [:]).values.compactMap {
                $0.hasPrefix("target:") ? String($0.dropFirst("target:".count)) : nil
            }.sorted()
        }
        if let cycle = Self.cycle(in: edges, order: body.targets.map(\.name)) {
            throw APIError.invalidField("targets", "the contexts form a cycle: \(cycle.joined(separator: " → "))")
        }
        var items: [BuildStore.NewBuild] = []
        for (i, target) in body.targets.enumerated() {
            do {
                items.append(try await newBuild(target.build, project: project, caller: caller, id: ids[target.name] ?? Identifier.generate(),
                                                bake: (bakeId, target.name, ids)))
            } catch let error as APIError where error.fieldErrors.count == 1 {
                let field = "targets[\(i)].build.\(error.fieldErrors[0].field)"
                throw APIError.invalidField(field, "\(error.fieldErrors[0].message) (target '\(target.name)')")
            } catch let error as DomainError where error.field != nil {
                let original = error.field ?? ""
                let message = error.message.hasPrefix(original + ": ") ? String(error.message.dropFirst(original.count + 2)) : error.message
                throw APIError.invalidField("targets[\(i)].build.\(original)", "\(message) (target '\(target.name)')")
            }
        }
        let created = try await builds.create(items)
        return .created(.init(body: .json(.init(id: bakeId, builds: created, projectId: project.id))))
    }

    /// The first cycle through `edges` (names not in `edges` end a path), as the names along it.
    static func cycle(in edges: [String: [String]], order: [String]) -> [String]? {
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        func visit(_ name: String) -> [String]? {
            if state[name] == 2 || edges[name] == nil { return nil }
            if state[name] == 1 {
                let start = path.firstIndex(of: name) ?? 0
                return Array(path[start...]) + [name]
            }
            state[name] = 1
            path.append(name)
            for next in edges[name] ?? [] {
                if let found = visit(next) { return found }
            }
            path.removeLast()
            state[name] = 2
            return nil
        }
        for name in order {
            if let found = visit(name) { return found }
        }
        return nil
    }

    func getBake(_ input: Operations.GetBake.Input) async throws -> Operations.GetBake.Output {
        let (id, found) = try await visibleBake(input.path.bakeId)
        return .ok(.init(body: .json(.init(id: id, builds: found, projectId: found.first?.projectId ?? ""))))
    }

    func cancelBake(_ input: Operations.CancelBake.Input) async throws -> Operations.CancelBake.Output {
        let (id, found) = try await visibleBake(input.path.bakeId)
        for build in found where !build.status.isFinished { try await builds.cancel(buildId: build.id) }
        let after = try await builds.bake(id: id)
        return .ok(.init(body: .json(.init(id: id, builds: after, projectId: found.first?.projectId ?? ""))))
    }

    /// A bake's builds the caller can see, or 404 (a bake of another organization is never named).
    func visibleBake(_ id: String) async throws -> (String, [BuildRecord]) {
        let caller = try Caller.require()
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw APIError.notFound("bake", id)
        }
        var visible: [BuildRecord] = []
        var seen: [String: Bool] = [:]
        for build in try await builds.bake(id: id) {
            if seen[build.projectId] == nil {
                seen[build.projectId] = try await projects.project(id: build.projectId).map { caller.canSee(project: $0) } ?? false
            }
            if seen[build.projectId] == true { visible.append(build) }
        }
        // Bakes the CLI numbered itself could share an id across projects: one project's only.
        let project = visible.first?.projectId
        visible = visible.filter { $0.projectId == project }
        guard !visible.isEmpty else { throw APIError.notFound("bake", id) }
        return (id, visible)
    }

    /// A build request checked field by field. `bake` gives the bake's id, this target's name
    /// and the build ids of its targets (for `target:NAME` contexts).
    func newBuild(_ body: Components.Schemas.BuildCreate, project: ProjectRecord, caller: Caller, id: String,
                  bake: (id: String, target: String, ids: [String: String])?) async throws -> BuildStore.NewBuild {
        guard let digest = Digest(body.contextDigest), digest.algorithm == .sha256 else {
            throw APIError.invalidField("contextDigest", "must be sha256:<64 lowercase hex digits>")
        }
        // The request's own fields first: what can never be built is said before what is missing.
        var spec = try BuildRequest.spec(body, projectId: project.id)
        guard try await builds.context(projectId: project.id, digest: digest.description) != nil,
              try await contexts.exists(projectId: project.id, digest: digest)
        else {
            throw APIError.invalidField("contextDigest", "the project has no context \(digest); upload it first (PUT /api/v1/projects/\(project.id)/contexts/\(digest.hex))")
        }
        if caller.isolated, body.isolated != true {
            throw APIError.forbidden("this \(caller.kind.rawValue) token was exchanged for untrusted code (such as a fork's pull request) and can start isolated builds only: build with --isolated")
        }
        // Named contexts: the images of other builds of this project (a bake's target:OTHER);
        // the store resolves finished ones and makes the build wait for the others.
        var pending: [String: String] = [:]
        for (name, value) in (body.contexts?.additionalProperties ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty, name.count <= 128, name.allSatisfy({ $0.isLetter || $0.isNumber || "._-/".contains($0) }) else {
                throw APIError.invalidField("contexts", "'\(name)' is not a context name (letters, digits, '.', '_', '-', '/')")
            }
            if value.hasPrefix("target:"), let bake {
                let other = String(value.dropFirst("target:".count))
                guard let otherId = bake.ids[other] else {
                    throw APIError.invalidField("contexts.\(name)", "target:\(other) is not a target of this bake")
                }
                guard other != bake.target else { throw APIError.invalidField("contexts.\(name)", "a target cannot use its own image") }
                pending[name] = otherId
                continue
            }
            if value.hasPrefix("docker-image://") {
                let reference = String(value.dropFirst("docker-image://".count))
                guard ImageReference(reference) != nil, !reference.contains("$") else {
                    throw APIError.invalidField("contexts.\(name)", "'\(reference)' is not an image reference (docker-image://registry/name:tag)")
                }
                spec.namedImages = (spec.namedImages ?? [:]).merging([name: value]) { $1 }
                continue
            }
            if value.hasPrefix("context:") {
                let text = String(value.dropFirst("context:".count))
                guard let digest = Digest(text), digest.algorithm == .sha256 else {
                    throw APIError.invalidField("contexts.\(name)", "must be context:sha256:<64 lowercase hex digits>")
                }
                guard try await builds.context(projectId: project.id, digest: digest.description) != nil,
                      try await contexts.exists(projectId: project.id, digest: digest)
                else {
                    throw APIError.invalidField("contexts.\(name)", "the project has no context \(digest); upload it first (PUT /api/v1/projects/\(project.id)/contexts/\(digest.hex))")
                }
                spec.namedContexts = (spec.namedContexts ?? [:]).merging([name: digest.description]) { $1 }
                continue
            }
            guard value.hasPrefix("build:"), case let other = String(value.dropFirst("build:".count)), Identifier.isValid(other) else {
                throw APIError.invalidField("contexts.\(name)", bake == nil
                    ? "must be build:<build-id>, docker-image://REF or context:sha256:<hex> (an uploaded directory)"
                    : "must be target:<name> of this bake, build:<build-id>, docker-image://REF or context:sha256:<hex> (an uploaded directory)")
            }
            pending[name] = other
        }
        spec.pendingContexts = pending.isEmpty ? nil : pending
        if let bake {
            spec.bakeId = bake.id
            spec.bakeTarget = bake.target
        } else if let bake = body.bake {
            spec.bakeId = bake.id
            spec.bakeTarget = bake.target
        }
        return BuildStore.NewBuild(
            id: id, projectId: project.id, organizationId: project.organizationId, contextDigest: digest.description,
            spec: spec, secrets: try BuildRequest.secrets(body), createdByTokenId: caller.tokenId)
    }

    func visibleBuild(_ id: String) async throws -> BuildRecord {
        let caller = try Caller.require()
        guard Identifier.isValid(id), let build = try await builds.build(id: id),
              let project = try await projects.project(id: build.projectId), caller.canSee(project: project)
        else { throw APIError.notFound("build", id) }  // never naming the project of a build it cannot see
        return build
    }

    func listBuilds(_ input: Operations.ListBuilds.Input) async throws -> Operations.ListBuilds.Output {
        let project = try await visibleProject(input.path.projectId)
        let page = try await builds.list(
            projectId: project.id, status: input.query.status.flatMap { BuildStatus(rawValue: $0.rawValue) },
            cursor: try PageCursor.decode(input.query.cursor), limit: try PageCursor.limit(input.query.limit))
        return .ok(.init(body: .json(.init(items: page.items.map(Components.Schemas.Build.init), nextCursor: page.nextCursor))))
    }

    func getBuild(_ input: Operations.GetBuild.Input) async throws -> Operations.GetBuild.Output {
        .ok(.init(body: .json(.init(try await visibleBuild(input.path.buildId)))))
    }

    func cancelBuild(_ input: Operations.CancelBuild.Input) async throws -> Operations.CancelBuild.Output {
        let build = try await visibleBuild(input.path.buildId)
        try await builds.cancel(buildId: build.id)
        return .ok(.init(body: .json(.init(try await visibleBuild(build.id)))))
    }

    func getBuildLogs(_ input: Operations.GetBuildLogs.Input) async throws -> Operations.GetBuildLogs.Output {
        let build = try await visibleBuild(input.path.buildId)
        let offset = input.query.offset ?? 0
        guard offset >= 0 else { throw APIError.invalidField("offset", "must be 0 or more") }
        let follower = LogFollower(log: buildLog, builds: builds, signals: signals, buildId: build.id, position: offset, follow: input.query.follow ?? false)
        let stream = AsyncThrowingStream<ArraySlice<UInt8>, any Error>(unfolding: { try await follower.next() })
        return .ok(.init(body: .applicationJsonl(HTTPBody(stream, length: .unknown, iterationBehavior: .single))))
    }
}

// MARK: workers and jobs

extension APIHandler {
    func listBuilders(_ input: Operations.ListBuilders.Input) async throws -> Operations.ListBuilders.Output {
        let caller = try Caller.require()
        let builders = try await jobs.builders(organizationId: caller.organizationId)
        let started = try await agents.builders(organizationId: caller.organizationId)
        return .ok(.init(body: .json(.init(items: builders.map { builder in
            .init(name: builder.name, platforms: builder.platforms, emulatedPlatforms: builder.emulated, online: builder.online,
                  lastSeenAt: builder.lastSeenAt, serverWide: builder.serverWide,
                  running: builder.running.map { .init(jobId: $0.jobId, buildId: $0.buildId, projectId: $0.projectId, platform: $0.platform, emulated: $0.emulated) })
        } + started.map(Components.Schemas.Builder.init)))))
    }

    func claimJob(_ input: Operations.ClaimJob.Input) async throws -> Operations.ClaimJob.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        let name = try Validation.tokenName(body.name)
        var platforms: [Platform] = []
        for (i, raw) in body.platforms.enumerated() {
            guard let platform = Platform(raw) else {
                throw APIError.invalidField("platforms[\(i)]", "'\(raw)' is not a platform like linux/amd64 or linux/arm64")
            }
            platforms.append(platform)
        }
        var emulated: [Platform] = []
        for (i, raw) in (body.emulatedPlatforms ?? []).enumerated() {
            guard let platform = Platform(raw) else {
                throw APIError.invalidField("emulatedPlatforms[\(i)]", "'\(raw)' is not a platform like linux/arm64 or linux/arm/v7")
            }
            emulated.append(platform)
        }
        guard !platforms.isEmpty || !emulated.isEmpty else { throw APIError.invalidField("platforms", "name at least one platform, native or emulated") }
        // A builder an agent started serves its one project and platform.
        var projectScope: String?
        if caller.projectId != nil {
            guard let scope = try await agents.scope(workerTokenId: caller.tokenId) else {
                throw APIError.invalidToken  // its builder was stopped
            }
            let asked = scope.emulated ? emulated : platforms
            guard asked.contains(where: { $0.description == scope.platform }) else {
                throw APIError.invalidField(scope.emulated ? "emulatedPlatforms" : "platforms",
                                            "this builder serves only \(scope.platform)\(scope.emulated ? " emulated" : "") (what its agent started it for)")
            }
            platforms = scope.emulated ? [] : [Platform(scope.platform)].compactMap { $0 }
            emulated = scope.emulated ? [Platform(scope.platform)].compactMap { $0 } : []
            projectScope = scope.projectId
        }
        let wait = try Validation.range(body.waitSeconds, 0...60, field: "waitSeconds") ?? 25
        // The claim also records that the worker is online (`JobQueue.claim`).
        return try await claimOrWait(caller: caller, name: name, platforms: platforms, emulated: emulated, projectScope: projectScope,
                                     deadline: ContinuousClock.now + .seconds(wait))
    }

    /// The claim's job, or 204 once `deadline` passes with none for it (or the worker leaves, or
    /// the server shuts down).
    private func claimOrWait(caller: Caller, name: String, platforms: [Platform], emulated: [Platform], projectScope: String?,
                             deadline: ContinuousClock.Instant) async throws -> Operations.ClaimJob.Output {
        let organization = caller.isServerWide ? nil : caller.organizationId
        while true {
            let ticket = signals.ticket("jobs")
            // The worker went away while it waited (its connection closed): nothing for it.
            if Task.isCancelled { return .noContent(.init()) }
            if let claimed = try await jobs.claim(organizationId: organization, projectId: projectScope, platforms: platforms, emulated: emulated, workerName: name,
                                                  workerTokenId: caller.tokenId) {
                if let grant = claimed.buildGrant { authenticator.remember(secret: claimed.buildToken, grant: grant) }
                return .ok(.init(body: .json(.init(claimed, leaseSeconds: jobs.leaseSeconds))))
            }
            let now = ContinuousClock.now
            guard now < deadline else { return .noContent(.init()) }
            // A server shutting down answers at once instead of holding its shutdown back. An
            // emulating worker looks again every 2 s: a job becomes its own after a delay, not
            // on a notification.
            let wait = emulated.isEmpty ? deadline - now : min(deadline - now, .seconds(2))
            try? await cancelWhenGracefulShutdown { await self.signals.wait(ticket, timeout: wait) }
            if Task.isShuttingDownGracefully { return .noContent(.init()) }
            if Task.isCancelled || signals.isClosed { return .noContent(.init()) }
        }
    }

    private func callerJob(_ id: String) async throws -> (job: JobRecord, projectId: String, contextDigest: String) {
        let caller = try Caller.require()
        guard caller.kind == .build, Identifier.isValid(id), let found = try await jobs.job(id: id, buildTokenId: caller.tokenId) else {
            throw APIError.notFound("job", id)
        }
        return found
    }

    func heartbeatJob(_ input: Operations.HeartbeatJob.Input) async throws -> Operations.HeartbeatJob.Output {
        let caller = try Caller.require()
        switch try await jobs.heartbeat(jobId: input.path.jobId, buildTokenId: caller.tokenId) {
        case .renewed(let cancel):
            return .ok(.init(body: .json(.init(leaseSeconds: jobs.leaseSeconds, cancelRequested: cancel))))
        case .notRunning(let status):
            throw APIError.conflict("the job is no longer running (it is \(status.rawValue)); stop working on it")
        case .unknown:
            throw APIError.notFound("job", input.path.jobId)
        }
    }

    func getJobContext(_ input: Operations.GetJobContext.Input) async throws -> Operations.GetJobContext.Output {
        let found = try await callerJob(input.path.jobId)
        var wanted = found.contextDigest
        if let asked = input.query.digest, asked != found.contextDigest {
            // One of the build's directory contexts; nothing else of the project.
            guard let build = try await builds.build(id: found.job.buildId), (build.spec.namedContexts ?? [:]).values.contains(asked) else {
                throw APIError.notFound("build context", asked)
            }
            wanted = asked
        }
        guard let digest = Digest(wanted), let (size, stream) = try await contexts.read(projectId: found.projectId, digest: digest) else {
            throw APIError.notFound("build context", wanted)
        }
        return .ok(.init(body: .applicationXTar(HTTPBody(stream, length: .known(size), iterationBehavior: .single))))
    }

    func reportJobEvents(_ input: Operations.ReportJobEvents.Input) async throws -> Operations.ReportJobEvents.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        guard caller.kind == .build else { throw APIError.notFound("job", input.path.jobId) }
        for (i, event) in body.events.enumerated() {
            if event.kind == .step, event.step == nil { throw APIError.invalidField("events[\(i)].step", "is required for step events") }
            if event.kind == .log, event.line == nil { throw APIError.invalidField("events[\(i)].line", "is required for log events") }
        }
        switch try await jobs.appendEvents(jobId: input.path.jobId, buildTokenId: caller.tokenId, events: body.events.map(WorkerEvent.init)) {
        case .appended: return .noContent(.init())
        case .notRunning(let status): throw APIError.conflict("the job is no longer running (it is \(status.rawValue)); stop working on it")
        case .unknown: throw APIError.notFound("job", input.path.jobId)
        }
    }

    func finishJob(_ input: Operations.FinishJob.Input) async throws -> Operations.FinishJob.Output {
        let caller = try Caller.require()
        guard case .json(let body) = input.body else { throw APIError.badRequest("expected a JSON body") }
        guard caller.kind == .build else { throw APIError.notFound("job", input.path.jobId) }
        let status = BuildStatus(rawValue: body.status.rawValue) ?? .failed
        if let digest = body.digest, Digest(digest) == nil { throw APIError.invalidField("digest", "must be sha256:<64 hex>") }
        if status == .succeeded, body.digest == nil { throw APIError.invalidField("digest", "is required when the job succeeded") }
        switch try await jobs.finish(jobId: input.path.jobId, buildTokenId: caller.tokenId, status: status, digest: body.digest,
                                     error: body.error, cacheBytes: body.cacheBytes, cacheImages: body.cacheImages) {
        case .unknown:
            throw APIError.notFound("job", input.path.jobId)
        case .recorded(let buildId, let needsIndex):
            if needsIndex { await indexes.assemble(buildId: buildId) }
        }
        authenticator.invalidate(tokenId: caller.tokenId)  // the job's build token was revoked with it
        return .noContent(.init())
    }
}
