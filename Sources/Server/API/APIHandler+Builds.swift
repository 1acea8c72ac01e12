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
              try contexts.path(projectId: project.id, digest: digest) != nil
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
        guard let digest = Digest(body.contextDigest), digest.algorithm == .sha256 else {
            throw APIError.invalidField("contextDigest", "must be sha256:<64 lowercase hex digits>")
        }
        guard try await builds.context(projectId: project.id, digest: digest.description) != nil,
              try contexts.path(projectId: project.id, digest: digest) != nil
        else {
            throw APIError.invalidField("contextDigest", "the project has no context \(digest); upload it first (PUT /api/v1/projects/\(project.id)/contexts/\(digest.hex))")
        }
        if caller.isolated, body.isolated != true {
            throw APIError.forbidden("this \(caller.kind.rawValue) token was exchanged for untrusted code (such as a fork's pull request) and can start isolated builds only: build with --isolated")
        }
        var spec = try BuildRequest.spec(body, projectId: project.id)
        // Named contexts: the images of this project's succeeded builds (a bake's target:OTHER).
        for (name, value) in (body.contexts?.additionalProperties ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty, name.count <= 128, name.allSatisfy({ $0.isLetter || $0.isNumber || "._-/".contains($0) }) else {
                throw APIError.invalidField("contexts", "'\(name)' is not a context name (letters, digits, '.', '_', '-', '/')")
            }
            guard value.hasPrefix("build:"), case let id = String(value.dropFirst("build:".count)), Identifier.isValid(id),
                  let other = try await builds.build(id: id), other.projectId == project.id
            else {
                throw APIError.invalidField("contexts.\(name)", "must be build:<build-id> of a build of this project (local directories as named contexts are not supported yet)")
            }
            guard other.status == .succeeded, let digest = other.digest else {
                throw APIError.invalidField("contexts.\(name)", "build \(id) has not succeeded (it is \(other.status.rawValue)); its image cannot be a context yet")
            }
            spec.namedImages = (spec.namedImages ?? [:]).merging(["\(name)": "\(project.id)/build:\(id)@\(digest)"]) { $1 }
        }
        if let bake = body.bake {
            spec.bakeId = bake.id
            spec.bakeTarget = bake.target
        }
        let secrets = try BuildRequest.secrets(body)
        let id = Identifier.generate()
        let build = try await builds.create(
            id: id, projectId: project.id, organizationId: project.organizationId, contextDigest: digest.description,
            spec: spec, secrets: secrets, createdByTokenId: caller.tokenId)
        return .created(.init(body: .json(.init(build))))
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
        try await jobs.recordWorker(tokenId: caller.tokenId, name: name, platforms: platforms, emulated: emulated)
        let wait = try Validation.range(body.waitSeconds, 0...60, field: "waitSeconds") ?? 25
        let deadline = ContinuousClock.now + .seconds(wait)
        let organization = caller.isServerWide ? nil : caller.organizationId
        while true {
            let ticket = signals.ticket("jobs")
            // The worker went away while it waited (its connection closed): nothing for it.
            if Task.isCancelled { return .noContent(.init()) }
            if let claimed = try await jobs.claim(organizationId: organization, projectId: projectScope, platforms: platforms, emulated: emulated, workerName: name,
                                                  workerTokenId: caller.tokenId) {
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
        guard let digest = Digest(found.contextDigest), let path = try contexts.path(projectId: found.projectId, digest: digest) else {
            throw APIError.notFound("build context", found.contextDigest)
        }
        let (size, stream) = try contexts.read(path: path)
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
        authenticator.invalidate()  // the job's build token was revoked with it
        return .noContent(.init())
    }
}
