import DrydockClient
import DrydockProcess
import DrydockWireFormats
import Foundation

/// Credentials for external registries named in `--push` tags, found the way docker, podman and
/// skopeo find them: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, then
/// `$DOCKER_CONFIG/config.json` or `$HOME/.docker/config.json`; in each, a credential helper
/// named for the registry (`credHelpers`), the inline `auths` entry, or the default helper
/// (`credsStore`), as docker reads them.
enum RegistryAuthFiles {
    struct Found {
        var credential: Components.Schemas.RegistryCredential
        /// Where it came from, to tell the user (never the secret).
        var source: String
    }

    static func credentials(for tags: [String], environment: [String: String] = ProcessInfo.processInfo.environment) async -> [Found] {
        let hosts = Set(tags.compactMap { ImageReference.registryHost(of: $0) })
        var out: [Found] = []
        for host in hosts.sorted() {
            if let found = await credential(for: host, environment: environment) { out.append(found) }
        }
        return out
    }

    static func files(_ env: [String: String]) -> [String] {
        var files: [String] = []
        if let file = env["REGISTRY_AUTH_FILE"], !file.isEmpty { files.append(file) }
        if let runtime = env["XDG_RUNTIME_DIR"], !runtime.isEmpty { files.append(runtime + "/containers/auth.json") }
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let dockerConfig = env["DOCKER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.docker"
        files.append(dockerConfig + "/config.json")
        return files
    }

    static func credential(for host: String, environment env: [String: String]) async -> Found? {
        let keys = host == "docker.io" ? ["docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
            : [host, "https://\(host)", "http://\(host)"]
        for file in files(env) {
            guard let data = FileManager.default.contents(atPath: file),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
            let home = env["HOME"] ?? NSHomeDirectory()
            let shown = !home.isEmpty && file.hasPrefix(home + "/") ? "~" + file.dropFirst(home.count) : file
            if let helpers = json["credHelpers"] as? [String: String], let helper = keys.lazy.compactMap({ helpers[$0] }).first,
               let found = await fromHelper(helper, host: host, keys: keys, file: shown) {
                return found
            }
            if let auths = json["auths"] as? [String: Any] {
                for key in keys {
                    guard let entry = auths[key] as? [String: Any], let encoded = entry["auth"] as? String,
                          let decoded = Data(base64Encoded: encoded), let pair = String(data: decoded, encoding: .utf8),
                          let colon = pair.firstIndex(of: ":") else { continue }
                    let user = String(pair[..<colon])
                    return Found(credential: .init(registry: host, username: user, password: String(pair[pair.index(after: colon)...])),
                                 source: "\(shown) (user \(user))")
                }
            }
            if let store = json["credsStore"] as? String, !store.isEmpty,
               let found = await fromHelper(store, host: host, keys: keys, file: shown) {
                return found
            }
        }
        return nil
    }

    /// `docker-credential-NAME get`, the server URL on standard input, `{"Username","Secret"}` out.
    static func fromHelper(_ name: String, host: String, keys: [String], file: String) async -> Found? {
        for key in keys {
            guard let outcome = try? await ChildProcess.run(["docker-credential-\(name)", "get"], input: key), outcome.succeeded,
                  let data = outcome.output.data(using: .utf8),
                  let answer = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let user = answer["Username"] as? String, let secret = answer["Secret"] as? String, !secret.isEmpty
            else { continue }
            return Found(credential: .init(registry: host, username: user, password: secret),
                         source: "docker-credential-\(name) named in \(file) (user \(user))")
        }
        return nil
    }
}
