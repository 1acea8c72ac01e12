import DrydockAPITypes
import Foundation
import Hummingbird
import Logging
import NIOCore
import OpenAPIRuntime
import PostgresNIO
import ServiceLifecycle

/// The composition root: everything the server is, wired from one configuration. `main` only
/// reads configuration and runs this; tests call it with a test configuration (port 0) and the
/// database they made.
///
/// Start-up is a chain of services in one group: the private PostgreSQL (when no database URL
/// is configured), the pool, the migrations, the background services that wait for the schema,
/// and the HTTP server last; shutdown runs the chain backwards.
public func buildApplication(
    _ configuration: ServerConfiguration,
    database explicitDatabase: DatabaseURL? = nil,
    logger: Logger,
    signals: ShutdownSignals? = nil
) throws -> some ApplicationProtocol {
    var startup: [any Service] = []
    let tracker = ShutdownTracker(logger: logger)
    signals?.attach(tracker)
    let database: DatabaseURL
    let databaseReady: StartupGate
    if let explicitDatabase {
        database = explicitDatabase
        databaseReady = .opened("database")
    } else if let url = configuration.databaseURL {
        database = try DatabaseURL(url)
        databaseReady = .opened("database")
    } else {
        let cluster = try EmbeddedPostgres(dataDirectory: configuration.dataDirectory)
        database = cluster.databaseURL
        databaseReady = StartupGate("private PostgreSQL")
        startup.append(EmbeddedPostgresService(cluster: cluster, ready: databaseReady, logger: logger))
        signals?.addEmergencyStop("private PostgreSQL", cluster.emergencyStopCommand)
    }
    logger.info("database", metadata: ["url": "\(database.redacted)"])
    let schemaReady = StartupGate("schema")

    // The pools log their own retries (a kept connection reopened every few seconds while
    // PostgreSQL is down) at info: below debug, only their warnings and errors; the server says
    // that the database is unreachable in its own words (503s, "lease check failed").
    var poolLogger = logger
    if logger.logLevel > .debug { poolLogger.logLevel = max(logger.logLevel, .warning) }
    // Connections kept open while idle: measured with fifty simulated builders, claims sent
    // after the drain's first second had a p99 of about 18 ms with them against 26 ms when the
    // pool opened connections on demand (benchmarks/queue.sh; README).
    var mainConfiguration = try database.clientConfiguration()
    mainConfiguration.options.minimumConnections = min(max(configuration.databaseMinConnections, 0), DatabaseURL.poolSize)
    let postgres = PostgresClient(configuration: mainConfiguration, backgroundLogger: poolLogger)
    var heartbeatConfiguration = try database.clientConfiguration()
    heartbeatConfiguration.options.maximumConnections = DatabaseURL.heartbeatPoolSize
    heartbeatConfiguration.options.minimumConnections = configuration.databaseMinConnections > 0 ? DatabaseURL.heartbeatPoolSize : 0
    let heartbeats = PostgresClient(configuration: heartbeatConfiguration, backgroundLogger: poolLogger)
    // While job heartbeats and claims run, other work holds at most 4 of the pool's 20
    // connections at once (`ConnectionLane`).
    let db = Database(client: postgres, waitLimit: configuration.databaseWaitLimit, batchesSignals: true,
                      ordinaryWhileBusy: 4, heartbeatClient: heartbeats)
    let organizations = PostgresOrganizationStore(client: db, logger: logger)
    let projects = CachedProjectStore(PostgresProjectStore(client: db, logger: logger))
    let tokens = PostgresTokenStore(client: db, logger: logger)
    let authenticator = TokenAuthenticator(tokens: tokens, logger: logger)

    let router = Router()
    router.add(middleware: RequestTargetMiddleware())
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: UrgentLaneMiddleware())
    let routes = RouteTable()
    // Filled in once the API handler exists; the middleware renders the dashboard's 404.
    let dashboardSlot = DashboardSlot()
    router.add(middleware: DashboardHeadersMiddleware<BasicRequestContext>(notFound: { dashboardSlot.notFound() }))
    router.add(middleware: APINotFoundMiddleware(routes: routes))
    if logger.logLevel <= .debug {
        router.add(middleware: LogRequestsMiddleware(.debug))
    }

    router.get("/healthz") { _, _ in "ok\n" }
    router.get("/readyz") { _, _ -> Response in
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await postgres.query("SELECT 1", logger: logger) }
                group.addTask {
                    try await Task.sleep(for: .seconds(2))
                    throw CancellationError()
                }
                try await group.next()
                group.cancelAll()
            }
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
        } catch {
            return Response(status: .serviceUnavailable, headers: [.contentType: "text/plain"],
                            body: .init(byteBuffer: ByteBuffer(string: "database unavailable\n")))
        }
    }
    let metrics = configuration.metrics
    let gaugeSources = GaugeSources()
    router.get("/metrics") { _, _ -> Response in
        if let (jobs, agents) = gaugeSources.value { await Observability.refreshGauges(jobs: jobs, agents: agents, maxConnections: DatabaseURL.poolSize) }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                 body: .init(byteBuffer: ByteBuffer(bytes: metrics.map(Observability.exposition) ?? [])))
    }
    router.get("/openapi.yaml") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "application/yaml"],
                 body: .init(byteBuffer: ByteBuffer(bytes: EmbeddedOpenAPIDocument.bytes)))
    }

    Downloads(configured: configuration.downloadsDirectory).register(on: router)

    let registryStore = RegistryStore(client: db, logger: logger)
    let signals = BuildSignals(client: postgres, databaseReady: databaseReady, logger: logger)
    // Cache invalidations reach every replica through PostgreSQL's NOTIFY.
    authenticator.broadcast.connect(database: db, logger: logger)
    projects.broadcast.connect(database: db, logger: logger)
    signals.onInvalidation { [authenticator, projects] message in
        authenticator.handle(message)
        projects.handle(message)
    }
    let usage = UsageStore(client: db, logger: logger)
    // Shared by every replica: loaded from PostgreSQL before the schema gate opens.
    let serverKeys = ServerKeys(dataDirectory: configuration.dataDirectory)
    let secretBox = BuildSecretBox(keys: serverKeys)
    let builds = BuildStore(client: db, logger: logger, secretBox: secretBox)
    var jobs = JobQueue(client: db, logger: logger, secretBox: secretBox, lease: configuration.jobLease)
    jobs.emulationFallback = configuration.emulationFallback
    let buildLog = BuildLog(client: db, logger: logger)
    // Blobs, uploads and contexts: the data directory, or the directory every replica shares.
    let blobStore: any BlobStore
    let contexts: ContextStore
    var objectStore: S3BlobStore?
    if let s3 = configuration.blobStoreS3 {
        let store = S3BlobStore(settings: s3, logger: logger)
        objectStore = store
        blobStore = store
        contexts = ContextStore(limit: configuration.maxContextBytes) { projectId in store.scoped("contexts/\(projectId)") }
    } else {
        let blobRoot = configuration.blobStoreDirectory ?? configuration.dataDirectory
        contexts = ContextStore(dataDirectory: blobRoot, limit: configuration.maxContextBytes)
        blobStore = try FileSystemBlobStore(root: blobRoot)
    }
    let indexes = IndexAssembler(builds: builds, registry: registryStore, logger: logger, blobs: blobStore)
    let agents = AgentStore(client: db, logger: logger)
    gaugeSources.value = (jobs, agents)
    let audience = configuration.oidc.audience ?? configuration.publicURL ?? "http://\(configuration.host):\(configuration.port)"
    let oidc = OIDCExchange(settings: configuration.oidc, audience: audience,
                            verifier: OIDCVerifier(settings: configuration.oidc, audience: audience, logger: logger),
                            trust: TrustStore(client: db, logger: logger))
    let handler = APIHandler(organizations: organizations, projects: projects, tokens: tokens, registry: registryStore,
                             builds: builds, jobs: jobs, buildLog: buildLog, contexts: contexts, signals: signals, usage: usage,
                             authenticator: authenticator, indexes: indexes, agents: agents, oidc: oidc)
    // The contract the server serves is the one it enforces.
    let contract = try Contract(yaml: String(decoding: EmbeddedOpenAPIDocument.bytes, as: UTF8.self))
    try handler.registerHandlers(
        on: RouterTransport(router: router, routes: routes),
        serverURL: Servers.Server1.url(),
        // Compact, unsorted JSON: pretty-printing and key sorting cost a third of a small answer.
        configuration: .init(dateTranscoder: RFC3339DateTranscoder(), jsonEncodingOptions: [.withoutEscapingSlashes]),
        middlewares: [
            ProblemMiddleware(logger: logger),
            AuthMiddleware(authenticator: authenticator),
            BodyLimitMiddleware(maxBodyBytes: configuration.maxJSONBodyBytes, contract: contract),
        ])

    // The web dashboard under `/`, over the same operations.
    let dashboard = try Dashboard(api: handler, authenticator: authenticator, database: db, publicURL: configuration.publicURL, logger: logger)
    dashboard.register(on: router)
    dashboardSlot.set(dashboard)

    var registry = RegistryRoutes(
        store: registryStore,
        blobs: blobStore,
        projects: projects, authenticator: authenticator,
        signer: RegistryTokenSigner(keys: serverKeys),
        publicURL: configuration.publicURL)
    registry.zeroCopy = configuration.zeroCopy
    registry.register(on: router)

    let maxConnections = configuration.maxConnections
        ?? ConnectionLimits.defaultMaxConnections(descriptorLimit: ConnectionLimits.currentDescriptorLimit())
    let headerTimeout = TimeAmount(configuration.headerTimeout)
    var app = Application(
        router: router,
        server: .http1(configuration: .init(
            additionalChannelHandlers: [RequestHeadTimeoutHandler(timeout: headerTimeout), ZeroCopyFiles.installer()],
            idleTimeout: TimeAmount(configuration.idleTimeout))),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "drydock",
            availableConnectionsDelegate: ConnectionCap(maxConnections: maxConnections, logger: logger)),
        services: (startup.map { tracker.track("private PostgreSQL", $0) } + [
            tracker.track("database pool", PostgresPoolService(client: postgres, databaseReady: databaseReady)),
            tracker.track("heartbeat pool", PostgresPoolService(client: heartbeats, databaseReady: databaseReady)),
            tracker.track("migrations", MigrationService(database: db, databaseReady: databaseReady, schemaReady: schemaReady, keys: serverKeys, logger: logger)),
            tracker.track("build signals", signals),
            tracker.track("registry janitor", RegistryJanitor(store: registryStore, blobs: blobStore, schemaReady: schemaReady, logger: logger)),
            tracker.track("lease reaper", LeaseReaper(jobs: jobs, authenticator: authenticator, interval: configuration.leaseCheckInterval,
                                                      queueTimeout: configuration.queueTimeout,
                                                      schemaReady: schemaReady, indexes: indexes, agents: agents, logger: logger)),
            tracker.track("usage sampler", UsageSampler(usage: usage, interval: configuration.storageSampleInterval, schemaReady: schemaReady, logger: logger)),
        ]),
        onServerRunning: { channel in
            // One line operators (and tests, with port 0) can read the bound address from.
            logger.notice("drydock-server listening", metadata: ["address": "http://\(configuration.host):\(channel.localAddress?.port ?? configuration.port)"])
        },
        logger: logger)
    app.beforeServerStarts { [objectStore] in
        if let objectStore {
            // The bucket is reachable with these credentials (created if missing) before the first request.
            do {
                try await objectStore.prepare()
            } catch {
                throw ConfigurationError("DRYDOCK_BLOB_STORE: the object store \(objectStore.client.settings.description) is not usable: \(error)")
            }
            logger.info("blobs and build contexts in the object store", metadata: ["store": "\(objectStore.client.settings.description)"])
        }
        try await schemaReady.wait()
        logger.info("connection limits", metadata: [
            "maxConnections": "\(maxConnections)", "idleTimeout": "\(configuration.idleTimeout)",
            "headerTimeout": "\(configuration.headerTimeout)", "databaseWait": "\(configuration.databaseWaitLimit)",
            "databaseMinConnections": "\(configuration.databaseMinConnections)",
        ])
    }
    return app
}

/// Where `/metrics` reads its gauges from, set once the stores exist.
final class GaugeSources: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (JobQueue, AgentStore)?
    var value: (JobQueue, AgentStore)? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// The dashboard, for the middleware added before it exists.
final class DashboardSlot: @unchecked Sendable {
    private let lock = NSLock()
    private var dashboard: Dashboard?

    func set(_ value: Dashboard) { lock.withLock { dashboard = value } }

    func notFound() -> Response {
        guard let dashboard = lock.withLock({ dashboard }) else {
            return Response(status: .notFound)
        }
        return dashboard.errorPage(status: .notFound, heading: "Not found", message: "There is no page here.", session: nil)
    }
}
