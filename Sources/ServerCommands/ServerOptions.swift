import ArgumentParser
import DrydockServer
import Foundation
import Logging

/// Where the server keeps its state: shared by `serve` and the operator commands.
struct StorageOptions: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Blobs and the private PostgreSQL cluster (env DRYDOCK_DATA_DIR).")
    var dataDir: String?

    @Option(name: .customLong("database-url"), help: "postgres:// URL of an existing server (env DRYDOCK_DATABASE_URL); omit to run a private cluster in the data dir.")
    var databaseURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (env LOG_LEVEL).")
    var logLevel: String?

    func configuration(host: String? = nil, port: Int? = nil) throws -> ServerConfiguration {
        try ServerConfiguration.fromEnvironment(host: host, port: port, dataDirectory: dataDir, databaseURL: databaseURL)
    }

    func logger() -> Logger {
        var logger = Logger(label: "drydock")
        let level = logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
        return logger
    }

    /// For the one-shot operator commands: quiet unless --log-level says otherwise, and any
    /// failure (bad configuration, bad input, a refusal) as one line, without a usage dump.
    func runOperatorCommand<T>(_ body: (ServerConfiguration, Logger) async throws -> T) async throws -> T {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = logger()
        if logLevel == nil { logger.logLevel = .warning }
        do {
            return try await body(try configuration(), logger)
        } catch let error as DomainError {
            throw OperatorError(error.message)
        } catch let error as ConfigurationError {
            throw OperatorError(error.description)
        }
    }
}

extension PlanName: ExpressibleByArgument {}

/// A failure of an operator command, printed as `Error: <message>` with no usage text.
struct OperatorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
