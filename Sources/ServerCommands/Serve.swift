import ArgumentParser
import DrydockServer
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default).")

    @Option(help: "Address to listen on (env DRYDOCK_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (env DRYDOCK_PORT, default 8080; 0 takes a free one, logged at start).")
    var port: Int?

    @OptionGroup var storage: StorageOptions

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var configuration: ServerConfiguration
        do {
            configuration = try storage.configuration(host: host, port: port)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        configuration.metrics = Observability.bootstrap()
        let logger = storage.logger()
        logger.info("drydock-server starting", metadata: [
            "version": "\(drydockVersion)", "listen": "\(configuration.host):\(configuration.port)",
            "data": "\(configuration.dataDirectory.path)",
        ])
        do {
            try await ServerRunner.serve(configuration, logger: logger)
        } catch let error as ConfigurationError {
            throw OperatorError(error.description)
        }
    }
}
