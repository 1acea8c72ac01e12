import ArgumentParser
import DrydockAgent
import DrydockProcess
import Foundation
import Logging
import ServiceLifecycle

@main
struct DrydockAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drydock-agent",
        abstract: "Starts Drydock builders on demand: one per project and platform, more when a project allows autoscaling.",
        discussion: HelpText.reflow("""
            The agent reports to the server what it can start and long-polls it for builders to start
            or stop. Each builder serves one project and platform on that project's cache volume here
            (builders started by autoscaling work on a clone of it), and exits after the project's idle time.

            Configuration comes from the environment:

              DRYDOCK_API_URL
                  the server, e.g. http://127.0.0.1:8080
              DRYDOCK_AGENT_TOKEN
                  an agent token (dda_…): 'drydock tokens create --kind agent --name NAME'
                  serves one organization; 'drydock-server agent-token --name NAME' all
              DRYDOCK_AGENT_LAUNCHER
                  process (default: builders are child processes), command, or podman
              DRYDOCK_AGENT_COMMAND
                  for 'command': an executable run as 'COMMAND start|stop|status' with the
                  builder as JSON on stdin (examples/agent/kubernetes-launcher renders a
                  Job)
              DRYDOCK_AGENT_PODMAN_IMAGE
                  for 'podman': an image with drydock-builder and buildah
                  (examples/agent/podman-builder-image.sh assembles one from this machine)
              DRYDOCK_AGENT_PODMAN_ARGS
                  for 'podman': extra 'podman run' arguments
              DRYDOCK_AGENT_DATA_DIR
                  cache volumes, clones and builder logs (default /var/lib/drydock-agent
                  as root)
              DRYDOCK_AGENT_PLATFORMS
                  platforms its builders run, comma-separated (default: this machine's)
              DRYDOCK_AGENT_EMULATE
                  platforms its builders may run emulated with qemu-user-static, as each
                  project's emulation setting allows (e.g. linux/arm64)
              DRYDOCK_AGENT_MAX_BUILDERS
                  the most builders at once (default 4)
              DRYDOCK_AGENT_CPUS, DRYDOCK_AGENT_MEMORY_MB
                  per builder, for the command and podman launchers
              DRYDOCK_AGENT_NAME
                  shown in 'drydock agents list' (default: the host name)
              DRYDOCK_AGENT_BUILDER
                  the drydock-builder executable (default: the one beside this one)

            Builders inherit DRYDOCK_BUILDER_ISOLATION, DRYDOCK_CACHE_KEEP_BYTES and LOG_LEVEL.

            SIGTERM or SIGINT: start nothing more, let builders finish their jobs, exit. A second one: stop at once.
            """),
        version: "0.6.0")

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error (env LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        var logger = Logger(label: "drydock-agent")
        logger.logLevel = Logger.Level(rawValue: logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info") ?? .info
        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.fromEnvironment()
        } catch {
            throw ValidationError("\(error)")
        }
        let agent = Agent(configuration: configuration, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [agent], gracefulShutdownSignals: [], logger: logger))
        // Signals through a handler of its own (`SignalPipe`), not Dispatch's signal sources.
        let signals = try SignalPipe.signals([SIGTERM, SIGINT])
        let hardStop = Task {
            var seen = 0
            for await number in signals {
                let signal = number == SIGINT ? "SIGINT" : "SIGTERM"
                seen += 1
                if seen == 1 {
                    logger.notice("letting builders finish their jobs, then exiting; send \(signal) again to stop at once")
                    await group.triggerGracefulShutdown()
                } else {
                    logger.warning("stopping now: builders and their builds are stopped")
                    await agent.stopNow()
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
