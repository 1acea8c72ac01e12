import ArgumentParser
import DrydockClient
import Foundation

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a token against the server and save it for later commands.",
        discussion: "The token and URL are saved in $XDG_CONFIG_HOME/drydock/config.json, readable only by you.")

    @Option(help: "The token to save (ddu_…, ddo_…, ddp_…).")
    var token: String

    @Option(name: .customLong("api-url"), help: "Server URL (default: DRYDOCK_API_URL, the saved URL, or http://127.0.0.1:8080).")
    var apiURL: String?

    func run() async throws {
        var connection = ConnectionOptions()
        connection.apiURL = apiURL
        connection.token = token
        let client = try await connection.client()
        let url = client.baseURL.absoluteString
        let caller = try await client.whoami()
        try CLIConfiguration.save(SavedLogin(apiURL: url, token: token))
        let who = caller.user?.email ?? "a \(caller.token.kind.rawValue) token (\(caller.token.name))"
        print("Logged in to \(url) as \(who) in organization \(caller.organization.name).")
    }
}
