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
        subcommands: [Serve.self, Bootstrap.self, WorkerToken.self],
        defaultSubcommand: Serve.self
    )
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

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = options.logger()
        if options.logLevel == nil { logger.logLevel = .warning }
        do {
            let result = try await ServerRunner.bootstrap(try options.configuration(), organization: org, email: email, logger: logger)
            print("Created organization \(result.organization.name) (id \(result.organization.id)) with owner \(result.owner.email).")
            print("The owner's token follows; it is shown only this once:")
            print(result.secret)
        } catch let error as APIError {
            throw ValidationError(error.detail)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
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
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = options.logger()
        if options.logLevel == nil { logger.logLevel = .warning }
        do {
            let secret = try await ServerRunner.workerToken(try options.configuration(), name: name, logger: logger)
            print("Worker token '\(name)' (serves every organization); shown only this once:")
            print(secret)
        } catch let error as APIError {
            throw ValidationError(error.detail)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }
}
