import ArgumentParser
import DrydockClient
import Foundation

/// Errors in the words the user typed: the API's field names become the flags that set them, and
/// a refused field keeps the server's reason.
enum CLIWords {
    /// The flag (or argument) each API field is set by.
    static let flags: [String: String] = [
        "expiresInSeconds": "--expires", "cachePolicy.keepGigabytes": "--keep-gb", "cachePolicy.keepDays": "--keep-days",
        "minutesPerMonth": "--minutes", "spendPerMonth": "--spend", "softThresholdPercent": "--warn-at",
        "platforms": "--platform", "tags": "--tag", "dockerfile": "--file", "buildArgs": "--build-arg", "labels": "--label",
        "secrets": "--secret", "registryCredentials": "registry credentials", "target": "--target", "projectId": "--project",
        "kind": "--kind", "role": "--role", "limit": "--limit", "cursor": "--cursor", "status": "--status", "month": "--month",
        "from": "--from", "to": "--to", "email": "the email address", "name": "the name",
    ]

    /// The flag for an API field path (`tags[0]` → `--tag`, `buildArgs.KEY` → `--build-arg KEY`).
    static func flag(for field: String) -> String? {
        if let exact = flags[field] { return exact }
        if let bracket = field.firstIndex(of: "["), let flag = flags[String(field[..<bracket])] {
            return flag
        }
        if let dot = field.firstIndex(of: "."), let flag = flags[String(field[..<dot])] {
            return "\(flag) \(field[field.index(after: dot)...])"
        }
        return nil
    }

    static func translate(_ error: any Error) -> any Error {
        guard let error = error as? DrydockClientError else { return error }
        switch error {
        case .api(let status, _, let detail, let fields):
            var message = detail
            // `expiresInSeconds: must be …` → `--expires: must be …`
            for field in fields {
                guard let flag = flag(for: field.field) else { continue }
                if message.hasPrefix(field.field + ":") {
                    message = flag + message.dropFirst(field.field.count)
                }
            }
            switch status {
            case 400, 409, 413: return CLIError(message)
            case 401: return CLIError("\(message) (log in again with 'drydock login --token TOKEN', or check DRYDOCK_TOKEN)")
            case 402: return CLIError(message)
            case 403: return CLIError("not allowed: \(message)")
            default: return CLIError(error.description)
            }
        default:
            return CLIError(error.description)
        }
    }
}

extension DrydockCommand {
    /// Runs the command line, reporting failures in the CLI's own words.
    public static func runMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: CLIWords.translate(error))
        }
    }
}
