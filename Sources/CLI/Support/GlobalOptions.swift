import ArgumentParser
import DrydockClient
import Foundation

/// Options every command that talks to the server accepts.
public struct ConnectionOptions: ParsableArguments {
    @Option(name: .customLong("api-url"), help: ArgumentHelp("Drydock server URL.", discussion: "Overrides DRYDOCK_API_URL and the saved login."))
    var apiURL: String?

    @Option(help: ArgumentHelp("Drydock token.", discussion: "Overrides DRYDOCK_TOKEN and the saved login."))
    var token: String?

    public init() {}

    /// Flag, then environment, then saved login, then the default.
    func resolvedAPIURL() -> String {
        let env = ProcessInfo.processInfo.environment
        return apiURL ?? env["DRYDOCK_API_URL"].flatMap { $0.isEmpty ? nil : $0 }
            ?? CLIConfiguration.load()?.apiURL ?? CLIConfiguration.defaultAPIURL
    }

    func resolvedToken() -> String? {
        let env = ProcessInfo.processInfo.environment
        return token ?? env["DRYDOCK_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } ?? CLIConfiguration.load()?.token
    }

    func client(requireToken: Bool = true) throws -> DrydockClient {
        let raw = resolvedAPIURL()
        guard let url = URL(string: raw), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw CLIError("'\(raw)' is not a server URL; use something like http://127.0.0.1:8080")
        }
        let token = resolvedToken()
        if requireToken, token == nil {
            throw CLIError("not logged in: run 'drydock login --token TOKEN', or set DRYDOCK_TOKEN")
        }
        return DrydockClient(baseURL: url, token: token)
    }
}

public struct FormatOption: ParsableArguments {
    @Option(help: "Output format: table, json or csv.")
    var format: OutputFormat = .table

    public init() {}
}

public enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json, csv
}

/// Where the project comes from: --project, DRYDOCK_PROJECT, or drydock.json walking up.
public struct ProjectOption: ParsableArguments {
    @Option(help: ArgumentHelp("Project ID.", discussion: "Defaults to DRYDOCK_PROJECT, then the drydock.json found walking up from the current directory."))
    var project: String?

    public init() {}

    func resolved(from directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> String {
        if let project {
            let trimmed = project.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { throw CLIError("--project is empty: pass a project ID (see 'drydock projects list')") }
            return trimmed
        }
        if let env = ProcessInfo.processInfo.environment["DRYDOCK_PROJECT"], !env.isEmpty { return env }
        if let found = ProjectFile.find(from: directory) { return found.id }
        throw CLIError("no project: pass --project ID, set DRYDOCK_PROJECT, or run 'drydock init' to write drydock.json")
    }
}

/// A CLI failure, printed as one line.
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
