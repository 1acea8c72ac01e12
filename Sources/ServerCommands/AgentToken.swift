import ArgumentParser
import DrydockProcess
import DrydockServer

struct AgentToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-token",
        abstract: "Mint an agent token for drydock-agents that start builders for every organization; printed once (last line of stdout).",
        discussion: HelpText.reflow("""
            Start an agent with it: DRYDOCK_API_URL=http://HOST:PORT DRYDOCK_AGENT_TOKEN=<token> drydock-agent.
            An agent for one organization only uses a token an admin makes with
            'drydock tokens create --kind agent --name NAME'.
            """))
    @OptionGroup var storage: StorageOptions

    @Option(help: "A name for the token (shown in token lists and build records).")
    var name: String

    func run() async throws {
        let secret = try await storage.runOperatorCommand { configuration, logger in
            try await ServerRunner.serverWideToken(configuration, kind: .agent, name: name, logger: logger)
        }
        print("Agent token '\(name)' (serves every organization); shown only this once:")
        print(secret)
    }
}
