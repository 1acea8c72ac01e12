import ArgumentParser
import DrydockProcess
import DrydockServer

struct WorkerToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker-token",
        abstract: "Mint a worker token for builders that serve every organization; printed once (last line of stdout).",
        discussion: HelpText.reflow("""
            Start a builder with it: DRYDOCK_API_URL=http://HOST:PORT DRYDOCK_WORKER_TOKEN=<token> drydock-builder.
            A builder for one organization only uses a token an admin makes with
            'drydock tokens create --kind worker --name NAME'.
            """))
    @OptionGroup var storage: StorageOptions

    @Option(help: "A name for the token (shown in token lists and build records).")
    var name: String

    func run() async throws {
        let secret = try await storage.runOperatorCommand { configuration, logger in
            try await ServerRunner.serverWideToken(configuration, kind: .worker, name: name, logger: logger)
        }
        print("Worker token '\(name)' (serves every organization); shown only this once:")
        print(secret)
    }
}
