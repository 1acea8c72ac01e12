import Crypto
import Foundation

/// What a build carries that must never be stored in clear: `--secret` values and credentials
/// for external registries. Sealed with AES-GCM under a key kept in the data directory
/// (readable only by the server), handed to the worker of each job, and erased when the build ends.
struct BuildSecrets: Codable, Sendable, Equatable {
    struct Secret: Codable, Sendable, Equatable {
        var id: String
        var value: String
    }

    struct Credential: Codable, Sendable, Equatable {
        var registry: String
        var username: String
        var password: String
    }

    var secrets: [Secret] = []
    var credentials: [Credential] = []

    var isEmpty: Bool { secrets.isEmpty && credentials.isEmpty }
}

public struct BuildSecretBox: Sendable {
    let key: SymmetricKey

    public init(dataDirectory: URL) throws {
        let file = dataDirectory.appendingPathComponent("build-secrets.key")
        if let existing = try? Data(contentsOf: file), existing.count == 32 {
            key = SymmetricKey(data: existing)
        } else {
            let fresh = SymmetricKey(size: .bits256)
            try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(
                atPath: file.path, contents: fresh.withUnsafeBytes { Data($0) }, attributes: [.posixPermissions: 0o600])
            else { throw CocoaError(.fileWriteNoPermission) }
            key = fresh
        }
    }

    func seal(_ secrets: BuildSecrets) throws -> [UInt8] {
        let plain = try JSONEncoder().encode(secrets)
        guard let combined = try AES.GCM.seal(plain, using: key).combined else { throw CocoaError(.coderInvalidValue) }
        return Array(combined)
    }

    func open(_ sealed: [UInt8]) throws -> BuildSecrets {
        let plain = try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key)
        return try JSONDecoder().decode(BuildSecrets.self, from: plain)
    }
}
