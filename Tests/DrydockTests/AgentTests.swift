import DrydockClient
import DrydockProcess
import DrydockServer
import Foundation
import Testing

/// A `drydock-agent` process, as an operator would start it.
final class AgentProcess: Sendable {
    let process: RunningProcess
    let log: URL
    let dataDirectory: URL

    init(server: TestServer, token: String, data: URL, name: String = "agent", maxBuilders: Int = 4,
         environment extra: [String: String] = [:]) async throws {
        let binary = packageRoot.appendingPathComponent(".build/debug/drydock-agent")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw CLITestError("\(binary.path) is missing: build with 'swift build --build-tests' first")
        }
        dataDirectory = data
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        log = data.deletingLastPathComponent().appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process = try await RunningProcess([binary.path], environment: [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "DRYDOCK_API_URL": server.baseURL, "DRYDOCK_AGENT_TOKEN": token, "DRYDOCK_AGENT_DATA_DIR": data.path,
            "DRYDOCK_AGENT_NAME": name, "DRYDOCK_AGENT_MAX_BUILDERS": "\(maxBuilders)", "DRYDOCK_AGENT_PLATFORMS": "linux/amd64",
        ].merging(extra) { $1 }, log: log.path)
    }

    deinit {
        if process.isRunning { process.signal(SIGKILL) }
    }

    func stop() async {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        if await process.wait(timeout: .seconds(30)) == nil { process.signal(SIGKILL) }
    }

    var output: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// The builders' own logs.
    var builderLogs: String {
        let logs = dataDirectory.appendingPathComponent("logs")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []
        return files.sorted().map { "== \($0)\n" + ((try? String(contentsOf: logs.appendingPathComponent($0), encoding: .utf8)) ?? "") }
            .joined(separator: "\n")
    }

    func volume(_ projectId: String) -> URL {
        dataDirectory.appendingPathComponent("volumes").appendingPathComponent(projectId).appendingPathComponent(Platform.host.pathComponent)
    }
}

/// An agent token for the test organization.
func agentToken(_ server: TestServer, token: String? = nil) async throws -> String {
    try await server.createToken(#"{"name":"agent","kind":"agent"}"#, token: token).1
}

/// Process ids of running drydock-builder processes whose cache is under `directory`.
func builderProcesses(under directory: URL) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        return String(decoding: cmdline, as: UTF8.self).contains("drydock-builder")
            && String(decoding: environ, as: UTF8.self).contains("DRYDOCK_CACHE_DIR=\(directory.path)")
    }
}

/// runc containers (buildah's OCI isolation) whose bundle is under `directory`, with their status.
func runcContainers(under directory: URL) async -> [String] {
    guard let listed = try? await runTool("runc", ["list", "--format", "json"]), listed.status == 0,
          let entries = try? JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
    else { return [] }
    return entries.filter { ($0["bundle"] as? String)?.hasPrefix(directory.path + "/") == true }
        .map { "\($0["id"] as? String ?? "?") \($0["status"] as? String ?? "?")" }
}

/// Images in a cache volume's buildah storage.
func volumeImages(_ volume: URL) async throws -> [String] {
    let listed = try await runTool("buildah", ["--root", volume.appendingPathComponent("storage").path, "--runroot",
                                               volume.appendingPathComponent("run").path, "--storage-driver", "overlay",
                                               "images", "--all", "--no-trunc", "--format", "{{.ID}}"])
    return listed.stdout.split(separator: "\n").map(String.init)
}

/// Waits until `condition` holds, checking every 200 ms; false if the time ran out.
func eventually(_ timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(200))
    }
    return try await condition()
}

@Suite("drydock-agent: builders on demand")
struct AgentTests {
    @Test("three projects with two builds each: one builder per project starts, every build succeeds, each builder stops after its idle time")
    func oneBuilderPerProject() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                // Driven through the CLI, as an operator would.
                let cli = ["--api-url", server.baseURL, "--token", server.ownerToken]
                let home = ["HOME": dir.path]
                var fixtures: [BuildFixture] = []
                for name in ["alpha", "beta", "gamma"] {
                    let fixture = try await BuildFixture.make(server, project: name)
                    let updated = try await runExecutable("drydock", ["projects", "update", name, "--builder-idle", "5s", "--max-builders", "1"] + cli,
                                                          environment: home)
                    #expect(updated.status == 0 && updated.stdout.contains("exit after 5s idle"), "\(updated.stdout) \(updated.stderr)")
                    fixtures.append(fixture)
                }
                let minted = try await runExecutable("drydock", ["tokens", "create", "--kind", "agent", "--name", "rack-1"] + cli, environment: home)
                let agentSecret = String(minted.stdout.split(separator: "\n").last ?? "")
                #expect(minted.status == 0 && agentSecret.hasPrefix("dda_"), "\(minted.stdout) \(minted.stderr)")
                var builds: [(BuildFixture, String)] = []
                for fixture in fixtures {
                    for n in 1...2 {
                        let build = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo \(fixture.projectId) \(n)\n"])
                        builds.append((fixture, build.id))
                    }
                }
                let agent = try await AgentProcess(server: server, token: agentSecret, data: dir.appendingPathComponent("agent"))
                for (fixture, id) in builds {
                    let build = try await fixture.finished(id)
                    #expect(build.status == .succeeded, "\(build.error ?? "") \(agent.output) \(agent.builderLogs)")
                }
                let client = fixtures[0].client
                let started = try await client.builders().filter { $0.id != nil }
                #expect(started.count == 3, "one builder per project: \(started.map { "\($0.projectId ?? "?") \($0.state?.rawValue ?? "?")" })")
                #expect(Set(started.compactMap(\.projectId)) == Set(fixtures.map(\.projectId)))
                #expect(started.allSatisfy { $0.platform == Platform.host.description && $0.clone == false })
                #expect(started.map { $0.jobsServed ?? 0 }.reduce(0, +) == 6)
                let agents = try await client.agents()
                #expect(agents.count == 1 && agents.first?.online == true && agents.first?.launcher == "process", "\(agents)")
                // Another agent of the same name (a machine's agent restarted with a new token) is
                // listed with its own builders, none: not with those of the agent named alike.
                let twin = try await runExecutable("drydock", ["tokens", "create", "--kind", "agent", "--name", "rack-2"] + cli, environment: home)
                let twinSecret = String(twin.stdout.split(separator: "\n").last ?? "")
                let polled = try await server.request(.post, "/api/v1/agents/poll", token: twinSecret, json: """
                    {"name": "agent", "launcher": "process", "platforms": ["linux/amd64"], "maxBuilders": 1, "builders": [], "waitSeconds": 0}
                    """)
                #expect(polled.status == .ok, "\(polled.text)")
                let both = try await client.agents()
                #expect(both.count == 2 && both.allSatisfy { $0.name == "agent" }, "\(both)")
                #expect(both.map { $0.builders.count }.sorted() == [0, 3], "\(both.map { ($0.id, $0.builders.map(\.id)) })")
                // The CLI's JSON: each builder names its project and platform.
                for command in [["agents", "list"], ["builders", "list"]] {
                    let listed = try await runExecutable("drydock", command + ["--format", "json"] + cli, environment: home)
                    #expect(listed.status == 0, "\(listed.stderr)")
                    let page = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any]
                    var entries = (page?["items"] as? [[String: Any]]) ?? []
                    if command[0] == "agents" { entries = entries.flatMap { ($0["builders"] as? [[String: Any]]) ?? [] } }
                    let projects = Set(entries.compactMap { $0["projectId"] as? String })
                    #expect(projects == Set(fixtures.map(\.projectId)), "\(command): \(listed.stdout)")
                    #expect(entries.allSatisfy { $0["platform"] as? String == Platform.host.description }, "\(listed.stdout)")
                }
                let shown = try await runExecutable("drydock", ["cache", "show", "--project", "alpha"] + cli, environment: home)
                #expect(shown.status == 0 && shown.stdout.contains(Platform.host.description), "\(shown.stdout) \(shown.stderr)")
                // What an operator's Prometheus sees (the registry is shared by the tests in this process: at least ours).
                let metrics = try await server.request(.get, "/metrics").text
                func value(_ prefix: String) -> Double? {
                    metrics.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
                }
                #expect((value("drydock_builder_starts_total") ?? 0) >= 3, "\(metrics)")
                #expect((value("drydock_job_queue_to_start_seconds_count") ?? 0) >= 6)
                #expect(value("drydock_jobs_waiting{platform=\"\(Platform.host.description)\"}") != nil)
                #expect(value("drydock_builders{state=\"idle\"}") != nil && value("drydock_builders{state=\"busy\"}") != nil)
                // Idle for 5 s: each builder exits, and the agent reports it.
                let stopped = try await eventually(.seconds(60)) {
                    try await client.builders().filter { $0.id != nil }.allSatisfy { $0.state == .stopped }
                }
                let left = try await client.builders().map { "\($0.name) \($0.state?.rawValue ?? "?")" }
                #expect(stopped, "builders still running: \(left) \(agent.output)")
                #expect(builderProcesses(under: agent.dataDirectory.appendingPathComponent("volumes")).isEmpty)
                #expect(agent.builderLogs.contains("no job for 5 s: exiting"))
                await agent.stop()
                #expect(agent.process.exitStatus == 0, "\(agent.output)")

                // SIGTERM mid-build: the builder is shown stopping, finishes the build, and the agent exits 0.
                let closing = try await AgentProcess(server: server, token: agentSecret, data: dir.appendingPathComponent("agent"))
                let late = try await fixtures[0].queue(["Dockerfile": "FROM \(fixtures[0].base)\nRUN echo late && sleep 4\n"])
                _ = try await fixtures[0].wait(late.id) { $0.steps.contains { $0.instruction.contains("late") && $0.status == .running } }
                closing.process.signal(SIGTERM)
                let shownStopping = try await eventually(.seconds(10)) {
                    try await client.builders().contains { $0.projectId == fixtures[0].projectId && $0.state == .stopping }
                }
                #expect(shownStopping, "\(closing.output)")
                #expect(try await fixtures[0].finished(late.id).status == .succeeded, "\(closing.builderLogs)")
                _ = await closing.process.wait(timeout: .seconds(30))
                #expect(closing.process.exitStatus == 0, "\(closing.output)")
                let after = try await client.builders().filter { $0.projectId == fixtures[0].projectId && $0.state != .stopped }
                #expect(after.isEmpty, "\(after.map { "\($0.name) \($0.state?.rawValue ?? "?")" })")
            }
        }
    }

    @Test("autoscaling: four builds at once in a project allowed two builders; the second works on a clone that sees the main cache's layers and leaves the main cache unchanged")
    func autoscaling() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "scaled")
                _ = try await fixture.client.updateProject(fixture.projectId, builds: .init(maxBuilders: 2, builderIdleSeconds: 5))
                let agent = try await AgentProcess(server: server, token: try await agentToken(server), data: dir.appendingPathComponent("agent"))
                let shared = "RUN echo shared layer > /shared\n"
                let warm = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\n\(shared)"]).id)
                #expect(warm.status == .succeeded, "\(warm.error ?? "") \(agent.builderLogs)")
                let mainVolume = agent.volume(fixture.projectId)
                let before = Set(try await volumeImages(mainVolume))
                #expect(!before.isEmpty)

                var ids: [String] = []
                for n in 1...4 {
                    ids.append(try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\n\(shared)RUN sleep 3 && echo \(n) > /n\n"]).id)
                }
                var byBuilder: [String: Int] = [:]
                for id in ids {
                    let build = try await fixture.finished(id)
                    #expect(build.status == .succeeded, "\(build.error ?? "") \(agent.builderLogs)")
                    let shared = build.steps.first { $0.instruction.contains("shared layer") }
                    #expect(shared?.cached == true, "the main cache's layer was not used: \(build.steps)")
                    let log = try await fixture.logText(id)
                    let worker = log.split(separator: "\n").first { $0.contains("picked up by worker") }.map { String($0.split(separator: " ").last ?? "") } ?? "?"
                    byBuilder[worker, default: 0] += 1
                }
                let builders = try await fixture.client.builders().filter { $0.projectId == fixture.projectId }
                #expect(builders.count == 2, "\(builders.map(\.name))")
                #expect(builders.filter { $0.clone == true }.count == 1)
                #expect(byBuilder.count == 2, "both builders took builds: \(byBuilder)")
                // Each build adds one image (its last step) to the cache it ran on: the main cache
                // holds its own builds' images and none of the clone's.
                let main = try #require(builders.first { $0.clone == false })
                let after = Set(try await volumeImages(mainVolume))
                #expect(after.isSuperset(of: before))
                #expect(after.count - before.count == byBuilder[main.name] ?? -1, "main builder's builds: \(byBuilder), images \(before.count) → \(after.count)")
                // The clone is thrown away when its builder stops.
                let cloneGone = await eventually(.seconds(60)) {
                    ((try? FileManager.default.contentsOfDirectory(atPath: agent.dataDirectory.appendingPathComponent("clones").path)) ?? []).isEmpty
                        && builderProcesses(under: agent.dataDirectory).isEmpty
                }
                #expect(cloneGone, "\(agent.output)")
                await agent.stop()
            }
        }
    }

    @Test("kill -9 of the agent mid-build: its builder stops the build, the job is queued again within its lease, nothing is left running, a new agent runs it")
    func agentKilled() async throws {
        try await withTestServer(configure: { $0.jobLease = .seconds(4); $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "orphaned")
                let token = try await agentToken(server)
                let data = dir.appendingPathComponent("agent")
                let doomed = try await AgentProcess(server: server, token: token, data: data, name: "doomed")
                let build = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo start-143 && sleep 6 && echo done-143\n"])
                _ = try await fixture.wait(build.id) { $0.steps.contains { $0.instruction.contains("start-143") && $0.status == .running } }
                let killedAt = ContinuousClock.now
                doomed.process.signal(SIGKILL)
                let clean = await eventually(.seconds(10)) {
                    guard builderProcesses(under: data).isEmpty else { return false }
                    let running = try? await runTool("pgrep", ["-f", "start-143"])
                    return running?.stdout.isEmpty ?? false
                }
                #expect(clean, "left running: builders \(builderProcesses(under: data)) \(doomed.builderLogs)")
                // Nor the RUN step's container (OCI isolation: runc keeps it outside the build's process group).
                let containers = await runcContainers(under: data)
                #expect(containers.isEmpty, "runc containers left: \(containers)")
                // Queued again once its lease (4 s) ran out; nothing failed.
                let requeued = try await eventually(.seconds(20)) {
                    try await fixture.logText(build.id).contains("queued again (attempt 2 of 2)")
                }
                let afterKill = try await fixture.logText(build.id)
                #expect(requeued, "\(afterKill)")
                #expect(ContinuousClock.now - killedAt < .seconds(15))
                #expect(try await fixture.client.build(build.id).status != .failed)

                let next = try await AgentProcess(server: server, token: token, data: data, name: "doomed")
                let done = try await fixture.finished(build.id, timeout: .seconds(60))
                #expect(done.status == .succeeded, "\(done.error ?? "") \(next.output) \(next.builderLogs)")
                let log = try await fixture.logText(build.id)
                #expect(log.contains("the drydock-agent that started builder"), "\(log)")
                // Picked up again (a long-poll the dead builder left open may take it first; unconfirmed,
                // it comes back within 5 s).
                #expect(log.components(separatedBy: "picked up by worker").count - 1 >= 2, "\(log)")
                // The dead agent's builder is stopped in the server's books; one builder runs for the project.
                let builders = try await fixture.client.builders().filter { $0.projectId == fixture.projectId }
                #expect(builders.filter { $0.state != .stopped }.count == 1, "\(builders.map { "\($0.name) \($0.state?.rawValue ?? "?")" })")
                await next.stop()
            }
        }
    }

    @Test("the cache policy: over its size the least recently used images go first and the newest stay; keep-days removes older ones; cache reset empties it")
    func cachePolicy() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "tidy")
                // 4 MB a build; the base is about 2 MB: two builds fit in 12 MB, three do not.
                let agent = try await AgentProcess(server: server, token: try await agentToken(server), data: dir.appendingPathComponent("agent"),
                                                   environment: ["DRYDOCK_CACHE_KEEP_BYTES": "\(12_000_000)"])
                func dockerfile(_ name: String) -> String {
                    "FROM \(fixture.base)\nRUN dd if=/dev/urandom of=/\(name) bs=1024 count=4096 2>/dev/null\n"
                }
                func build(_ name: String) async throws -> Components.Schemas.Build {
                    let build = try await fixture.finished(try await fixture.queue(["Dockerfile": dockerfile(name)]).id)
                    #expect(build.status == .succeeded, "\(build.error ?? "") \(agent.builderLogs)")
                    return build
                }
                func cached(_ build: Components.Schemas.Build) -> Bool { build.steps.first { $0.instruction.contains("dd ") }?.cached == true }
                _ = try await build("a")
                _ = try await build("b")
                let third = try await build("c")
                #expect(try await fixture.logText(third.id).contains("cache policy: removed"), "\(agent.builderLogs)")
                let cache = try #require(try await fixture.client.projectCache(fixture.projectId).first)
                #expect(cache.bytes <= 12_000_000 && cache.bytes > 4_000_000, "\(cache)")
                // The newest stay (b's step is still cached), the oldest went (a's is not).
                #expect(cached(try await build("b")), "the newer image was removed: \(agent.builderLogs)")
                #expect(!cached(try await build("a")), "the oldest image stayed")

                // keep-days: everything last used 30 days ago; a build of c (1 day kept) removes the rest.
                _ = try await fixture.client.updateProject(fixture.projectId, keepDays: 1)
                let usageFile = agent.volume(fixture.projectId).appendingPathComponent("cache-usage.json")
                var usage = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: usageFile))
                let old = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-30 * 86_400))
                for key in usage.keys { usage[key] = old }
                try JSONEncoder().encode(usage).write(to: usageFile)
                _ = try await build("c")
                #expect(!cached(try await build("b")), "an image unused for longer than keep-days stayed")

                // Reset: the next build is uncached and the old storage is gone.
                let reset = try await fixture.client.resetProjectCache(fixture.projectId, platform: Platform.host.description)
                #expect(reset.first?.bytes == 0 && reset.first?.generation == 1, "\(reset)")
                let imagesBefore = try await volumeImages(agent.volume(fixture.projectId)).count
                let afterReset = try await build("b")
                #expect(!cached(afterReset))
                #expect(try await fixture.logText(afterReset.id).contains("was reset: this build starts on an empty cache"))
                // Only the base and the one new step remain.
                let imagesAfter = try await volumeImages(agent.volume(fixture.projectId)).count
                #expect(imagesAfter == 2, "images before the reset \(imagesBefore), after the first build \(imagesAfter)")
                let shown = try await fixture.client.projectCache(fixture.projectId)
                #expect(shown.first?.images == 2, "\(shown)")
                await agent.stop()
            }
        }
    }

    @Test("an agent that may emulate arm64 starts a native and an emulated builder for a two-platform build as the project allows; native-only waits for a native one")
    func emulatedBuilders() async throws {
        try await withTestServer(configure: { $0.emulationFallback = .seconds(0); $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await MultiPlatformTests.fixture(server, project: "both")
                _ = try await fixture.client.updateProject(fixture.projectId, builds: .init(emulation: .allowed, builderIdleSeconds: 5))
                let agent = try await AgentProcess(server: server, token: try await agentToken(server), data: dir.appendingPathComponent("agent"),
                                                   environment: ["DRYDOCK_AGENT_EMULATE": "linux/arm64"])
                let base = "\(fixture.host)/\(fixture.projectId)/busybox:multi"
                let build = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(base)\nRUN uname -m > /arch\n"]) {
                    .init(contextDigest: $0, platforms: ["linux/amd64", "linux/arm64"])
                }.id)
                #expect(build.status == .succeeded, "\(build.error ?? "") \(agent.output) \(agent.builderLogs)")
                #expect(build.jobs.first { $0.platform == "linux/arm64" }?.emulated == true, "\(build.jobs)")
                #expect(build.jobs.first { $0.platform == "linux/amd64" }?.emulated == false)
                let started = try await fixture.client.builders().filter { $0.projectId == fixture.projectId }
                #expect(started.first { $0.platform == "linux/arm64" }?.emulatedPlatforms == ["linux/arm64"], "\(started)")
                #expect(try await fixture.client.agents().first?.emulatedPlatforms == ["linux/arm64"])

                // native-only: no emulated builder is started for it; the job waits and says why.
                _ = try await fixture.client.updateProject(fixture.projectId, builds: .init(emulation: .nativeOnly, queueTimeoutSeconds: 10))
                let before = try await fixture.client.builders().filter { $0.projectId == fixture.projectId }.count
                let strict = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(base)\nRUN true\n"]) {
                    .init(contextDigest: $0, platforms: ["linux/arm64"])
                }.id, timeout: .seconds(60))
                #expect(strict.status == .failed)
                #expect(strict.error?.contains("no online builder serves linux/arm64") == true, "\(strict.error ?? "")")
                #expect(try await fixture.client.builders().filter { $0.projectId == fixture.projectId }.count == before)
                await agent.stop()
            }
        }
    }

    @Test("the command launcher: an operator's script starts, checks and stops builders; the Kubernetes example renders a Job of the documented shape")
    func commandLauncher() async throws {
        try await withTestServer(configure: { $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "commanded")
                _ = try await fixture.client.updateProject(fixture.projectId, builds: .init(builderIdleSeconds: 5))
                let state = dir.appendingPathComponent("launcher")
                let agent = try await AgentProcess(
                    server: server, token: try await agentToken(server), data: dir.appendingPathComponent("agent"),
                    environment: [
                        "DRYDOCK_AGENT_LAUNCHER": "command",
                        "DRYDOCK_AGENT_COMMAND": packageRoot.appendingPathComponent("examples/agent/process-launcher").path,
                        "DRYDOCK_BUILDER": packageRoot.appendingPathComponent(".build/debug/drydock-builder").path,
                        "LAUNCHER_STATE": state.path,
                    ])
                let build = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo commanded\n"]).id)
                let launched = (try? FileManager.default.contentsOfDirectory(atPath: state.path)) ?? []
                #expect(build.status == .succeeded, "\(build.error ?? "") \(agent.output) \(launched)")
                #expect(launched.contains { $0.hasSuffix(".pid") })
                let stopped = try await eventually(.seconds(60)) {
                    try await fixture.client.builders().filter { $0.projectId == fixture.projectId }.allSatisfy { $0.state == .stopped }
                }
                #expect(stopped, "the builder did not exit after its idle time, or the agent did not see it: \(agent.output)")
                await agent.stop()
            }
        }
        // The Kubernetes example: the JSON in, the manifests out.
        let spec = """
            {"action":"start","builderId":"b1x","name":"k8s-b1x","organizationId":"org1","projectId":"proj1","platform":"linux/arm64",
             "apiUrl":"https://drydock.example.com","registrationSecret":"ddg_secret","cacheVolume":"proj1/linux-arm64",
             "cacheDirectory":"/unused","clone":true,"volumeDirectory":"/unused","idleSeconds":120,"buildsPerBuilder":2,"cpus":4,"memoryMegabytes":8192}
            """
        let rendered = try await ChildProcess.run([packageRoot.appendingPathComponent("examples/agent/kubernetes-launcher").path, "start"],
                                                  environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                                                                "DRYDOCK_K8S_DRY_RUN": "1", "DRYDOCK_K8S_IMAGE": "registry.example.com/drydock-builder:1"],
                                                  input: spec)
        #expect(rendered.status == 0, "\(rendered.errorOutput)")
        let lines = rendered.output.split(separator: "\n")
        #expect(lines.last == "job/drydock-builder-b1x")
        let list = try JSONSerialization.jsonObject(with: Data(lines.dropLast().joined(separator: "\n").utf8)) as? [String: Any]
        let items = try #require(list?["items"] as? [[String: Any]])
        #expect(items.map { $0["kind"] as? String } == ["Secret", "PersistentVolumeClaim", "Job"])
        let claim = items[1]
        #expect((claim["metadata"] as? [String: Any])?["name"] as? String == "drydock-clone-b1x")
        #expect(((claim["spec"] as? [String: Any])?["dataSource"] as? [String: String])?["name"] == "drydock-cache-proj1-linux-arm64")
        let job = items[2]
        let podSpec = try #require(((job["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        #expect((podSpec["nodeSelector"] as? [String: String])?["kubernetes.io/arch"] == "arm64")
        let container = try #require((podSpec["containers"] as? [[String: Any]])?.first)
        #expect(container["image"] as? String == "registry.example.com/drydock-builder:1")
        let env = (container["env"] as? [[String: Any]]) ?? []
        let values = Dictionary(uniqueKeysWithValues: env.compactMap { e in (e["name"] as? String).map { ($0, e["value"] as? String ?? "<from secret>") } })
        #expect(values["DRYDOCK_API_URL"] == "https://drydock.example.com")
        #expect(values["DRYDOCK_BUILDER_REGISTRATION"] == "<from secret>", "the secret is not inline in the Job")
        #expect(values["DRYDOCK_BUILDER_PLATFORMS"] == "linux/arm64" && values["DRYDOCK_BUILDER_IDLE_SECONDS"] == "120"
                && values["DRYDOCK_BUILDER_CONCURRENCY"] == "2")
        let limits = (container["resources"] as? [String: Any])?["limits"] as? [String: String]
        #expect(limits == ["cpu": "4", "memory": "8192Mi"])
        #expect(!rendered.output.contains("\"ddg_secret\"") || items[0]["kind"] as? String == "Secret")
    }

    @Test("the podman launcher: builders run in containers of an image assembled from this machine's binaries")
    func podmanLauncher() async throws {
        let podman = try await runTool("sh", ["-c", "command -v podman"])
        try #require(podman.status == 0, "podman is not installed (apt-get install podman)")
        // The image first: assembling it can take longer than the test server keeps an idle connection.
        let image = "localhost/drydock-builder-test:\(getpid())"
        let made = try await runTool(packageRoot.appendingPathComponent("examples/agent/podman-builder-image.sh").path,
                                     [image, packageRoot.appendingPathComponent(".build/debug/drydock-builder").path])
        try #require(made.status == 0, "assembling the builder image: \(made.stderr)")
        defer { Task { _ = try? await runTool("podman", ["rmi", "-f", image]) } }
        try await withTestServer(configure: { $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "contained")
                _ = try await fixture.client.updateProject(fixture.projectId, builds: .init(builderIdleSeconds: 5))
                let agent = try await AgentProcess(
                    server: server, token: try await agentToken(server), data: dir.appendingPathComponent("agent"), name: "pod-\(getpid())",
                    environment: [
                        "DRYDOCK_AGENT_LAUNCHER": "podman", "DRYDOCK_AGENT_PODMAN_IMAGE": image, "DRYDOCK_BUILDER_ISOLATION": "chroot",
                        // This machine's sandbox lets containers lower their limits, not keep the host's.
                        "DRYDOCK_AGENT_PODMAN_ARGS": "--ulimit nofile=4096:4096 --ulimit nproc=4096:4096",
                    ])
                let build = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo contained > /where\n"]).id)
                #expect(build.status == .succeeded, "\(build.error ?? "") \(agent.output)")
                let log = try await fixture.logText(build.id)
                #expect(log.contains("picked up by worker pod-"), "\(log)")
                // Its idle time over, the container exits and the agent reports it.
                let stopped = try await eventually(.seconds(60)) {
                    try await fixture.client.builders().filter { $0.projectId == fixture.projectId }.allSatisfy { $0.state == .stopped }
                }
                #expect(stopped, "\(agent.output)")
                let left = try await runTool("podman", ["ps", "-q", "--filter", "label=drydock.agent=pod-\(getpid())"])
                #expect(left.stdout.isEmpty, "containers left: \(left.stdout)")
                await agent.stop()
            }
        }
    }

    @Test("drydock-server agent-token mints a server-wide agent token: its agent is told to start builders for any organization's queued jobs")
    func serverWideAgentToken() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let minted = try await runExecutable("drydock-server", ["agent-token", "--name", "ops", "--database-url", server.database.redacted,
                                                                        "--data-dir", dir.path], environment: ["HOME": dir.path])
                let secret = String(minted.stdout.split(separator: "\n").last ?? "")
                #expect(minted.status == 0 && secret.hasPrefix("dda_"), "\(minted.stdout) \(minted.stderr)")
                let (otherOrg, otherOwner) = try await server.bootstrap("elsewhere")
                let project = try await server.createProject("far", token: otherOwner)
                let context = try await server.uploadZeroContext(project, token: otherOwner)
                _ = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: otherOwner,
                                             json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64"]}"#)
                let poll = try await server.request(.post, "/api/v1/agents/poll", token: secret,
                                                    json: #"{"name":"ops","launcher":"process","platforms":["linux/amd64"],"maxBuilders":2,"builders":[],"waitSeconds":0}"#)
                #expect(poll.status == .ok, "\(poll.text)")
                let launch = try poll.decoded(Schemas.AgentInstructions.self).start.first
                #expect(launch?.projectId == project && launch?.organizationId == otherOrg, "\(poll.text)")
                // Both organizations' admins see it, marked server-wide.
                for owner in [server.ownerToken, otherOwner] {
                    let agents = try await server.request(.get, "/api/v1/agents", token: owner).decoded(Schemas.AgentList.self).items
                    #expect(agents.first { $0.name == "ops" }?.serverWide == true, "\(agents)")
                }
            }
        }
    }

    @Test("bad input: an agent token reads no projects or builds; a registration secret works once; a builder for one project claims no other's jobs")
    func badInput() async throws {
        try await withTestServer { server in
            let agent = try await agentToken(server)
            for path in ["/api/v1/projects", "/api/v1/orgs/\(server.organizationId)", "/api/v1/tokens"] {
                let response = try await server.request(.get, path, token: agent)
                #expect(response.status == .forbidden, "\(path): \(response.status) \(response.text)")
            }
            // Only admins mint agent tokens; nobody mints registration secrets.
            let refused = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: #"{"name":"x","kind":"registration"}"#)
            #expect(refused.status == .badRequest, "\(refused.text)")

            let p = try await server.createProject("p")
            let q = try await server.createProject("q")
            let context = try await server.uploadZeroContext(p)
            let contextQ = try await server.uploadZeroContext(q)
            let qBuild = try await server.request(.post, "/api/v1/projects/\(q)/builds", token: server.ownerToken,
                                                  json: #"{"contextDigest":"\#(contextQ)","platforms":["linux/amd64"]}"#).decoded(Schemas.Build.self)
            // Only P is within this agent's reach for the moment: Q's build waits in the queue too,
            // so take the launch for P.
            _ = try await server.request(.post, "/api/v1/projects/\(p)/builds", token: server.ownerToken,
                                         json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64"]}"#)
            let poll = try await server.request(.post, "/api/v1/agents/poll", token: agent,
                                                json: #"{"name":"a","launcher":"process","platforms":["linux/amd64"],"maxBuilders":4,"builders":[],"waitSeconds":0}"#)
            #expect(poll.status == .ok, "\(poll.text)")
            let launches = try poll.decoded(Schemas.AgentInstructions.self).start
            #expect(Set(launches.map(\.projectId)) == [p, q])
            let launch = try #require(launches.first { $0.projectId == p })
            // What one agent was told to start is not told to another.
            let second = try await server.request(.post, "/api/v1/agents/poll", token: agent,
                                                  json: #"{"name":"b","launcher":"process","platforms":["linux/amd64"],"maxBuilders":4,"builders":[],"waitSeconds":0}"#)
            #expect(try second.decoded(Schemas.AgentInstructions.self).start.isEmpty, "\(second.text)")

            let registered = try await server.request(.post, "/api/v1/builders/register", token: launch.registrationSecret, json: #"{"name":"b"}"#)
            #expect(registered.status == .ok, "\(registered.text)")
            let again = try await server.request(.post, "/api/v1/builders/register", token: launch.registrationSecret, json: #"{"name":"b"}"#)
            #expect(again.status == .unauthorized, "a registration secret worked twice: \(again.text)")
            let worker = try registered.decoded(Schemas.BuilderRegistered.self)
            #expect(worker.projectId == p)
            // Its worker token serves P's platform only, and none of Q's jobs.
            let wrongPlatform = try await server.request(.post, "/api/v1/workers/claim", token: worker.workerToken,
                                                         json: #"{"name":"b","platforms":["linux/arm64"],"waitSeconds":0}"#)
            #expect(wrongPlatform.status == .badRequest, "\(wrongPlatform.text)")
            let claimed = try await server.request(.post, "/api/v1/workers/claim", token: worker.workerToken,
                                                   json: #"{"name":"b","platforms":["linux/amd64"],"waitSeconds":0}"#)
            #expect(claimed.status == .ok)
            #expect(try claimed.decoded(Schemas.JobAssignment.self).projectId == p)
            let none = try await server.request(.post, "/api/v1/workers/claim", token: worker.workerToken,
                                                json: #"{"name":"b","platforms":["linux/amd64"],"waitSeconds":0}"#)
            #expect(none.status == .noContent, "a builder of P was given another job: \(none.text)")
            let qStill = try await server.request(.get, "/api/v1/builds/\(qBuild.id)", token: server.ownerToken).decoded(Schemas.Build.self)
            #expect(qStill.status == .queued)
            // The agent token cannot claim jobs, nor a worker token poll as an agent.
            let agentClaims = try await server.request(.post, "/api/v1/workers/claim", token: agent,
                                                       json: #"{"name":"a","platforms":["linux/amd64"],"waitSeconds":0}"#)
            #expect(agentClaims.status == .forbidden)
            let workerPolls = try await server.request(.post, "/api/v1/agents/poll", token: worker.workerToken,
                                                       json: #"{"name":"a","launcher":"process","platforms":["linux/amd64"],"maxBuilders":1,"builders":[]}"#)
            #expect(workerPolls.status == .forbidden)
            // Nonsense from an agent is refused with the field named.
            let bad = try await server.request(.post, "/api/v1/agents/poll", token: agent,
                                               json: #"{"name":"a","launcher":"process","platforms":["plan9/mips"],"maxBuilders":1,"builders":[{"id":"../x"}]}"#)
            #expect(bad.status == .badRequest, "\(bad.text)")
            // The agent stops reporting its builders: they are stopped and their worker tokens end.
            _ = try await server.request(.post, "/api/v1/agents/poll", token: agent,
                                         json: #"{"name":"a","launcher":"process","platforms":["linux/amd64"],"maxBuilders":4,"builders":[],"waitSeconds":0,"draining":true}"#)
            let afterStop = try await server.request(.post, "/api/v1/workers/claim", token: worker.workerToken,
                                                     json: #"{"name":"b","platforms":["linux/amd64"],"waitSeconds":0}"#)
            #expect(afterStop.status == .unauthorized, "\(afterStop.text)")
        }
    }
}
