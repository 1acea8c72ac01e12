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
    let keys: ServerKeys

    public init(keys: ServerKeys) {
        self.keys = keys
    }

    func seal(_ secrets: BuildSecrets) throws -> [UInt8] {
        let plain = try JSONEncoder().encode(secrets)
        guard let combined = try AES.GCM.seal(plain, using: try keys.current(.buildSecrets)).combined else { throw CocoaError(.coderInvalidValue) }
        return Array(combined)
    }

    /// Opens with the newest key that opens it (secrets sealed before a rotation still open).
    func open(_ sealed: [UInt8]) throws -> BuildSecrets {
        let box = try AES.GCM.SealedBox(combined: sealed)
        var lastError: (any Error)?
        for key in keys.all(.buildSecrets) {
            do {
                return try JSONDecoder().decode(BuildSecrets.self, from: try AES.GCM.open(box, using: key))
            } catch {
                lastError = error
            }
        }
        throw lastError ?? CryptoKitError.authenticationFailure
    }
}
