import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// What `drydock-server` does, as library code the executable and tests share.
public enum ServerRunner {
    /// Runs Swift Concurrency's tasks on the server's event loop threads instead of a second pool
    /// of threads: a request's handler then runs where its connection's I/O happens, without two
    /// thread hops per request. Must be called first thing on the main thread, before any task
    /// starts; returns false (and changes nothing) otherwise.
    /// Blob reads and uploads move data in 1 MiB buffers. glibc serves allocations that large
    /// with a fresh mmap each (page faults on every buffer, munmap on every free) until it has
    /// freed a few and raised its threshold on its own; setting the threshold above the buffer size
    /// from the start keeps them on the heap. (A slow first 1 GiB pull seen in the registry
    /// benchmark turned out to be the reference's writeback, not this; see the README.)
    public static func tuneAllocator() {
        #if canImport(Glibc)
        // mallopt lives in <malloc.h>, which the Glibc module does not import.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let M_MMAP_THRESHOLD: Int32 = -3
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            _ = unsafeBitCast(symbol, to: Mallopt.self)(M_MMAP_THRESHOLD, 8 << 20)
        }
        #endif
    }

    public static func runTasksOnEventLoops() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// Runs `body` with the database to use: the configured URL, or the private cluster in the
    /// data directory (started for the call and stopped after it if no server was running it).
    public static func withConfiguredDatabase<T: Sendable>(
        _ configuration: ServerConfiguration, logger: Logger, _ body: (DatabaseURL) async throws -> T
    ) async throws -> T {
        if let url = configuration.databaseURL {
            return try await body(try DatabaseURL(url))
        }
        let embedded = try EmbeddedPostgres(dataDirectory: configuration.dataDirectory)
        let startedHere = try await embedded.start(logger: logger)
        do {
            let result = try await body(embedded.databaseURL)
            if startedHere { await embedded.stop(logger: logger) }
            return result
        } catch {
            if startedHere { await embedded.stop(logger: logger) }
            throw error
        }
    }

    /// Runs the server until SIGTERM/SIGINT: the services of `buildApplication` start in order
    /// (the private PostgreSQL first when there is no database URL) and stop in reverse.
    public static func serve(_ configuration: ServerConfiguration, logger: Logger) async throws {
        try FileManager.default.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true)
        let descriptors = ConnectionLimits.raiseDescriptorLimit()
        logger.info("descriptor limit", metadata: ["open files": "\(descriptors)"])
        // SIGTERM/SIGINT shut down gracefully; whatever has not returned after
        // `shutdownTimeout` is cancelled, and if even that does not end the process within 30 s
        // more (and a margin), it stops the private PostgreSQL and exits (`ShutdownSignals`). A
        // second signal stops at once.
        let cancellation = Duration.seconds(30)
        let signals = ShutdownSignals(logger: logger, deadline: configuration.shutdownTimeout + cancellation + .seconds(15))
        let app = try buildApplication(configuration, logger: logger, signals: signals)
        var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [], logger: logger)
        group.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        group.maximumCancellationDuration = cancellation
        let serviceGroup = ServiceGroup(configuration: group)
        try signals.install { await serviceGroup.triggerGracefulShutdown() }
        try await serviceGroup.run()
        // A forced stop that began meanwhile ends the process with its own status.
        while signals.isForcingExit { try? await Task.sleep(for: .seconds(1)) }
    }

    public struct BootstrapResult: Sendable {
        public let organization: OrganizationRecord
        public let owner: UserRecord
        public let token: TokenRecord
        public let secret: String
    }

    /// Creates an organization, its owner and the owner's first token, whether or not a server is
    /// running on the same database. Applies pending migrations first.
    public static func bootstrap(
        _ configuration: ServerConfiguration, organization name: String, email: String?, plan: PlanName = .developer, logger: Logger
    ) async throws -> BootstrapResult {
        try FileManager.default.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true)
        return try await withConfiguredDatabase(configuration, logger: logger) { database in
            try await bootstrap(configuration, database: database, organization: name, email: email, plan: plan, logger: logger)
        }
    }

    /// Moves an organization to another plan (with custom amounts for Business).
    public static func setPlan(
        _ configuration: ServerConfiguration, organizationId: String, plan: PlanName, overrides: UsageStore.PlanOverrides?, logger: Logger
    ) async throws {
        try await withConfiguredDatabase(configuration, logger: logger) { database in
            try await withDatabase(database, logger: logger) { client in
                try await Migrations.apply(on: client, logger: logger)
                try await UsageStore(client: client, logger: logger).setPlan(organizationId: organizationId, plan: plan, overrides: overrides)
            }
        }
    }

    public static func bootstrap(
        _ configuration: ServerConfiguration, database: DatabaseURL, organization name: String, email: String?, plan: PlanName = .developer,
        logger: Logger
    ) async throws -> BootstrapResult {
        let name = try Validation.name(name, field: "--org")
        let email = try Validation.email(email ?? "owner@\(name.lowercased()).local", field: "--email")
        return try await withDatabase(database, logger: logger) { client in
            try await Migrations.apply(on: client, logger: logger)
            let repository = PostgresOrganizationStore(client: client, logger: logger)
            let secret = Mutex("")
            let (organization, owner, token) = try await repository.bootstrap(name: name, ownerEmail: email) { orgId, userId in
                let token = NewToken(kind: .user, name: "bootstrap", organizationId: orgId, userId: userId)
                secret.withLock { $0 = token.secret }
                return token
            }
            var created = organization
            if plan != created.plan {
                try await UsageStore(client: client, logger: logger).setInitialPlan(organizationId: organization.id, plan: plan)
                created.plan = plan
            }
            return BootstrapResult(organization: created, owner: owner, token: token, secret: secret.withLock { $0 })
        }
    }

    /// Adds a new version of every shared server key (`drydock-server rotate-keys`).
    public static func rotateKeys(_ configuration: ServerConfiguration, logger: Logger) async throws {
        try await withConfiguredDatabase(configuration, logger: logger) { database in
            try await withDatabase(database, logger: logger) { client in
                try await Migrations.apply(on: client, logger: logger)
                // Versions exist before a rotation adds one (a server that never ran made none).
                try await ServerKeys(dataDirectory: configuration.dataDirectory).load(from: client, logger: logger)
                try await ServerKeys.rotate(database: client, logger: logger)
            }
        }
    }

    /// Mints a token of no organization, for machines that serve every organization: a worker
    /// token (builders) or an agent token (drydock-agents). Returns its secret.
    public static func serverWideToken(_ configuration: ServerConfiguration, kind: TokenKind, name: String, logger: Logger) async throws -> String {
        precondition(kind == .worker || kind == .agent, "only worker and agent tokens serve every organization")
        try FileManager.default.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true)
        let name = try Validation.tokenName(name)
        return try await withConfiguredDatabase(configuration, logger: logger) { database in
            try await withDatabase(database, logger: logger) { client in
                try await Migrations.apply(on: client, logger: logger)
                let token = NewToken(kind: kind, name: name, organizationId: nil)
                _ = try await PostgresTokenStore(client: client, logger: logger).create(token)
                return token.secret
            }
        }
    }

    /// Runs `body` with a connected client, then shuts the client down. `waitLimit`: how long one
    /// operation may wait for PostgreSQL (`Database`); `connections`: the pool's size, when not
    /// the default (one makes every operation use the same session).
    public static func withDatabase<T: Sendable>(
        _ database: DatabaseURL, logger: Logger, waitLimit: Duration = .seconds(5), connections: Int? = nil,
        _ body: @escaping @Sendable (Database) async throws -> T
    ) async throws -> T {
        // The pool's background chatter (such as leasing before run() is scheduled) is not news here.
        var backgroundLogger = logger
        backgroundLogger.logLevel = .error
        var configuration = try database.clientConfiguration()
        if let connections {
            configuration.options.maximumConnections = connections
            configuration.options.minimumConnections = min(configuration.options.minimumConnections, connections)
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            let result = try await body(Database(client: client, waitLimit: waitLimit))
            return result
        }
    }
}
