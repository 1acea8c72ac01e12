import DrydockClient
import Foundation

/// What `drydock-agent` reads from its environment.
public struct AgentConfiguration: Sendable {
    public enum Launcher: String, Sendable, CaseIterable {
        /// Builders are child processes of the agent (the default).
        case process
        /// An operator's executable starts and stops builders (VMs, cloud instances, Kubernetes Jobs).
        case command
        /// Builders run in podman containers.
        case podman
    }

    public var apiURL: URL
    public var agentToken: String
    public var launcher: Launcher
    /// For `command`: the executable (and arguments) that starts, stops and checks builders.
    public var command: [String] = []
    /// Cache volumes (`volumes/<project>/<platform>`), clones, builder logs.
    public var dataDirectory: URL
    public var platforms: [Platform]
    /// Platforms its builders may run emulated (qemu-user-static and binfmt_misc on this machine).
    public var emulated: [Platform] = []
    public var maxBuilders: Int
    public var name: String
    public var cpusPerBuilder: Int?
    public var memoryMegabytesPerBuilder: Int?
    /// The drydock-builder executable the `process` launcher runs.
    public var builderExecutable: String
    /// For `podman`: the image with drydock-builder and buildah in it, and extra `podman run` arguments.
    public var podmanImage: String?
    public var podmanArguments: [String] = []
    /// Passed on to every builder (isolation, cache overrides, log level).
    public var builderEnvironment: [String: String] = [:]

    public init(apiURL: URL, agentToken: String, launcher: Launcher, dataDirectory: URL, platforms: [Platform], maxBuilders: Int, name: String,
                builderExecutable: String) {
        self.apiURL = apiURL
        self.agentToken = agentToken
        self.launcher = launcher
        self.dataDirectory = dataDirectory
        self.platforms = platforms
        self.maxBuilders = maxBuilders
        self.name = name
        self.builderExecutable = builderExecutable
    }

    /// Variables a builder inherits from the agent's environment when set.
    static let passedToBuilders = [
        "DRYDOCK_BUILDER_ISOLATION", "DRYDOCK_CACHE_KEEP_BYTES", "LOG_LEVEL", "PATH", "HOME", "TMPDIR",
    ]

    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> AgentConfiguration {
        guard let raw = env["DRYDOCK_API_URL"], !raw.isEmpty else {
            throw AgentError.configuration("set DRYDOCK_API_URL to the Drydock server (e.g. http://127.0.0.1:8080)")
        }
        guard let url = URL(string: raw), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw AgentError.configuration("DRYDOCK_API_URL must be an http(s) URL, not '\(raw)'")
        }
        guard let token = env["DRYDOCK_AGENT_TOKEN"], token.hasPrefix("dda_") else {
            throw AgentError.configuration(
                "set DRYDOCK_AGENT_TOKEN to an agent token (dda_…): 'drydock tokens create --kind agent --name NAME' for one organization, or 'drydock-server agent-token --name NAME' for all")
        }
        let launcherName = env["DRYDOCK_AGENT_LAUNCHER"].flatMap { $0.isEmpty ? nil : $0 } ?? "process"
        guard let launcher = Launcher(rawValue: launcherName) else {
            throw AgentError.configuration("DRYDOCK_AGENT_LAUNCHER must be process, command or podman, not '\(launcherName)'")
        }
        var platforms: [Platform] = []
        let rawPlatforms = env["DRYDOCK_AGENT_PLATFORMS"].flatMap { $0.isEmpty ? nil : $0 } ?? Platform.hostNative.map(\.description).joined(separator: ",")
        for raw in rawPlatforms.split(separator: ",") {
            guard let platform = Platform(raw), platform.isSupported else {
                throw AgentError.configuration(
                    "DRYDOCK_AGENT_PLATFORMS: '\(raw.trimmingCharacters(in: .whitespaces))' is not a supported platform; use \(Platform.supportedList)")
            }
            if !platforms.contains(platform) { platforms.append(platform) }
        }
        var emulated: [Platform] = []
        for raw in (env["DRYDOCK_AGENT_EMULATE"] ?? "").split(separator: ",") {
            guard let platform = Platform(raw), platform.isSupported else {
                throw AgentError.configuration(
                    "DRYDOCK_AGENT_EMULATE: '\(raw.trimmingCharacters(in: .whitespaces))' is not a supported platform; use \(Platform.supportedList)")
            }
            if !platforms.contains(platform), !emulated.contains(platform) { emulated.append(platform) }
        }
        let maxBuilders = Int(env["DRYDOCK_AGENT_MAX_BUILDERS"] ?? "") ?? 4
        guard (1...1000).contains(maxBuilders) else { throw AgentError.configuration("DRYDOCK_AGENT_MAX_BUILDERS must be 1 to 1000") }
        let data = env["DRYDOCK_AGENT_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (geteuid() == 0 ? "/var/lib/drydock-agent" : NSHomeDirectory() + "/.cache/drydock-agent")
        var hostname = [CChar](repeating: 0, count: 256)
        gethostname(&hostname, 255)
        let name = env["DRYDOCK_AGENT_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? String(decoding: hostname.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let builder = env["DRYDOCK_AGENT_BUILDER"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.siblingBuilder()
        var configuration = AgentConfiguration(apiURL: url, agentToken: token, launcher: launcher,
                                               dataDirectory: URL(fileURLWithPath: data, isDirectory: true), platforms: platforms,
                                               maxBuilders: maxBuilders, name: name, builderExecutable: builder)
        configuration.emulated = emulated
        if let raw = env["DRYDOCK_AGENT_CPUS"], !raw.isEmpty {
            guard let cpus = Int(raw), (1...1024).contains(cpus) else { throw AgentError.configuration("DRYDOCK_AGENT_CPUS must be 1 to 1024") }
            configuration.cpusPerBuilder = cpus
        }
        if let raw = env["DRYDOCK_AGENT_MEMORY_MB"], !raw.isEmpty {
            guard let memory = Int(raw), memory >= 64 else { throw AgentError.configuration("DRYDOCK_AGENT_MEMORY_MB must be at least 64") }
            configuration.memoryMegabytesPerBuilder = memory
        }
        switch launcher {
        case .command:
            let command = (env["DRYDOCK_AGENT_COMMAND"] ?? "").split(separator: " ").map(String.init)
            guard !command.isEmpty else {
                throw AgentError.configuration(
                    "DRYDOCK_AGENT_LAUNCHER=command needs DRYDOCK_AGENT_COMMAND: an executable called with 'start', 'stop' or 'status' and the builder as JSON on stdin (see examples/agent/)")
            }
            configuration.command = command
        case .podman:
            guard let image = env["DRYDOCK_AGENT_PODMAN_IMAGE"], !image.isEmpty else {
                throw AgentError.configuration("DRYDOCK_AGENT_LAUNCHER=podman needs DRYDOCK_AGENT_PODMAN_IMAGE: an image with drydock-builder and buildah")
            }
            configuration.podmanImage = image
            configuration.podmanArguments = (env["DRYDOCK_AGENT_PODMAN_ARGS"] ?? "").split(separator: " ").map(String.init)
        case .process:
            guard FileManager.default.isExecutableFile(atPath: builder) else {
                throw AgentError.configuration("no drydock-builder at \(builder); set DRYDOCK_AGENT_BUILDER to its path")
            }
        }
        for key in passedToBuilders { if let value = env[key] { configuration.builderEnvironment[key] = value } }
        return configuration
    }

    /// drydock-builder beside this executable (they are built and installed together).
    static func siblingBuilder() -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? ""
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("drydock-builder").path
    }
}

public enum AgentError: Error, CustomStringConvertible {
    case configuration(String)
    case launch(String)

    public var description: String {
        switch self {
        case .configuration(let s), .launch(let s): s
        }
    }
}
