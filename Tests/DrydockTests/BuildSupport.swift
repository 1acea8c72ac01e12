import DrydockBuildContext
import DrydockClient
import DrydockProcess
import DrydockServer
import Foundation
import Testing

/// A `drydock-builder` process, as an operator would start it.
final class BuilderProcess: Sendable {
    let process: RunningProcess
    let log: URL

    convenience init(server: TestServer, token: String, cache: URL, name: String, concurrency: Int = 1, environment extra: [String: String] = [:]) async throws {
        try await self.init(apiURL: server.baseURL, token: token, cache: cache, name: name, concurrency: concurrency, environment: extra)
    }

    init(apiURL: String, token: String, cache: URL, name: String, concurrency: Int = 1, environment extra: [String: String] = [:]) async throws {
        let binary = packageRoot.appendingPathComponent(".build/debug/drydock-builder")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw CLITestError("\(binary.path) is missing: build with 'swift build --build-tests' first")
        }
        log = cache.deletingLastPathComponent().appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process = try await RunningProcess([binary.path], environment: [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "DRYDOCK_API_URL": apiURL, "DRYDOCK_WORKER_TOKEN": token,
            "DRYDOCK_CACHE_DIR": cache.path, "DRYDOCK_BUILDER_NAME": name,
            "DRYDOCK_BUILDER_CONCURRENCY": "\(concurrency)",
        ].merging(extra) { $1 }, log: log.path)
    }

    deinit {
        if process.isRunning { process.signal(SIGKILL) }
    }

    /// SIGTERM, and SIGKILL if it has not exited within 10 s.
    func stop() async {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        if await process.wait(timeout: .seconds(10)) == nil { process.signal(SIGKILL) }
    }

    func kill9() {
        process.signal(SIGKILL)
    }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
}

/// A project ready to build in: a busybox base image in its registry and a worker token.
struct BuildFixture: Sendable {
    let server: TestServer
    let projectId: String
    let client: DrydockClient
    var host: String { "127.0.0.1:\(server.port)" }
    var base: String { "\(host)/\(projectId)/busybox:latest" }

    static func make(_ server: TestServer, project name: String, token: String? = nil) async throws -> BuildFixture {
        let projectId = try await server.createProject(name, token: token)
        let layout = try await busyboxLayout()
        let copy = try await runTool("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "ci:\(token ?? server.ownerToken)",
                                                "oci:\(layout):latest", "docker://127.0.0.1:\(server.port)/\(projectId)/busybox:latest"])
        try #require(copy.status == 0, "pushing the busybox base image: \(copy.stderr)")
        return BuildFixture(server: server, projectId: projectId,
                            client: DrydockClient(baseURL: URL(string: server.baseURL)!, token: token ?? server.ownerToken))
    }

    /// An OCI layout of busybox-static, made once per test run.
    static func busyboxLayout() async throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-busybox-layout-\(getpid())").path
        try await makeOnce(dir) { scratch in
            let made = try await runTool("python3", [packageRoot.appendingPathComponent("Tests/Fixtures/make-busybox-layout.py").path, scratch])
            try #require(made.status == 0, "making the busybox image: \(made.stderr)")
        }
        return dir
    }

    /// Makes `directory` once per test run, safely when tests running at once all ask for it:
    /// each makes its own copy and renames it into place, so none ever reads a half-written one.
    static func makeOnce(_ directory: String, _ make: (String) async throws -> Void) async throws {
        if FileManager.default.fileExists(atPath: directory) { return }
        let scratch = directory + ".making-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try await make(scratch)
        // rename(2) of a directory onto a missing path is atomic; if another test got there first, keep theirs.
        _ = rename(scratch, directory)
    }

    /// Packs `files` (path → content) as a context, uploads it and queues a build.
    func queue(_ files: [String: String], _ request: (String) -> Components.Schemas.BuildCreate = { .init(contextDigest: $0) }) async throws -> Components.Schemas.Build {
        try await withTemporaryDirectory { dir in
            for (path, content) in files {
                let url = dir.appendingPathComponent(path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try content.write(to: url, atomically: true, encoding: .utf8)
            }
            let tar = dir.appendingPathComponent("../\(UUID().uuidString).tar").standardizedFileURL
            defer { try? FileManager.default.removeItem(at: tar) }
            let packed = try ContextPacker.pack(directory: dir, dockerfile: dir.appendingPathComponent("Dockerfile"), into: tar)
            if try await !client.hasContext(projectId: projectId, digest: packed.digest) {
                _ = try await client.uploadContext(projectId: projectId, digest: packed.digest, file: tar)
            }
            return try await client.createBuild(projectId: projectId, request(packed.digest))
        }
    }

    /// Polls until `condition` holds for the build (or the time is up).
    func wait(_ id: String, timeout: Duration = .seconds(120), until condition: (Components.Schemas.Build) -> Bool) async throws -> Components.Schemas.Build {
        let deadline = ContinuousClock.now + timeout
        while true {
            let build = try await client.build(id)
            if condition(build) { return build }
            guard ContinuousClock.now < deadline else {
                Issue.record("build \(id) still \(build.status.rawValue) after \(timeout): \(build)")
                return build
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    func finished(_ id: String, timeout: Duration = .seconds(120)) async throws -> Components.Schemas.Build {
        try await wait(id, timeout: timeout) { [.succeeded, .failed, .canceled].contains($0.status) }
    }

    /// The build's whole log as text.
    func logText(_ id: String) async throws -> String {
        var lines: [String] = []
        for try await entry in try await client.buildLogs(id) {
            if let line = entry.line { lines.append(line) }
        }
        return lines.joined(separator: "\n")
    }
}

/// A worker token for the test organization.
func workerToken(_ server: TestServer) async throws -> String {
    try await server.createToken(#"{"name":"builder","kind":"worker"}"#).1
}

func cacheStorage(_ cache: URL, _ projectId: String) -> [String] {
    let root = cache.appendingPathComponent(projectId).appendingPathComponent(Platform.host.pathComponent)
    return ["--root", root.appendingPathComponent("storage").path, "--runroot", root.appendingPathComponent("run").path, "--storage-driver", "overlay"]
}
