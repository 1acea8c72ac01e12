import ArgumentParser
import DrydockBuilder
import DrydockProcess
import Foundation
import Logging
import ServiceLifecycle

@main
struct DrydockBuilderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drydock-builder",
        abstract: "A Drydock builder worker: runs builds with buildah on a persistent per-project cache.",
        discussion: HelpText.reflow("""
            Configuration comes from the environment:

              DRYDOCK_API_URL
                  the server, e.g. http://127.0.0.1:8080
              DRYDOCK_WORKER_TOKEN
                  a worker token (ddw_…): 'drydock tokens create --kind worker --name
                  NAME' serves one organization; 'drydock-server worker-token --name NAME'
                  all
              DRYDOCK_BUILDER_PLATFORMS
                  platforms run natively, comma-separated (default: this machine's, with
                  linux/386 on amd64); 'none' for a builder that only emulates
              DRYDOCK_BUILDER_EMULATE
                  platforms it may run emulated with qemu-user-static and binfmt_misc,
                  e.g. linux/arm64,linux/arm/v7 (checked at start; root registers
                  handlers)
              DRYDOCK_CACHE_DIR
                  where each project's layer cache lives (default /var/lib/drydock-builder
                  as root)
              DRYDOCK_BUILDER_CONCURRENCY
                  jobs at once (default 1)
              DRYDOCK_BUILDER_NAME
                  shown in builds (default: the host name)
              DRYDOCK_BUILDER_ISOLATION
                  oci (default when runc is installed: each RUN step in its own PID and
                  network namespaces, none of this host's loopback) or chroot
              DRYDOCK_CACHE_KEEP_BYTES
                  a cache size limit in bytes over every project's policy (small disks,
                  tests)

            Started by drydock-agent (not by hand): DRYDOCK_BUILDER_REGISTRATION (its one-time secret, instead of a
            worker token; the cache directory is then the project's volume), DRYDOCK_BUILDER_IDLE_SECONDS (exit after
            that long without a job) and DRYDOCK_BUILDER_PARENT_PID (stop when the agent dies).

            After each job the project's cache policy is applied: least recently used images go first until the
            cache is within its size, and nothing unused for longer than its days stays.

            Needs buildah on overlay storage (Debian: apt-get install buildah runc netavark aardvark-dns).

            SIGTERM or SIGINT: stop taking jobs, finish the ones running, exit 0. A second one: stop at once.
            """),
        version: "0.6.0")

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
        let group = ServiceGroup(configuration: .init(
            services: [builder], gracefulShutdownSignals: [], logger: logger))
        // Signals through a handler of its own (`SignalPipe`), not Dispatch's signal sources.
        let signals = try SignalPipe.signals([SIGTERM, SIGINT])
        // The first signal is the group's graceful shutdown; a second one stops at once.
        let hardStop = Task {
            var seen = 0
            for await number in signals {
                let signal = number == SIGINT ? "SIGINT" : "SIGTERM"
                seen += 1
                if seen == 1 {
                    logger.notice("finishing the jobs in hand, then exiting; send \(signal) again to stop at once")
                    await group.triggerGracefulShutdown()
                } else {
                    logger.warning("stopping now: running builds are killed")
                    await builder.stopNow()
                    Foundation.exit(130)
                }
            }
        }
        defer { hardStop.cancel() }
        do {
            try await group.run()
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
