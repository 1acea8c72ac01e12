import Crypto
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The keys every replica must share: the one that signs registry bearer tokens and the one that
/// seals build secrets. Kept in PostgreSQL (`server_keys`), generated once by whichever server
/// starts first (a single server's existing key files are adopted, so tokens and sealed secrets
/// from before stay valid). Signing uses the newest version; verifying and opening try every
/// version, so a rotation keeps old tokens good until they expire.
public final class ServerKeys: Sendable {
    public enum Name: String, Sendable, CaseIterable {
        case registryToken = "registry-token"
        case buildSecrets = "build-secrets"
    }

    /// Newest first, per name.
    private let keys = Mutex<[Name: [SymmetricKey]]>([:])
    let dataDirectory: URL?

    /// Keys to be loaded from the database (`load`) before the server answers requests.
    public init(dataDirectory: URL?) {
        self.dataDirectory = dataDirectory
    }

    /// Keys from the data directory's files only (a process without a database, and tests).
    public static func local(dataDirectory: URL) throws -> ServerKeys {
        let keys = ServerKeys(dataDirectory: dataDirectory)
        for name in Name.allCases {
            let key = try keys.fileKey(name) ?? keys.createFileKey(name)
            keys.keys.withLock { $0[name] = [key] }
        }
        return keys
    }

    /// The key to sign or seal with.
    func current(_ name: Name) throws -> SymmetricKey {
        // Requests wait for the schema, and the keys are loaded before it opens.
        guard let key = keys.withLock({ $0[name]?.first }) else { throw DomainError.internal("the server's \(name.rawValue) key is not loaded") }
        return key
    }

    /// Every version, newest first, to verify or open with.
    func all(_ name: Name) -> [SymmetricKey] {
        keys.withLock { $0[name] ?? [] }
    }

    /// Loads the keys from PostgreSQL, creating each one that is missing (from the local file
    /// when there is one) in a way concurrent starts agree on.
    func load(from database: Database, logger: Logger) async throws {
        for name in Name.allCases {
            var found = try await versions(name, database: database, logger: logger)
            if found.isEmpty {
                let seed = try fileKey(name) ?? SymmetricKey(size: .bits256)
                let bytes = seed.withUnsafeBytes { ByteBuffer(bytes: $0) }
                try await database.query(
                    """
                    INSERT INTO server_keys (name, version, key) VALUES (\(name.rawValue), 1, \(bytes))
                    ON CONFLICT (name, version) DO NOTHING
                    """, logger: logger)
                found = try await versions(name, database: database, logger: logger)
            }
            guard !found.isEmpty else { throw DomainError.internal("no \(name.rawValue) key in the database") }
            keys.withLock { $0[name] = found }
        }
    }

    /// Adds a new version of every key (`drydock-server rotate-keys`): new tokens and seals use
    /// it; the older versions still verify and open until they are removed (`keep` newest kept).
    static func rotate(database: Database, keep: Int = 3, logger: Logger) async throws {
        for name in Name.allCases {
            let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { ByteBuffer(bytes: $0) }
            try await database.transaction(logger: logger) { tx in
                try await tx.query(
                    """
                    INSERT INTO server_keys (name, version, key)
                    SELECT \(name.rawValue), coalesce(max(version), 0) + 1, \(fresh) FROM server_keys WHERE name = \(name.rawValue)
                    """, logger: logger)
                try await tx.query(
                    """
                    DELETE FROM server_keys WHERE name = \(name.rawValue) AND version NOT IN (
                        SELECT version FROM server_keys WHERE name = \(name.rawValue) ORDER BY version DESC LIMIT \(keep))
                    """, logger: logger)
            }
        }
    }

    private func versions(_ name: Name, database: Database, logger: Logger) async throws -> [SymmetricKey] {
        var out: [SymmetricKey] = []
        for try await bytes in try await database.query(
            "SELECT key FROM server_keys WHERE name = \(name.rawValue) ORDER BY version DESC", logger: logger
        ).decode(ByteBuffer.self) where bytes.readableBytes == 32 {
            out.append(SymmetricKey(data: Array(buffer: bytes)))
        }
        return out
    }

    private func file(_ name: Name) -> URL? {
        dataDirectory?.appendingPathComponent("\(name.rawValue).key")
    }

    private func fileKey(_ name: Name) throws -> SymmetricKey? {
        guard let file = file(name), let data = try? Data(contentsOf: file), data.count == 32 else { return nil }
        return SymmetricKey(data: data)
    }

    private func createFileKey(_ name: Name) throws -> SymmetricKey {
        let fresh = SymmetricKey(size: .bits256)
        guard let file = file(name) else { return fresh }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: file.path, contents: fresh.withUnsafeBytes { Data($0) }, attributes: [.posixPermissions: 0o600])
        else { throw CocoaError(.fileWriteNoPermission) }
        return fresh
    }
}
