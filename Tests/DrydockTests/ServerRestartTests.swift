import DrydockBuildContext
import DrydockClient
import DrydockProcess
import DrydockServer
import Foundation
import Testing

/// A server restart is not a worker failure: the builder keeps building through the outage, its
/// reports are retried, and the job finishes normally once the server is back.
@Suite("Server restart mid-build")
struct ServerRestartTests {
    static func urlString(_ url: DatabaseURL) -> String {
        if let socket = url.socketDirectory { return "postgres://\(url.username)@/\(url.database)?host=\(socket)" }
        return "postgres://\(url.username)\(url.password.map { ":\($0)" } ?? "")@\(url.host):\(url.port)/\(url.database)"
    }

    static func ready(_ server: ServerProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if await httpStatus(port: server.port, "/readyz", timeout: .seconds(5)) == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("the server did not become ready: \(server.lastOutput)")
    }

    @Test("the server stops and comes back while a RUN step runs: the build succeeds, and the builder never calls its token refused")
    func restartMidBuild() async throws {
        try await withTemporaryDirectory { dir in
            let database = try await TestDatabase.create()
            var env = ["DRYDOCK_DATABASE_URL": Self.urlString(database), "DRYDOCK_DATA_DIR": dir.appendingPathComponent("data").path,
                       "HOME": dir.path, "DRYDOCK_JOB_LEASE_SECONDS": "6"]
            let bootstrap = try await runExecutable("drydock-server", ["bootstrap", "--org", "restart"], environment: env)
            let token = try #require(bootstrap.stdout.split(separator: "\n").last.map(String.init), "\(bootstrap.stderr)")
            let first = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("server-1.log"))
            let port = first.port
            try await Self.ready(first)
            let client = DrydockClient(baseURL: first.baseURL, token: token)
            let project = try #require(try await client.createProject(name: "app").id)
            let layout = try await BuildFixture.busyboxLayout()
            let pushed = try await runTool("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "ci:\(token)",
                                                      "oci:\(layout):latest", "docker://127.0.0.1:\(port)/\(project)/busybox:latest"])
            try #require(pushed.status == 0, "\(pushed.stderr)")
            let worker = try await client.createToken(name: "w", kind: .worker, projectId: nil, expiresInSeconds: nil).token
            let builderLog = dir.appendingPathComponent("builder.log")
            FileManager.default.createFile(atPath: builderLog.path, contents: nil)
            let builder = try await RunningProcess(
                [packageRoot.appendingPathComponent(".build/debug/drydock-builder").path],
                environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "DRYDOCK_API_URL": first.baseURL.absoluteString,
                              "DRYDOCK_WORKER_TOKEN": worker, "DRYDOCK_CACHE_DIR": dir.appendingPathComponent("cache").path,
                              "DRYDOCK_BUILDER_NAME": "steady"],
                log: builderLog.path)
            defer { builder.signal(SIGKILL) }

            let context = dir.appendingPathComponent("ctx")
            try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
            try "FROM 127.0.0.1:\(port)/\(project)/busybox:latest\nRUN echo working && sleep 8 && echo finished\n"
                .write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
            let tar = dir.appendingPathComponent("ctx.tar")
            let packed = try ContextPacker.pack(directory: context, dockerfile: context.appendingPathComponent("Dockerfile"), into: tar)
            _ = try await client.uploadContext(projectId: project, digest: packed.digest, file: tar)
            let build = try await client.createBuild(projectId: project, .init(contextDigest: packed.digest))
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                let current = try await client.build(build.id)
                if current.steps.contains(where: { $0.instruction.contains("sleep 8") && $0.status == .running }) { break }
                try await Task.sleep(for: .milliseconds(200))
            }

            // Down for a few seconds, longer than the first heartbeats' interval, then back on the same port.
            first.signal(SIGTERM)
            #expect(try await first.waitForExit() == 0, "\(first.lastOutput)")
            try await Task.sleep(for: .seconds(3))
            env["DRYDOCK_PORT"] = "\(port)"
            let second = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("server-2.log"))
            defer { second.signal(SIGTERM) }
            try await Self.ready(second)

            var finished = try await client.build(build.id)
            let end = ContinuousClock.now + .seconds(90)
            while ![.succeeded, .failed, .canceled].contains(finished.status), ContinuousClock.now < end {
                try await Task.sleep(for: .milliseconds(300))
                finished = try await client.build(build.id)
            }
            let log = (try? String(contentsOf: builderLog, encoding: .utf8)) ?? ""
            #expect(finished.status == .succeeded, "\(finished.error ?? "") \n\(log)")
            #expect(!log.contains("refused the worker token"), "\(log)")
            #expect(log.contains("job finished"), "\(log)")
            var lines: [String] = []
            for try await entry in try await client.buildLogs(build.id) { if let line = entry.line { lines.append(line) } }
            #expect(lines.contains("finished"), "the step's output after the outage reached the log: \(lines)")
        }
    }
}
