import DrydockClient
import Foundation

/// `docker-credential-drydock`: the docker credential helper protocol (`get`, `store`, `erase`,
/// `list`) over Drydock's own token resolution, for this server's registry only.
public enum CredentialHelper {
    public static func main(_ arguments: [String]) async -> Int32 {
        guard let action = arguments.first else {
            FileHandle.standardError.write(Data("usage: docker-credential-drydock get|store|erase|list (docker, podman, buildah and skopeo call it; see 'drydock registry login')\n".utf8))
            return 1
        }
        let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        var connection = ConnectionOptions()
        connection.apiURL = nil  // what DRYDOCK_API_URL, DRYDOCK_TOKEN, CI or the saved login say
        connection.token = nil
        guard let server = try? connection.serverURL() else {
            print("drydock: no server configured (DRYDOCK_API_URL or 'drydock login')")
            return 1
        }
        let host = server.registryHost
        switch action {
        case "get":
            guard normalize(input) == host else {
                // The protocol's own words for "not mine", which clients treat as no credentials.
                print("credentials not found in native keychain")
                return 1
            }
            do {
                let (token, _) = try await connection.resolvedToken(server: server)
                guard let token else {
                    print("credentials not found in native keychain")
                    FileHandle.standardError.write(Data("drydock: not logged in: run 'drydock login --token TOKEN'\n".utf8))
                    return 1
                }
                let answer = try JSONSerialization.data(withJSONObject: ["ServerURL": host, "Username": "drydock", "Secret": token],
                                                        options: [.withoutEscapingSlashes])
                FileHandle.standardOutput.write(answer)
                FileHandle.standardOutput.write(Data("\n".utf8))
                return 0
            } catch {
                FileHandle.standardError.write(Data("drydock: \(error)\n".utf8))
                print("credentials not found in native keychain")
                return 1
            }
        case "list":
            let answer = (try? JSONSerialization.data(withJSONObject: [host: "drydock"])) ?? Data("{}".utf8)
            FileHandle.standardOutput.write(answer)
            FileHandle.standardOutput.write(Data("\n".utf8))
            return 0
        case "store":
            // `docker login HOST` with a Drydock token as the password: kept as the saved login.
            guard let object = try? JSONSerialization.jsonObject(with: Data(input.utf8)) as? [String: Any],
                  let url = object["ServerURL"] as? String, let secret = object["Secret"] as? String
            else { print("drydock: store expects {\"ServerURL\",\"Username\",\"Secret\"}"); return 1 }
            guard normalize(url) == host else { print("drydock: this helper keeps only \(host)'s credentials"); return 1 }
            do {
                try CLIConfiguration.save(SavedLogin(apiURL: server.absoluteString, token: secret))
                return 0
            } catch {
                print("drydock: \(error)")
                return 1
            }
        case "erase":
            // `docker logout` does not log drydock out: 'drydock logout' does that.
            return 0
        default:
            print("drydock: unknown credential helper action '\(action)' (get, store, erase, list)")
            return 1
        }
    }

    /// `https://host:port/v2/` → `host:port`.
    static func normalize(_ raw: String) -> String {
        var text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        for scheme in ["https://", "http://"] where text.hasPrefix(scheme) { text.removeFirst(scheme.count) }
        if let slash = text.firstIndex(of: "/") { text = String(text[..<slash]) }
        return text
    }
}

/// Running as `docker-drydock`, the docker CLI plugin.
public enum DockerPlugin {
    public static let metadata = #"{"SchemaVersion":"0.1.0","Vendor":"Drydock","Version":"\#(DrydockCommand.configuration.version)","ShortDescription":"Build on Drydock's remote builders (docker drydock build; docker build with configure-docker --default)","URL":"https://github.com/drydock"}"#

    /// The arguments for drydock itself: the docker CLI passes the plugin's name first.
    public static func arguments(_ arguments: [String]) -> [String] {
        var rest = Array(arguments.dropFirst())
        if rest.first == "drydock" { rest.removeFirst() }
        return rest
    }
}
