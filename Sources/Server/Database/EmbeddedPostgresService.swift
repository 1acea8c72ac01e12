import Logging
import NIOPosix
import PostgresNIO
import ServiceLifecycle

/// The private PostgreSQL cluster as the first service of the server: started (or adopted, if a
/// killed server left it running) before anything connects, stopped after everything else has
/// shut down. Whatever it starts or adopts it stops.
struct EmbeddedPostgresService: Service {
    let cluster: EmbeddedPostgres
    let ready: StartupGate
    let logger: Logger

    func run() async throws {
        let owned: Bool
        do {
            if try await cluster.start(logger: logger) {
                cluster.recordOwner()
                owned = true
            } else {
                owned = cluster.adoptIfOrphaned(logger: logger)
            }
        } catch {
            ready.fail(error)
            throw error
        }
        ready.open()
        // Stops the cluster on graceful shutdown and on cancellation alike.
        try? await gracefulShutdown()
        if owned {
            // In a task of its own: a cancelled shutdown (past its time limit) still stops it.
            let cluster = cluster, logger = logger
            await Task { await cluster.stop(logger: logger) }.value
        }
    }
}

/// Applies pending migrations once the database is reachable, then opens `schemaReady` for the
/// services and the HTTP server that need the schema.
struct MigrationService: Service {
    let database: Database
    let databaseReady: StartupGate
    let schemaReady: StartupGate
    var keys: ServerKeys?
    let logger: Logger

    func run() async throws {
        do {
            try await databaseReady.wait()
            try await Migrations.apply(on: database, logger: logger)
            try await keys?.load(from: database, logger: logger)
        } catch {
            schemaReady.fail(error)
            throw error
        }
        schemaReady.open()
        // A service that returns ends the group: stay until shutdown.
        try? await gracefulShutdown()
    }
}

/// The connection pool, started once the database can be reached (so a private cluster that is
/// still starting does not fill the log with refused connections).
struct PostgresPoolService: Service {
    let client: PostgresClient
    let databaseReady: StartupGate

    func run() async throws {
        try await databaseReady.wait()
        await client.run()
    }
}
