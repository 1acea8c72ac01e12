import Foundation
import OpenAPIRuntime

extension DrydockClient {
    // MARK: build contexts

    /// Whether the project already holds this context (`sha256:<hex>`).
    public func hasContext(projectId: String, digest: String) async throws -> Bool {
        do {
            _ = try await call { try await $0.getBuildContext(path: .init(projectId: projectId, digest: Self.hex(digest))).ok.body.json }
            return true
        } catch let error as DrydockClientError where error.status == 404 {
            return false
        }
    }

    /// Streams a context tar from disk.
    /// Uploads a packed context; `progress` is told the bytes sent so far as they go.
    public func uploadContext(projectId: String, digest: String, file: URL,
                              progress: (@Sendable (Int64) -> Void)? = nil) async throws -> Components.Schemas.BuildContext {
        let body = try FileBody.make(file, progress: progress)
        return try await call {
            try await $0.uploadBuildContext(path: .init(projectId: projectId, digest: Self.hex(digest)), body: .applicationXTar(body)).created.body.json
        }
    }

    static func hex(_ digest: String) -> String {
        digest.hasPrefix("sha256:") ? String(digest.dropFirst(7)) : digest
    }

    // MARK: builds

    public func createBuild(projectId: String, _ request: Components.Schemas.BuildCreate) async throws -> Components.Schemas.Build {
        try await call { try await $0.createBuild(path: .init(projectId: projectId), body: .json(request)).created.body.json }
    }

    /// Queues every target of a bake in one request (all or none).
    public func createBake(projectId: String, _ request: Components.Schemas.BakeCreate) async throws -> Components.Schemas.Bake {
        try await call { try await $0.createBake(path: .init(projectId: projectId), body: .json(request)).created.body.json }
    }

    public func bake(_ id: String) async throws -> Components.Schemas.Bake {
        try await call { try await $0.getBake(path: .init(bakeId: id)).ok.body.json }
    }

    public func cancelBake(_ id: String) async throws -> Components.Schemas.Bake {
        try await call { try await $0.cancelBake(path: .init(bakeId: id)).ok.body.json }
    }

    public func build(_ id: String) async throws -> Components.Schemas.Build {
        try await call { try await $0.getBuild(path: .init(buildId: id)).ok.body.json }
    }

    public func builds(projectId: String, status: Components.Schemas.BuildStatus? = nil, limit: Int? = nil, cursor: String? = nil) async throws -> Components.Schemas.BuildPage {
        try await call {
            try await $0.listBuilds(path: .init(projectId: projectId), query: .init(limit: limit, cursor: cursor, status: status)).ok.body.json
        }
    }

    public func cancelBuild(_ id: String) async throws -> Components.Schemas.Build {
        try await call { try await $0.cancelBuild(path: .init(buildId: id)).ok.body.json }
    }

    /// The build's log from `offset`; with `follow`, until the build ends. Use a client made
    /// with a long timeout for following.
    public func buildLogs(_ id: String, offset: Int64 = 0, follow: Bool = false) async throws -> AsyncThrowingStream<Components.Schemas.BuildLogEntry, any Error> {
        let body = try await call {
            try await $0.getBuildLogs(path: .init(buildId: id), query: .init(offset: offset, follow: follow)).ok.body.applicationJsonl
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = RFC3339DateTranscoder.decodingStrategy
        let lines = body.asDecodedJSONLines(of: Components.Schemas.BuildLogEntry.self, decoder: decoder)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await entry in lines { continuation.yield(entry) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// A build's log from `offset` to its end, following it while the build runs: a dropped
    /// connection is resumed from the last entry received (up to `retries` times in a row), so
    /// nothing is shown twice or lost. The one log follower, for `build` and `builds logs`.
    /// Use a client with a long timeout: a build can run for hours.
    public func followBuildLog(_ id: String, from offset: Int64 = 0, retries: Int = 10) -> AsyncThrowingStream<Components.Schemas.BuildLogEntry, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var next = offset
                var failures = 0
                while !Task.isCancelled {
                    do {
                        for try await entry in try await self.buildLogs(id, offset: next, follow: true) {
                            next = entry.offset + 1
                            failures = 0
                            continuation.yield(entry)
                        }
                        // The server ends a follow when the build ends, or when it shuts down.
                        let status = try await self.build(id).status
                        if [.succeeded, .failed, .canceled].contains(status) { break }
                    } catch let error as DrydockClientError where error.status != nil {
                        continuation.finish(throwing: error)
                        return
                    } catch {
                        failures += 1
                        guard failures <= retries else {
                            continuation.finish(throwing: DrydockClientError.other("lost the connection to the server while following build \(id): \(error)"))
                            return
                        }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: workers (worker and build tokens)

    /// Waits up to `waitSeconds` for a job; nil when none came.
    public func claimJob(name: String, platforms: [Platform], emulated: [Platform] = [], waitSeconds: Int) async throws -> Components.Schemas.JobAssignment? {
        try await call {
            switch try await $0.claimJob(body: .json(.init(
                name: name, platforms: platforms.map(\.description), emulatedPlatforms: emulated.isEmpty ? nil : emulated.map(\.description),
                waitSeconds: waitSeconds))) {
            case .ok(let ok): return try ok.body.json
            case .noContent: return nil
            case .undocumented(let status, _): throw DrydockClientError.other("unexpected answer \(status) to a job claim")
            default: throw DrydockClientError.other("unexpected answer to a job claim")
            }
        }
    }

    public func heartbeat(jobId: String) async throws -> Components.Schemas.JobLease {
        try await call { try await $0.heartbeatJob(path: .init(jobId: jobId)).ok.body.json }
    }

    /// The job's build context, or with `digest` one of its named directory contexts.
    public func downloadContext(jobId: String, digest: String? = nil, to file: URL) async throws {
        let body = try await call { try await $0.getJobContext(path: .init(jobId: jobId), query: .init(digest: digest)).ok.body.applicationXTar }
        FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600])
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        for try await chunk in body { try handle.write(contentsOf: chunk) }
    }

    public func reportEvents(jobId: String, _ events: [Components.Schemas.JobEvent]) async throws {
        try await call { _ = try await $0.reportJobEvents(path: .init(jobId: jobId), body: .json(.init(events: events))).noContent }
    }

    public func finishJob(jobId: String, _ result: Components.Schemas.JobResult) async throws {
        try await call { _ = try await $0.finishJob(path: .init(jobId: jobId), body: .json(result)).noContent }
    }
}

/// A file as a request body, read 1 MiB at a time as the transport asks for it.
enum FileBody {
    final class Reader: @unchecked Sendable {
        let handle: FileHandle
        let progress: (@Sendable (Int64) -> Void)?
        var sent: Int64 = 0
        init(_ handle: FileHandle, progress: (@Sendable (Int64) -> Void)?) {
            self.handle = handle
            self.progress = progress
        }
        deinit { try? handle.close() }
        func next() throws -> ArraySlice<UInt8>? {
            guard let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty else { return nil }
            sent += Int64(chunk.count)
            progress?(sent)
            return ArraySlice(chunk)
        }
    }

    static func make(_ file: URL, progress: (@Sendable (Int64) -> Void)? = nil) throws -> HTTPBody {
        let size = (try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.int64Value ?? 0
        let reader = Reader(try FileHandle(forReadingFrom: file), progress: progress)
        let stream = AsyncThrowingStream<ArraySlice<UInt8>, any Error>(unfolding: { try reader.next() })
        return HTTPBody(stream, length: .known(size), iterationBehavior: .single)
    }
}

extension DrydockClient {
    /// The builders serving the caller's organization (owners and admins).
    public func builders() async throws -> [Components.Schemas.Builder] {
        try await call { try await $0.listBuilders().ok.body.json.items }
    }
}
