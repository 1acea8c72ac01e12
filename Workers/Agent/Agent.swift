import DrydockClient
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// drydock-agent: reports to the server what it can start and which builders it runs, and starts
/// and stops builders when the server says so (long-poll through `DrydockClient`, the agent token).
/// Each builder serves one project and platform on that project's cache volume on this machine
/// (or a clone of it when another builder already works on the volume), registers with a one-time
/// secret, and exits after its idle time.
///
/// On graceful shutdown it asks its builders to stop (they finish their jobs), waits for them,
/// reports, and returns.
public final class Agent: Service, Sendable {
    public let configuration: AgentConfiguration
    let logger: Logger
    let client: DrydockClient
    let volumes: CacheVolumes
    let launcher: any Launcher
    /// What it started and still runs: spec and the launcher's id.
    private let running = Mutex<[String: (spec: BuilderSpec, id: String)]>([:])

    public init(configuration: AgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.client = DrydockClient(baseURL: configuration.apiURL, token: configuration.agentToken, timeout: .seconds(90))
        self.volumes = CacheVolumes(root: configuration.dataDirectory)
        switch configuration.launcher {
        case .process:
            launcher = ProcessLauncher(executable: configuration.builderExecutable, extraEnvironment: configuration.builderEnvironment,
                                       dataDirectory: configuration.dataDirectory, logger: logger)
        case .command:
            launcher = CommandLauncher(command: configuration.command, logger: logger)
        case .podman:
            launcher = PodmanLauncher(image: configuration.podmanImage ?? "", extraEnvironment: configuration.builderEnvironment,
                                      extraArguments: configuration.podmanArguments, agentName: configuration.name, logger: logger)
        }
    }

    public func run() async throws {
        try FileManager.default.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true)
        (launcher as? ProcessLauncher)?.killLeftovers()
        await (launcher as? PodmanLauncher)?.removeLeftovers()
        volumes.removeAllClones()
        logger.info("agent ready", metadata: [
            "server": "\(configuration.apiURL.absoluteString)", "launcher": "\(configuration.launcher.rawValue)",
            "platforms": "\(configuration.platforms.map(\.description).joined(separator: ","))",
            "emulated": "\(configuration.emulated.isEmpty ? "-" : configuration.emulated.map(\.description).joined(separator: ","))",
            "max-builders": "\(configuration.maxBuilders)", "data": "\(configuration.dataDirectory.path)",
        ])
        var failures = 0
        var refusals = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // With builders running it asks every 5 s, so one that exited is reported (and its room
            // used again) soon; with none, new jobs wake the long-poll at once anyway.
            let report = await self.report(waitSeconds: running.withLock { $0.isEmpty } ? 25 : 5)
            let instructions: Components.Schemas.AgentInstructions
            do {
                instructions = try await cancelWhenGracefulShutdown { try await self.client.pollAgent(report) }
                failures = 0
                refusals = 0
            } catch let error as DrydockClientError where error.status == 401 || error.status == 403 {
                refusals += 1
                guard refusals >= 3 else {
                    logger.error("the server refused the agent token; checking again", metadata: ["error": "\(error)", "in": "5s"])
                    try? await Task.sleep(for: .seconds(5))
                    continue
                }
                await shutDownBuilders()
                throw AgentError.configuration(
                    "the server at \(configuration.apiURL.absoluteString) refused the agent token (revoked, expired or mistyped): \(error). "
                        + "Mint another with 'drydock tokens create --kind agent --name NAME' or 'drydock-server agent-token --name NAME'")
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                failures += 1
                let delay = min(30, 1 << min(failures, 5))
                logger.warning("cannot reach the server; retrying", metadata: ["error": "\(error)", "in": "\(delay)s"])
                try? await Task.sleep(for: .seconds(delay))
                continue
            }
            for id in instructions.stop { await stop(builderId: id) }
            await withTaskGroup(of: Void.self) { group in
                for launch in instructions.start { group.addTask { await self.start(launch) } }
            }
        }
        await shutDownBuilders()
        logger.info("agent stopped")
    }

    /// What the agent runs now (builders that exited are dropped and their clones deleted).
    func report(waitSeconds: Int) async -> Components.Schemas.AgentReport {
        var alive: [Components.Schemas.AgentBuilderReport] = []
        for (builderId, entry) in running.withLock({ $0 }) {
            if await launcher.isRunning(entry.spec, id: entry.id) {
                alive.append(.init(id: builderId))
            } else {
                running.withLock { _ = $0.removeValue(forKey: builderId) }
                if entry.spec.clone { volumes.removeClone(for: builderId) }
                logger.info("builder exited", metadata: ["builder": "\(builderId)", "project": "\(entry.spec.projectId)", "platform": "\(entry.spec.platform)"])
            }
        }
        return .init(name: configuration.name, launcher: .init(rawValue: configuration.launcher.rawValue) ?? .process,
                     platforms: configuration.platforms.map(\.description),
                     emulatedPlatforms: configuration.emulated.isEmpty ? nil : configuration.emulated.map(\.description),
                     maxBuilders: configuration.maxBuilders,
                     cpusPerBuilder: configuration.cpusPerBuilder, memoryMegabytesPerBuilder: configuration.memoryMegabytesPerBuilder,
                     builders: alive, waitSeconds: waitSeconds)
    }

    func start(_ launch: Components.Schemas.BuilderLaunch) async {
        let log = logger.with(["builder": "\(launch.builderId)", "project": "\(launch.projectId)", "platform": "\(launch.platform)"])
        do {
            let volume = try volumes.volume(named: launch.cacheVolume)
            try FileManager.default.createDirectory(at: volume, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            var directory = volume
            if launch.clone {
                directory = volumes.clone(for: launch.builderId)
                let began = ContinuousClock.now
                try await volumes.makeClone(of: volume, at: directory)
                log.info("cloned the project's cache for an autoscaled builder", metadata: ["in": "\(ContinuousClock.now - began)"])
            }
            let spec = BuilderSpec(
                builderId: launch.builderId, name: "\(configuration.name)-\(launch.builderId)", organizationId: launch.organizationId,
                projectId: launch.projectId, platform: launch.platform, apiUrl: configuration.apiURL.absoluteString,
                registrationSecret: launch.registrationSecret, cacheVolume: launch.cacheVolume, cacheDirectory: directory.path,
                clone: launch.clone, volumeDirectory: volume.path, emulated: launch.emulated ?? false, idleSeconds: launch.idleSeconds,
                buildsPerBuilder: launch.buildsPerBuilder, cpus: launch.cpus, memoryMegabytes: launch.memoryMegabytes)
            let id = try await launcher.start(spec)
            running.withLock { $0[launch.builderId] = (spec, id) }
            log.info("builder started", metadata: ["id": "\(id)", "clone": "\(launch.clone)"])
        } catch {
            // Not reported as running: the server marks it stopped at the next poll and decides again.
            if launch.clone { volumes.removeClone(for: launch.builderId) }
            log.error("could not start a builder", metadata: ["error": "\(error)"])
        }
    }

    func stop(builderId: String) async {
        guard let entry = running.withLock({ $0[builderId] }) else { return }
        logger.info("stopping a builder", metadata: ["builder": "\(builderId)"])
        await launcher.stop(entry.spec, id: entry.id)
    }

    /// Asks every builder to stop, waits for them (they finish their jobs), and says so.
    func shutDownBuilders() async {
        let all = running.withLock { $0 }
        guard !all.isEmpty else { return }
        logger.notice("stopping builders; each finishes its jobs first", metadata: ["builders": "\(all.count)"])
        for (_, entry) in all { await launcher.stop(entry.spec, id: entry.id) }
        // Said at once, so the server shows them stopping and starts others for new demand.
        let brief = DrydockClient(baseURL: configuration.apiURL, token: configuration.agentToken, timeout: .seconds(5))
        var stopping = await report(waitSeconds: 0)
        stopping.draining = true
        _ = try? await brief.pollAgent(stopping)
        while true {
            var left = 0
            for (_, entry) in running.withLock({ $0 }) where await launcher.isRunning(entry.spec, id: entry.id) { left += 1 }
            if left == 0 || Task.isCancelled { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        var final = await report(waitSeconds: 0)
        final.draining = true
        // A last word, briefly: the server may be going away too (the HTTP client retries a
        // refused connection until its deadline).
        _ = try? await brief.pollAgent(final)
    }

    /// A hard stop: every builder at once.
    public func stopNow() async {
        await launcher.stopAll()
    }
}

extension Logger {
    func with(_ metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (k, v) in metadata { copy[metadataKey: k] = v }
        return copy
    }
}
