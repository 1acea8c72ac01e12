import ArgumentParser
import DrydockClient
import DrydockProcess

struct ProjectUpdate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Rename a project, or change its cache policy or how its builds are placed.",
        discussion: HelpText.reflow("""
            --emulation native-only: only builders of a job's platform take it. fallback (the default):
            a builder that emulates the platform (qemu) takes it when no native one has within
            --emulation-fallback. allowed: either kind at once. --queue-timeout: how long a job waits
            for a builder that serves it before the build fails (default: the server's, 10m).

            Builders that drydock-agent starts for the project: --max-builders (per platform; more than 1
            turns on autoscaling, the extra builders working on clones of the cache), --builds-per-builder
            (builds one builder runs at once), --builder-idle (how long a builder waits for a job before it exits).
            """))

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Project ID or name.")
    var id: String

    @Option(help: "New name.")
    var name: String?

    @Option(name: .customLong("keep-gb"), help: "Cache kept per platform in GB, 1-500.")
    var keepGigabytes: Int?

    @Option(name: .customLong("keep-days"), help: "Drop cache entries unused this many days, 1-365.")
    var keepDays: Int?

    @Option(help: "native-only, fallback or allowed: may builders that emulate a platform take its jobs?")
    var emulation: Components.Schemas.BuildSettingsUpdate.EmulationPayload?

    @Option(name: .customLong("emulation-fallback"), help: "With fallback: how long a job waits for a native builder first, e.g. 30s (0s-1h).")
    var emulationFallback: String?

    @Option(name: .customLong("queue-timeout"), help: "How long a job waits for a builder before the build fails, e.g. 10m (10s-24h).")
    var queueTimeout: String?

    @Option(name: .customLong("max-builders"), help: "Builders agents may run at once per platform, 1-100 (default 1; more: autoscaling).")
    var maxBuilders: Int?

    @Option(name: .customLong("builds-per-builder"), help: "Builds one agent-started builder runs at once, 1-64 (default 1).")
    var buildsPerBuilder: Int?

    @Option(name: .customLong("builder-idle"), help: "How long an agent-started builder waits for a job before it exits, e.g. 60s or 5m (5s-24h; default 5m).")
    var builderIdle: String?

    func validate() throws {
        if name == nil, keepGigabytes == nil, keepDays == nil, emulation == nil, emulationFallback == nil, queueTimeout == nil,
           maxBuilders == nil, buildsPerBuilder == nil, builderIdle == nil {
            throw ValidationError(
                "nothing to change: pass --name, --keep-gb, --keep-days, --emulation, --emulation-fallback, --queue-timeout, --max-builders, --builds-per-builder or --builder-idle")
        }
        if let maxBuilders, !(1...100).contains(maxBuilders) { throw ValidationError("--max-builders takes 1 to 100") }
        if let buildsPerBuilder, !(1...64).contains(buildsPerBuilder) { throw ValidationError("--builds-per-builder takes 1 to 64") }
    }

    func run() async throws {
        let client = try await connection.client()
        var builds: Components.Schemas.BuildSettingsUpdate?
        if emulation != nil || emulationFallback != nil || queueTimeout != nil || maxBuilders != nil || buildsPerBuilder != nil || builderIdle != nil {
            let fallback = try emulationFallback.map { try Self.seconds($0, flag: "--emulation-fallback", range: 0...3600) }
            let timeout = try queueTimeout.map { try Self.seconds($0, flag: "--queue-timeout", range: 10...86_400) }
            let idle = try builderIdle.map { try Self.seconds($0, flag: "--builder-idle", range: 5...86_400) }
            builds = .init(emulation: emulation, emulationFallbackSeconds: fallback, queueTimeoutSeconds: timeout,
                           maxBuilders: maxBuilders, buildsPerBuilder: buildsPerBuilder, builderIdleSeconds: idle)
        }
        let project = try await client.updateProject(try await client.projectId(for: id), name: name, keepGigabytes: keepGigabytes,
                                                     keepDays: keepDays, builds: builds)
        try output.details(project, ProjectGet.fields(project))
    }

    /// `90s`, `10m`, `1h` (or plain seconds) within `range`.
    static func seconds(_ text: String, flag: String, range: ClosedRange<Int>) throws -> Int {
        let value: Int
        if let plain = Int(text) {
            value = plain
        } else {
            do { value = try TokenCreate.parseDuration(text) } catch { throw CLIError("\(flag) takes a duration like 30s, 10m or 1h (got '\(text)')") }
        }
        guard range.contains(value) else {
            throw CLIError("\(flag) \(text) is out of range: \(range.lowerBound)s to \(range.upperBound)s")
        }
        return value
    }
}

extension Components.Schemas.BuildSettingsUpdate.EmulationPayload: ExpressibleByArgument {}
