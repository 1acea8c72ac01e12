import DrydockClient
import DrydockWireFormats
import Foundation

/// Credentials for external registries named in `--push` tags, from the files docker and podman
/// keep (`~/.docker/config.json`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`).
enum RegistryAuthFiles {
    static func credentials(for tags: [String]) -> [Components.Schemas.RegistryCredential] {
        let hosts = Set(tags.compactMap { ImageReference.registryHost(of: $0) })
        guard !hosts.isEmpty else { return [] }
        let env = ProcessInfo.processInfo.environment
        var files: [String] = []
        if let file = env["REGISTRY_AUTH_FILE"] { files.append(file) }
        if let runtime = env["XDG_RUNTIME_DIR"] { files.append(runtime + "/containers/auth.json") }
        files.append((env["DOCKER_CONFIG"] ?? NSHomeDirectory() + "/.docker") + "/config.json")
        var out: [Components.Schemas.RegistryCredential] = []
        for host in hosts.sorted() {
            for file in files {
                guard let data = FileManager.default.contents(atPath: file),
                      let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let auths = json["auths"] as? [String: Any],
                      let entry = (auths[host] ?? auths["https://\(host)"]) as? [String: Any],
                      let encoded = entry["auth"] as? String, let decoded = Data(base64Encoded: encoded),
                      let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":")
                else { continue }
                out.append(.init(registry: host, username: String(pair[..<colon]), password: String(pair[pair.index(after: colon)...])))
                break
            }
        }
        return out
    }
}
