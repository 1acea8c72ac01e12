import Foundation
import NIOSSL
import PostgresNIO

/// A parsed `postgres://user:password@host:port/database` URL.
/// `?host=/path/to/socket/dir` selects a Unix socket, as libpq does.
public struct DatabaseURL: Sendable {
    /// Connections each server keeps to PostgreSQL at most.
    static let poolSize = 20
    /// Connections of the pool kept for job heartbeats alone (`Database.heartbeatClient`).
    static let heartbeatPoolSize = 4

    public var username: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var socketDirectory: String?
    public var requireTLS: Bool

    public init(_ string: String) throws {
        guard let components = URLComponents(string: string),
              let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ConfigurationError("DRYDOCK_DATABASE_URL must look like postgres://user:password@host:5432/database")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { a, _ in a }
        self.username = components.percentEncodedUser?.removingPercentEncoding ?? query["user"] ?? "postgres"
        self.password = components.percentEncodedPassword?.removingPercentEncoding ?? query["password"]
        self.host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        self.port = components.port ?? 5432
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? self.username : path
        if let socket = query["host"], socket.hasPrefix("/") { self.socketDirectory = socket }
        self.requireTLS = ["require", "verify-ca", "verify-full"].contains(query["sslmode"] ?? "")
    }

    public init(socketDirectory: String, port: Int = 5432, username: String, database: String) {
        self.username = username
        self.password = nil
        self.host = "localhost"
        self.port = port
        self.database = database
        self.socketDirectory = socketDirectory
        self.requireTLS = false
    }

    public func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)",
                username: username, password: password, database: database
            )
        } else {
            let tls: PostgresClient.Configuration.TLS = requireTLS
                ? .require(.makeClientConfiguration()) : .disable
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = Self.poolSize
        return configuration
    }

    /// The same server, another database.
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// For messages: the URL without its password.
    public var redacted: String {
        if let socketDirectory { return "postgres://\(username)@/\(database)?host=\(socketDirectory)" }
        return "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }
}
