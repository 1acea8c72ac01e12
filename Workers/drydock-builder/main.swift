import ArgumentParser
import DrydockBuilder
import Foundation
import Logging

@main
struct DrydockBuilderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drydock-builder",
        abstract: "A Drydock builder worker: runs builds with buildah on a persistent per-project cache.",
        discussion: """
            Configuration comes from the environment:
              DRYDOCK_API_URL              the server, e.g. http://127.0.0.1:8080
              DRYDOCK_WORKER_TOKEN         a worker token (ddw_…): 'drydock tokens create --kind worker --name NAME'
                                           serves one organization; 'drydock-server worker-token --name NAME' all
              DRYDOCK_BUILDER_PLATFORMS    platforms served, comma-separated (default: this machine's, e.g. linux/amd64)
              DRYDOCK_CACHE_DIR            where each project's layer cache lives (default /var/lib/drydock-builder as root)
              DRYDOCK_BUILDER_CONCURRENCY  jobs at once (default 1)
              DRYDOCK_BUILDER_NAME         shown in builds (default: the host name)
            Needs buildah (Debian: apt-get install buildah); builds run with chroot isolation on overlay storage.
            """)

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error (env LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "drydock-builder")
        logger.logLevel = Logger.Level(rawValue: logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info") ?? .info
        let configuration: BuilderConfiguration
        do {
            configuration = try BuilderConfiguration.fromEnvironment()
        } catch {
            throw ValidationError("\(error)")
        }
        let builder = Builder(configuration: configuration, logger: logger)
        let work = Task { try await builder.run() }
        // SIGTERM/SIGINT: stop taking jobs and let the running ones be canceled by cancellation.
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { work.cancel() }
            source.resume()
            Self.sources.append(source)
        }
        do {
            try await work.value
        } catch is CancellationError {
        } catch {
            throw ValidationError("\(error)")
        }
    }

    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}
