import ArgumentParser
import DrydockServer
import Foundation
import Logging

struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on (env DRYDOCK_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (env DRYDOCK_PORT, default 8080).")
    var port: Int?

    @Option(name: .customLong("data-dir"), help: "Blobs and the private PostgreSQL cluster (env DRYDOCK_DATA_DIR).")
    var dataDir: String?

    @Option(name: .customLong("database-url"), help: "postgres:// URL of an existing server (env DRYDOCK_DATABASE_URL); omit to run a private cluster in the data dir.")
    var databaseURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (env LOG_LEVEL).")
    var logLevel: String?

    func configuration() throws -> ServerConfiguration {
        try ServerConfiguration.fromEnvironment(host: host, port: port, dataDirectory: dataDir, databaseURL: databaseURL)
    }

    /// For the one-shot operator commands: quiet unless --log-level says otherwise, and errors
    /// of the configuration or the input as one line.
    func runOperatorCommand<T>(_ body: (ServerConfiguration, Logger) async throws -> T) async throws -> T {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = logger()
        if logLevel == nil { logger.logLevel = .warning }
        do {
            return try await body(try configuration(), logger)
        } catch let error as APIError {
            throw ValidationError(error.detail)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }

    func logger() -> Logger {
        var logger = Logger(label: "drydock")
        let level = logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
        return logger
    }
}

@main
struct DrydockServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drydock-server",
        abstract: "The Drydock server: management API, registry and build queue.",
        discussion: """
            With no DRYDOCK_DATABASE_URL the server runs its own PostgreSQL cluster inside the data
            directory (needs the 'postgresql' package). Create the first organization and its
            owner's token with 'drydock-server bootstrap --org NAME', and a token for builders that
            serve every organization with 'drydock-server worker-token --name NAME'.
            """,
        subcommands: [Serve.self, Bootstrap.self, SetPlan.self, WorkerToken.self],
        defaultSubcommand: Serve.self
    )

    static func main() async {
        ServerRunner.tuneAllocator()
        // DRYDOCK_TASKS_ON_EVENT_LOOPS=0 keeps Swift's own thread pool (for comparisons).
        if ProcessInfo.processInfo.environment["DRYDOCK_TASKS_ON_EVENT_LOOPS"] != "0" {
            _ = ServerRunner.runTasksOnEventLoops()
        }
        await main(nil)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let configuration = try options.configuration()
        let logger = options.logger()
        logger.info("drydock-server starting", metadata: [
            "listen": "\(configuration.host):\(configuration.port)", "data": "\(configuration.dataDirectory.path)",
        ])
        do {
            try await ServerRunner.serve(configuration, logger: logger)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }
}

struct Bootstrap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an organization and its owner, and print the owner's token once (last line of stdout).")
    @OptionGroup var options: ServerOptions

    @Option(help: "Name of the organization to create.")
    var org: String

    @Option(help: "The owner's email (default owner@<org>.local).")
    var email: String?

    @Option(help: "developer (default), startup or business.")
    var plan: String = "developer"

    func run() async throws {
        guard ["developer", "startup", "business"].contains(plan) else {
            throw ValidationError("--plan must be developer, startup or business")
        }
        let result = try await options.runOperatorCommand { configuration, logger in
            try await ServerRunner.bootstrap(configuration, organization: org, email: email, plan: plan, logger: logger)
        }
        print("Created organization \(result.organization.name) (id \(result.organization.id), \(result.organization.plan) plan) with owner \(result.owner.email).")
        print("The owner's token follows; it is shown only this once:")
        print(result.secret)
    }
}

struct WorkerToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker-token",
        abstract: "Mint a worker token for builders that serve every organization; printed once (last line of stdout).",
        discussion: """
            Start a builder with it: DRYDOCK_API_URL=http://HOST:PORT DRYDOCK_WORKER_TOKEN=<token> drydock-builder.
            A builder for one organization only uses a token an admin makes with
            'drydock tokens create --kind worker --name NAME'.
            """)
    @OptionGroup var options: ServerOptions

    @Option(help: "A name for the token (shown in token lists and build records).")
    var name: String

    func run() async throws {
        let secret = try await options.runOperatorCommand { configuration, logger in
            try await ServerRunner.workerToken(configuration, name: name, logger: logger)
        }
        print("Worker token '\(name)' (serves every organization); shown only this once:")
        print(secret)
    }
}

struct SetPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-plan",
        abstract: "Move an organization to a plan: developer, startup or business (with custom amounts).",
        discussion: """
            Developer: $20/month, 1 user, 500 build minutes, 25 GB storage. Startup: $200/month, unlimited
            users, 5,000 minutes then $0.04/minute, 250 GB then $0.20/GB-month, usage caps. Business: the
            Startup terms unless given here, e.g.
              drydock-server set-plan --org ID business --monthly-price 1500 --included-minutes 40000 --minute-price 0.03
            """)
    @OptionGroup var options: ServerOptions

    @Option(help: "The organization's id.")
    var org: String

    @Argument(help: "developer, startup or business.")
    var plan: String

    @Option(name: .customLong("monthly-price"), help: "Business: dollars a month.")
    var monthlyPrice: String?
    @Option(name: .customLong("included-minutes"), help: "Business: build minutes included a month.")
    var includedMinutes: Int64?
    @Option(name: .customLong("minute-price"), help: "Business: dollars per build minute past the included ones (e.g. 0.03).")
    var minutePrice: String?
    @Option(name: .customLong("included-storage-gb"), help: "Business: storage GB included.")
    var includedStorageGB: Int64?
    @Option(name: .customLong("storage-price"), help: "Business: dollars per GB-month past the included storage.")
    var storagePrice: String?

    /// "0.035" dollars → 3500 millicents, exactly.
    static func millicents(_ text: String, _ flag: String) throws -> Int64 {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = Int64(parts[0]), whole >= 0,
              parts.count == 1 || (parts[1].count <= 5 && parts[1].allSatisfy(\.isNumber))
        else { throw ValidationError("\(flag) must be an amount in dollars such as 0.04 or 1500") }
        let fraction = parts.count == 2 ? String(parts[1]) + String(repeating: "0", count: 5 - parts[1].count) : "00000"
        return whole * 100_000 + Int64(fraction)!
    }

    func run() async throws {
        let custom = monthlyPrice != nil || includedMinutes != nil || minutePrice != nil || includedStorageGB != nil || storagePrice != nil
        var overrides: UsageStore.PlanOverrides?
        if custom {
            overrides = UsageStore.PlanOverrides(
                monthlyCents: try monthlyPrice.map { try Self.millicents($0, "--monthly-price") / 1000 },
                includedMinutes: includedMinutes, minuteOverageMillicents: try minutePrice.map { try Self.millicents($0, "--minute-price") },
                includedStorageGB: includedStorageGB, storageOverageMillicents: try storagePrice.map { try Self.millicents($0, "--storage-price") })
        }
        try await options.runOperatorCommand { configuration, logger in
            try await ServerRunner.setPlan(configuration, organizationId: org, plan: plan, overrides: overrides, logger: logger)
        }
        print("Organization \(org) is now on the \(plan) plan\(custom ? " with custom amounts" : "").")
    }
}
