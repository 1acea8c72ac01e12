import DrydockClient
import Foundation

/// What `drydock-builder` reads from its environment (and flags).
public struct BuilderConfiguration: Sendable {
    public var apiURL: URL
    public var workerToken: String
    public var platforms: [Platform]
    /// What it may run under emulation (qemu-user-static and binfmt_misc), checked at start.
    public var emulated: [Platform] = []
    public var cacheDirectory: URL
    public var concurrency: Int
    public var name: String
    /// The buildah executable.
    public var buildah = "buildah"
    /// How RUN steps are isolated from the builder host: `oci` (runc: their own PID and network
    /// namespaces, outbound network through a bridge, none of the host's loopback) or `chroot`.
    public var isolation: Isolation = .chroot
    /// A cache size limit in bytes that overrides every project's keepGigabytes (tests, small disks).
    public var keepBytesOverride: Int64?
    /// Started by an agent: the one-time secret it trades for a worker token of one project and
    /// platform. The cache directory is then that project's cache volume for the platform.
    public var registrationSecret: String?
    /// Exit after this long without a job (builders started by an agent).
    public var idleSeconds: Int?
    /// Stop (killing running builds) when this process is no longer the parent: the agent died.
    public var parentPid: Int32?

    public enum Isolation: String, Sendable {
        case oci, chroot
    }

    /// Whether the cache directory is one project's cache for one platform (an agent's volume).
    public var singleCache: Bool { registrationSecret != nil }

    public init(apiURL: URL, workerToken: String, platforms: [Platform], cacheDirectory: URL, concurrency: Int = 1, name: String) {
        self.apiURL = apiURL
        self.workerToken = workerToken
        self.platforms = platforms
        self.cacheDirectory = cacheDirectory
        self.concurrency = concurrency
        self.name = name
    }

    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> BuilderConfiguration {
        guard let raw = env["DRYDOCK_API_URL"], !raw.isEmpty else {
            throw BuilderError.configuration("set DRYDOCK_API_URL to the Drydock server (e.g. http://127.0.0.1:8080)")
        }
        guard let url = URL(string: raw), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw BuilderError.configuration("DRYDOCK_API_URL must be an http(s) URL, not '\(raw)'")
        }
        let registration = env["DRYDOCK_BUILDER_REGISTRATION"].flatMap { $0.isEmpty ? nil : $0 }
        if let registration, !registration.hasPrefix("ddg_") {
            throw BuilderError.configuration("DRYDOCK_BUILDER_REGISTRATION must be the one-time secret (ddg_…) an agent was given for this builder")
        }
        let token = env["DRYDOCK_WORKER_TOKEN"] ?? ""
        guard registration != nil || token.hasPrefix("ddw_") else {
            throw BuilderError.configuration(
                "set DRYDOCK_WORKER_TOKEN to a worker token (ddw_…): 'drydock tokens create --kind worker --name NAME' for one organization, or 'drydock-server worker-token --name NAME' for all")
        }
        var platforms: [Platform] = []
        let native = env["DRYDOCK_BUILDER_PLATFORMS"].flatMap { $0.isEmpty ? nil : $0 } ?? Platform.hostNative.map(\.description).joined(separator: ",")
        // `none`: a builder that only emulates.
        for raw in native.split(separator: ",") where raw.trimmingCharacters(in: .whitespaces) != "none" {
            guard let platform = Platform(raw), platform.isSupported else {
                throw BuilderError.configuration(
                    "DRYDOCK_BUILDER_PLATFORMS: '\(raw.trimmingCharacters(in: .whitespaces))' is not a supported platform; use \(Platform.supportedList)")
            }
            if !platforms.contains(platform) { platforms.append(platform) }
        }
        var emulated: [Platform] = []
        for raw in (env["DRYDOCK_BUILDER_EMULATE"] ?? "").split(separator: ",") {
            guard let platform = Platform(raw), platform.isSupported else {
                throw BuilderError.configuration(
                    "DRYDOCK_BUILDER_EMULATE: '\(raw.trimmingCharacters(in: .whitespaces))' is not a supported platform; use \(Platform.supportedList)")
            }
            if !platforms.contains(platform), !emulated.contains(platform) { emulated.append(platform) }
        }
        guard !platforms.isEmpty || !emulated.isEmpty else {
            throw BuilderError.configuration("DRYDOCK_BUILDER_PLATFORMS=none needs DRYDOCK_BUILDER_EMULATE: a builder serves at least one platform")
        }
        let concurrency = Int(env["DRYDOCK_BUILDER_CONCURRENCY"] ?? "") ?? 1
        guard (1...64).contains(concurrency) else { throw BuilderError.configuration("DRYDOCK_BUILDER_CONCURRENCY must be 1 to 64") }
        let cache = env["DRYDOCK_CACHE_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (geteuid() == 0 ? "/var/lib/drydock-builder" : NSHomeDirectory() + "/.cache/drydock-builder")
        var hostname = [CChar](repeating: 0, count: 256)
        gethostname(&hostname, 255)
        let name = env["DRYDOCK_BUILDER_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? String(decoding: hostname.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var configuration = BuilderConfiguration(apiURL: url, workerToken: token, platforms: platforms,
                                                 cacheDirectory: URL(fileURLWithPath: cache, isDirectory: true), concurrency: concurrency, name: name)
        configuration.emulated = emulated
        configuration.registrationSecret = registration
        if let raw = env["DRYDOCK_BUILDER_IDLE_SECONDS"], !raw.isEmpty {
            guard let idle = Int(raw), idle >= 1 else { throw BuilderError.configuration("DRYDOCK_BUILDER_IDLE_SECONDS must be a whole number of seconds, at least 1") }
            configuration.idleSeconds = idle
        }
        configuration.parentPid = env["DRYDOCK_BUILDER_PARENT_PID"].flatMap { Int32($0) }
        if let raw = env["DRYDOCK_CACHE_KEEP_BYTES"], !raw.isEmpty {
            guard let bytes = Int64(raw), bytes >= 0 else { throw BuilderError.configuration("DRYDOCK_CACHE_KEEP_BYTES must be a number of bytes") }
            configuration.keepBytesOverride = bytes
        }
        switch env["DRYDOCK_BUILDER_ISOLATION"].flatMap({ $0.isEmpty ? nil : $0 }) {
        case nil: configuration.isolation = Self.runcAvailable(env) ? .oci : .chroot
        case "oci": configuration.isolation = .oci
        case "chroot": configuration.isolation = .chroot
        case let other?: throw BuilderError.configuration("DRYDOCK_BUILDER_ISOLATION must be 'oci' (runc: RUN steps get their own PID and network namespaces) or 'chroot', not '\(other)'")
        }
        return configuration
    }
}

extension BuilderConfiguration {
    /// Whether runc is on the PATH (buildah's OCI isolation runs RUN steps with it).
    static func runcAvailable(_ env: [String: String]) -> Bool {
        let path = env["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/runc") }
    }
}

public enum BuilderError: Error, CustomStringConvertible {
    case configuration(String)
    case job(String)

    public var description: String {
        switch self {
        case .configuration(let s), .job(let s): s
        }
    }
}
