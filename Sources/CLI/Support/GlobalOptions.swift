import ArgumentParser
import DrydockClient
import DrydockProcess
import Foundation

/// Options every command that talks to the server accepts.
public struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("api-url"), help: ArgumentHelp("Drydock server URL.", discussion: "Overrides DRYDOCK_API_URL and the saved login."))
    var apiURL: String?

    @Option(help: ArgumentHelp("Drydock token.", discussion: HelpText.reflow("""
        The token is looked for in this order: --token, DRYDOCK_TOKEN, an OIDC exchange when running \
        in CI (GitHub Actions with 'id-token: write', GitLab's DRYDOCK_OIDC_TOKEN, CircleCI, Buildkite), \
        then the saved login. 'drydock whoami' says which was used.
        """)))
    var token: String?

    public init() {}

    /// Flag, then environment, then saved login, then the default.
    func resolvedAPIURL() -> String {
        let env = ProcessInfo.processInfo.environment
        return apiURL ?? env["DRYDOCK_API_URL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? CLIConfiguration.load()?.apiURL ?? CLIConfiguration.defaultAPIURL
    }

    /// The token and where it came from, without an OIDC exchange.
    func localToken() -> (String?, TokenSource) {
        let env = ProcessInfo.processInfo.environment
        if let token { return (token, .flag) }
        if let value = env["DRYDOCK_TOKEN"], !value.isEmpty { return (value, .environment) }
        if let provider = CIProvider.detect(env) { return (nil, .oidc(provider)) }
        if let saved = CLIConfiguration.load()?.token { return (saved, .savedLogin) }
        return (nil, .none)
    }

    /// The token in use: `--token`, `DRYDOCK_TOKEN`, an OIDC exchange in CI, the saved login.
    func resolvedToken(server: URL) async throws -> (token: String?, source: TokenSource) {
        let (token, source) = localToken()
        if case .oidc(let provider) = source {
            let grant = try await OIDCExchangeCache.shared.token(server: server, provider: provider,
                                                                  environment: ProcessInfo.processInfo.environment)
            return (grant.token, source)
        }
        return (token, source)
    }

    func client(requireToken: Bool = true) async throws -> DrydockClient {
        try await clientAndSource(requireToken: requireToken).client
    }

    func serverURL() throws -> URL {
        let raw = resolvedAPIURL()
        guard var url = URL(string: raw), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw CLIError("'\(raw)' is not a server URL; use something like http://127.0.0.1:8080")
        }
        // The server's address is what users copy; the API's own prefix is added by the client.
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix("/api/v1") { path.removeLast("/api/v1".count) }
        if path != url.path, var components = URLComponents(url: url, resolvingAgainstBaseURL: false) {
            components.path = path
            if let trimmed = components.url { url = trimmed }
        }
        return url
    }

    func clientAndSource(requireToken: Bool = true) async throws -> (client: DrydockClient, source: TokenSource) {
        let url = try serverURL()
        if !requireToken, case (nil, .oidc) = localToken() {
            // Commands that work without a token do not start an exchange for one.
            return (DrydockClient(baseURL: url, token: nil), .none)
        }
        let (token, source) = try await resolvedToken(server: url)
        if requireToken, token == nil {
            throw CLIError("not logged in: run 'drydock login --token TOKEN', or set DRYDOCK_TOKEN (in CI, trust the job instead: 'drydock projects trust add')")
        }
        return (DrydockClient(baseURL: url, token: token), source)
    }
}

public struct FormatOption: ParsableArguments {
    @Option(help: "Output format: table, json or csv.")
    var format: OutputFormat = .table

    public init() {}
}

/// `--limit` and `--cursor` for lists the API pages through. Without `--limit` a list shows
/// everything (or `defaultLimit` items, where there can be very many); `--format json` carries the
/// next page's cursor.
public struct PagingOptions: ParsableArguments {
    @Option(help: "Show at most this many (1-200); the JSON output's nextCursor gives the next page.")
    var limit: Int?

    @Option(help: "Continue a list from the nextCursor a previous --limit run printed.")
    var cursor: String?

    public init() {}

    public func validate() throws {
        if let limit, !(1...200).contains(limit) { throw ValidationError("--limit must be between 1 and 200 (got \(limit))") }
        if let cursor, cursor.isEmpty { throw ValidationError("--cursor is empty") }
    }

    /// Pages through a list: one page when --limit or --cursor is given (up to `defaultLimit`
    /// items otherwise), else every page.
    func fetch<T>(defaultLimit: Int? = nil, _ page: (Int, String?) async throws -> ([T], String?)) async throws -> (items: [T], nextCursor: String?) {
        if limit != nil || cursor != nil || defaultLimit != nil {
            return try await page(limit ?? defaultLimit ?? 200, cursor)
        }
        var items: [T] = []
        var next: String?
        repeat {
            let (more, cursor) = try await page(200, next)
            items += more
            next = cursor
        } while next != nil
        return (items, nil)
    }
}

public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json, csv
}

/// Where the project comes from: --project, DRYDOCK_PROJECT, or drydock.json walking up.
public struct ProjectOption: ParsableArguments {
    @Option(help: ArgumentHelp("Project ID or name.", discussion: "Defaults to DRYDOCK_PROJECT, then the drydock.json found walking up from the current directory."))
    var project: String?

    public init() {}

    func resolved(from directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> String {
        if let project {
            let trimmed = project.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { throw CLIError("--project is empty: pass a project ID or name (see 'drydock projects list')") }
            return trimmed
        }
        if let env = ProcessInfo.processInfo.environment["DRYDOCK_PROJECT"], !env.isEmpty { return env }
        if let found = ProjectFile.find(from: directory) { return found.id }
        throw CLIError("no project: pass --project NAME or ID, set DRYDOCK_PROJECT, or run 'drydock init' to write drydock.json")
    }
}

/// A CLI failure, printed as one line.
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
