import DrydockAPITypes
import Foundation

// The API's shapes of builds and job assignments, from the store's records.

extension Components.Schemas.Build {
    init(_ r: BuildRecord) {
        self.init(
            id: r.id, projectId: r.projectId, status: .init(rawValue: r.status.rawValue) ?? .failed, contextDigest: r.contextDigest,
            dockerfile: r.spec.dockerfile, target: r.spec.target, platforms: r.spec.platforms.map(\.description), tags: r.spec.tags,
            buildArgs: .init(additionalProperties: r.spec.buildArgs), labels: .init(additionalProperties: r.spec.labels),
            noCache: r.spec.noCache, pull: .init(rawValue: r.spec.pull), push: r.spec.push,
            image: "\(r.projectId)/build:\(r.id)", digest: r.digest, error: r.error, createdAt: r.createdAt,
            startedAt: r.startedAt, finishedAt: r.finishedAt,
            jobs: r.jobs.map {
                .init(id: $0.id, platform: $0.platform, status: .init(rawValue: $0.status.rawValue) ?? .failed, workerName: $0.workerName,
                      emulated: $0.emulated, startedAt: $0.startedAt, finishedAt: $0.finishedAt, digest: $0.digest, error: $0.error)
            },
            steps: r.steps.map(Components.Schemas.BuildStep.init),
            cacheSavedMs: r.steps.isEmpty ? nil : r.cacheSavedMs,
            isolated: r.spec.isolated ?? false,
            bake: r.spec.bakeId.map { .init(id: $0, target: r.spec.bakeTarget ?? "") },
            waitingFor: r.status == .queued ? r.spec.pendingContexts.map { Array(Set($0.values)).sorted() } : nil)
    }
}

extension Components.Schemas.Bake {
    init(id: String, builds: [BuildRecord], projectId: String) {
        let statuses = builds.map(\.status)
        let status: BuildStatus =
            statuses.contains(where: { !$0.isFinished })
                ? (statuses.contains(where: { $0 != .queued }) ? .running : .queued)
                : statuses.allSatisfy { $0 == .succeeded } ? .succeeded : statuses.contains(.failed) ? .failed : .canceled
        self.init(id: id, projectId: projectId, status: .init(rawValue: status.rawValue) ?? .failed,
                  builds: builds.map(Components.Schemas.Build.init))
    }
}

extension Components.Schemas.JobAssignment {
    init(_ c: ClaimedJob, leaseSeconds: Int) {
        self.init(
            jobId: c.job.id, buildId: c.build.id, projectId: c.build.projectId, organizationId: c.build.organizationId,
            platform: c.job.platform, buildToken: c.buildToken, leaseSeconds: leaseSeconds, image: c.build.image(forJobOn: c.job.platform),
            contextDigest: c.build.contextDigest, dockerfile: c.build.spec.dockerfile, target: c.build.spec.target,
            buildArgs: .init(additionalProperties: c.build.spec.buildArgs), labels: .init(additionalProperties: c.build.spec.labels),
            noCache: c.build.spec.noCache, pull: .init(rawValue: c.build.spec.pull) ?? .missing,
            // A multi-platform build's tags go to its index, which the server writes.
            pushTags: c.build.spec.platforms.count > 1 ? [] : c.build.spec.destinations(projectId: c.build.projectId),
            secrets: c.secrets.secrets.map { .init(id: $0.id, value: $0.value) },
            registryCredentials: c.secrets.credentials.map { .init(registry: $0.registry, username: $0.username, password: $0.password) },
            insecureRegistries: c.build.spec.insecureRegistries,
            cacheGeneration: c.cacheGeneration, cachePolicy: .init(keepGigabytes: c.keepGigabytes, keepDays: c.keepDays),
            isolated: c.build.spec.isolated == true ? true : nil,
            attestations: .init(provenance: c.build.spec.provenance.flatMap { .init(rawValue: $0) } ?? .min, sbom: c.build.spec.sbom ?? false),
            imageFormat: c.build.spec.compression == nil && c.build.spec.ociMediaTypes == nil ? nil
                : .init(compression: c.build.spec.compression.flatMap { .init(rawValue: $0) }, compressionLevel: c.build.spec.compressionLevel,
                        forceCompression: c.build.spec.forceCompression, ociMediaTypes: c.build.spec.ociMediaTypes),
            annotations: c.build.spec.manifestAnnotations.isEmpty ? nil : .init(additionalProperties: c.build.spec.manifestAnnotations),
            namedImages: c.build.spec.namedImages.map { .init(additionalProperties: $0) },
            namedContexts: c.build.spec.namedContexts.map { .init(additionalProperties: $0) })
    }
}

extension Components.Schemas.BuildStep {
    init(_ s: StepRecord) {
        self.init(platform: s.platform, number: s.number, total: s.total, instruction: s.instruction, cached: s.cached,
                  status: .init(rawValue: s.status.rawValue) ?? .failed, durationMs: s.durationMs, stage: s.stage, stageStep: s.stageStep,
                  savedMs: s.savedMs)
    }
}

extension StepRecord {
    /// From a worker's report: `savedMs` is the server's to set, never taken from it.
    init(_ s: Components.Schemas.BuildStep) {
        self.init(platform: s.platform, number: s.number, total: s.total, instruction: s.instruction, cached: s.cached,
                  status: Status(rawValue: s.status.rawValue) ?? .failed, durationMs: s.durationMs, stage: s.stage, stageStep: s.stageStep)
    }
}

extension WorkerEvent {
    init(_ e: Components.Schemas.JobEvent) {
        self.init(sequence: e.sequence, time: e.time, kind: e.kind == .step ? .step : .log, line: e.line, step: e.step.map(StepRecord.init))
    }
}
