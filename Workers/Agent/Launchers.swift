import DrydockProcess
import Foundation
import Logging
import Synchronization

/// A builder to start, as every launcher (and the `command` launcher's executable, as JSON on
/// stdin) sees it.
public struct BuilderSpec: Codable, Sendable, Equatable {
    public var action: String = "start"
    public var builderId: String
    public var name: String
    public var organizationId: String
    public var projectId: String
    public var platform: String
    public var apiUrl: String
    /// The one-time secret the builder trades for its worker token (DRYDOCK_BUILDER_REGISTRATION).
    public var registrationSecret: String
    /// The server's name for the cache volume: `<project-id>/<os-arch[-variant]>`.
    public var cacheVolume: String
    /// Where the cache is on the agent's machine (the volume, or the builder's clone of it).
    public var cacheDirectory: String
    /// Whether the builder works on a clone (`cacheDirectory`) of the volume (`volumeDirectory`).
    public var clone: Bool
    public var volumeDirectory: String
    /// Whether it runs its platform emulated (qemu).
    public var emulated: Bool = false
    public var idleSeconds: Int
    public var buildsPerBuilder: Int
    public var cpus: Int?
    public var memoryMegabytes: Int?

    /// The builder's environment (what drydock-builder reads).
    public func environment(extra: [String: String]) -> [String: String] {
        var env = extra
        env["DRYDOCK_API_URL"] = apiUrl
        env["DRYDOCK_BUILDER_REGISTRATION"] = registrationSecret
        env["DRYDOCK_CACHE_DIR"] = cacheDirectory
        env["DRYDOCK_BUILDER_NAME"] = name
        env["DRYDOCK_BUILDER_PLATFORMS"] = emulated ? "none" : platform
        if emulated { env["DRYDOCK_BUILDER_EMULATE"] = platform }
        env["DRYDOCK_BUILDER_IDLE_SECONDS"] = "\(idleSeconds)"
        env["DRYDOCK_BUILDER_CONCURRENCY"] = "\(buildsPerBuilder)"
        return env
    }
}

/// Starts, stops and checks builders.
protocol Launcher: Sendable {
    /// Starts the builder; returns the launcher's id for it.
    func start(_ spec: BuilderSpec) async throws -> String
    /// Asks it to stop (it finishes its jobs first).
    func stop(_ spec: BuilderSpec, id: String) async
    /// Whether it still runs.
    func isRunning(_ spec: BuilderSpec, id: String) async -> Bool
    /// Stops everything at once (the agent is shutting down hard).
    func stopAll() async
}

/// Builders as child processes of the agent. A builder watches its parent and stops (killing its
/// builds) when the agent dies, so nothing is left running.
final class ProcessLauncher: Launcher {
    let executable: String
    let extraEnvironment: [String: String]
    let logs: URL
    let pids: URL
    let logger: Logger
    private let children = Mutex<[String: RunningProcess]>([:])

    init(executable: String, extraEnvironment: [String: String], dataDirectory: URL, logger: Logger) {
        self.executable = executable
        self.extraEnvironment = extraEnvironment
        self.logs = dataDirectory.appendingPathComponent("logs")
        self.pids = dataDirectory.appendingPathComponent("pids")
        self.logger = logger
    }

    func start(_ spec: BuilderSpec) async throws -> String {
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: pids, withIntermediateDirectories: true)
        var env = spec.environment(extra: extraEnvironment)
        env["DRYDOCK_BUILDER_PARENT_PID"] = "\(getpid())"
        let child = try await RunningProcess([executable], environment: env,
                                             log: logs.appendingPathComponent("builder-\(spec.builderId).log").path)
        try? "\(child.pid)".write(to: pids.appendingPathComponent(spec.builderId), atomically: true, encoding: .utf8)
        children.withLock { $0[spec.builderId] = child }
        return "\(child.pid)"
    }

    func stop(_ spec: BuilderSpec, id: String) async {
        children.withLock { $0[spec.builderId] }?.signal(SIGTERM)
    }

    func isRunning(_ spec: BuilderSpec, id: String) async -> Bool {
        guard let child = children.withLock({ $0[spec.builderId] }) else { return false }
        if child.isRunning { return true }
        children.withLock { _ = $0.removeValue(forKey: spec.builderId) }
        try? FileManager.default.removeItem(at: pids.appendingPathComponent(spec.builderId))
        return false
    }

    func stopAll() async {
        for child in children.withLock({ Array($0.values) }) { await child.stop(grace: .seconds(5)) }
    }

    /// Builders a killed agent left behind (they stop by themselves when they notice; this makes sure).
    func killLeftovers() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: pids.path) else { return }
        for entry in entries {
            let file = pids.appendingPathComponent(entry)
            if let text = try? String(contentsOf: file, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
               let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
               String(decoding: cmdline, as: UTF8.self).contains("drydock-builder") {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                logger.notice("stopped a builder a previous run of this agent left", metadata: ["pid": "\(pid)"])
            }
            try? FileManager.default.removeItem(at: file)
        }
    }
}

/// An operator's executable starts builders wherever they run (VMs, cloud instances, Kubernetes
/// Jobs): called as `COMMAND start|stop|status` with the builder as JSON on stdin. `start` prints
/// the builder's id (its last line of output); `status` prints `running` or `exited`.
final class CommandLauncher: Launcher {
    let command: [String]
    let logger: Logger

    init(command: [String], logger: Logger) {
        self.command = command
        self.logger = logger
    }

    func run(_ action: String, _ spec: BuilderSpec, id: String?) async throws -> ProcessOutcome {
        var spec = spec
        spec.action = action
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(spec)) as? [String: Any] ?? [:]
        if let id { object["id"] = id }
        let input = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        // The operator's executable gets the agent's environment without the agent's own token.
        var environment = ProcessInfo.processInfo.environment
        environment["DRYDOCK_AGENT_TOKEN"] = nil
        return try await ChildProcess.run(command + [action], environment: environment, input: input + "\n")
    }

    func start(_ spec: BuilderSpec) async throws -> String {
        let result = try await run("start", spec, id: nil)
        guard result.status == 0 else {
            throw AgentError.launch("\(command.joined(separator: " ")) start exited with \(result.status): \(result.errorOutput.suffix(500))")
        }
        guard let id = result.output.split(separator: "\n").last.map({ $0.trimmingCharacters(in: .whitespaces) }), !id.isEmpty else {
            throw AgentError.launch("\(command.joined(separator: " ")) start printed no builder id")
        }
        return id
    }

    func stop(_ spec: BuilderSpec, id: String) async {
        if let result = try? await run("stop", spec, id: id), result.status != 0 {
            logger.warning("the launcher command did not stop a builder", metadata: ["builder": "\(spec.builderId)", "error": "\(result.errorOutput.suffix(300))"])
        }
    }

    func isRunning(_ spec: BuilderSpec, id: String) async -> Bool {
        guard let result = try? await run("status", spec, id: id) else { return true }
        // A command that cannot tell is believed running; the server stops builders that stop claiming.
        guard result.status == 0 else { return true }
        return result.output.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } != "exited"
    }

    func stopAll() async {}
}

/// Builders in podman containers: `podman run -d` with the cache volume mounted.
final class PodmanLauncher: Launcher {
    let image: String
    let extraEnvironment: [String: String]
    /// Operator's extra `podman run` arguments (DRYDOCK_AGENT_PODMAN_ARGS), e.g. `--ulimit nofile=4096:4096`.
    let extraArguments: [String]
    let agentName: String
    let logger: Logger

    init(image: String, extraEnvironment: [String: String], extraArguments: [String] = [], agentName: String = "agent", logger: Logger) {
        self.image = image
        self.extraEnvironment = extraEnvironment
        self.extraArguments = extraArguments
        self.agentName = agentName
        self.logger = logger
    }

    /// The `podman run` arguments for a builder.
    static func runArguments(_ spec: BuilderSpec, image: String, extra: [String: String], arguments: [String] = [], agent: String = "agent") -> [String] {
        var env = spec.environment(extra: extra.filter { ["DRYDOCK_BUILDER_ISOLATION", "DRYDOCK_CACHE_KEEP_BYTES", "LOG_LEVEL"].contains($0.key) })
        env["DRYDOCK_CACHE_DIR"] = "/var/lib/drydock-builder"
        var args = ["podman", "run", "-d", "--rm", "--name", "drydock-builder-\(spec.builderId)", "--privileged", "--network", "host",
                    "--label", "drydock.builder=\(spec.builderId)", "--label", "drydock.agent=\(agent)",
                    "-v", "\(spec.cacheDirectory):/var/lib/drydock-builder"]
        if let cpus = spec.cpus { args += ["--cpus", "\(cpus)"] }
        if let memory = spec.memoryMegabytes { args += ["--memory", "\(memory)m"] }
        for (key, value) in env.sorted(by: { $0.key < $1.key }) { args += ["-e", "\(key)=\(value)"] }
        return args + arguments + [image]
    }

    func start(_ spec: BuilderSpec) async throws -> String {
        let result = try await ChildProcess.run(Self.runArguments(spec, image: image, extra: extraEnvironment, arguments: extraArguments, agent: agentName))
        guard result.status == 0, let id = result.output.split(separator: "\n").last, !id.isEmpty else {
            throw AgentError.launch("podman run failed (\(result.status)): \(result.errorOutput.suffix(500))")
        }
        return String(id)
    }

    func stop(_ spec: BuilderSpec, id: String) async {
        _ = try? await ChildProcess.run(["podman", "stop", "--time", "600", id])
    }

    /// Builders a previous run of this agent left running (it was killed): removed at start.
    func removeLeftovers() async {
        guard let listed = try? await ChildProcess.run(["podman", "ps", "-aq", "--filter", "label=drydock.agent=\(agentName)"]) else { return }
        let ids = listed.output.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        guard !ids.isEmpty else { return }
        _ = try? await ChildProcess.run(["podman", "rm", "-f"] + ids)
        logger.notice("removed builder containers a previous run of this agent left", metadata: ["containers": "\(ids.count)"])
    }

    func isRunning(_ spec: BuilderSpec, id: String) async -> Bool {
        guard let result = try? await ChildProcess.run(["podman", "inspect", "--format", "{{.State.Running}}", id]) else { return true }
        return result.status == 0 && result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    func stopAll() async {
        guard let listed = try? await ChildProcess.run(["podman", "ps", "-q", "--filter", "label=drydock.agent=\(agentName)"]) else { return }
        let ids = listed.output.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        if !ids.isEmpty { _ = try? await ChildProcess.run(["podman", "stop", "--time", "5"] + ids) }
    }
}
