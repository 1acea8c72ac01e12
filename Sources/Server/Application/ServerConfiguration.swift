import Foundation
import Prometheus

/// Everything `drydock-server` reads from its environment and flags.
public struct ServerConfiguration: Sendable {
    /// A `postgres://` URL; `nil` runs a private cluster inside `dataDirectory`.
    public var databaseURL: String?
    public var host: String
    public var port: Int
    /// Blobs, build contexts and (embedded mode) the PostgreSQL cluster live here.
    public var dataDirectory: URL
    /// Where registry blobs, upload sessions' data and build contexts live
    /// (`DRYDOCK_BLOB_STORE=file:///path`): a directory every replica mounts. Nil: the data
    /// directory (one server).
    public var blobStoreDirectory: URL?
    /// `DRYDOCK_BLOB_STORE=s3://…`: blobs, uploads and contexts in an S3-compatible store.
    public var blobStoreS3: S3Settings?
    /// `DRYDOCK_ZERO_COPY=false` serves filesystem blobs through buffers instead of `sendfile`
    /// (to measure the difference; the default is on).
    public var zeroCopy = true
    /// The URL clients use to reach this server (registry token realm). Without it, the realm
    /// is built from the Host header of each request.
    public var publicURL: String?
    /// Largest JSON request body the API accepts.
    public var maxJSONBodyBytes: Int = 1 << 20
    /// Largest build context accepted (`DRYDOCK_MAX_CONTEXT_BYTES`, default 2 GiB).
    public var maxContextBytes: Int64 = 2 << 30
    /// How long a worker keeps a job without a heartbeat (`DRYDOCK_JOB_LEASE_SECONDS`, default 15).
    public var jobLease: Duration = .seconds(15)
    /// How long a build waits for an online builder of its platform before it fails
    /// (`DRYDOCK_QUEUE_TIMEOUT_SECONDS`, default 600).
    public var queueTimeout: Duration = .seconds(600)
    /// How long a job waits for a builder of its platform before an emulating one may take it
    /// (`DRYDOCK_EMULATION_FALLBACK_SECONDS`).
    public var emulationFallback: Duration = .seconds(10)
    /// How long a graceful shutdown (SIGTERM) may take before what is left is cancelled
    /// (`DRYDOCK_SHUTDOWN_TIMEOUT_SECONDS`, default 60): long-polls and log follows end at once,
    /// requests in flight get this long.
    public var shutdownTimeout: Duration = .seconds(60)
    /// How often expired leases (and jobs no builder serves) are looked for.
    public var leaseCheckInterval: Duration = .seconds(2)
    /// How often each project's registry storage is sampled for metering.
    public var storageSampleInterval: Duration = .seconds(3600)
    /// How long a request waits for PostgreSQL before it is answered 503
    /// (`DRYDOCK_DATABASE_WAIT_SECONDS`, default 5).
    public var databaseWaitLimit: Duration = .seconds(5)
    /// Connections to PostgreSQL kept open even when idle (`DRYDOCK_DATABASE_MIN_CONNECTIONS`,
    /// default 8, at most the pool's 20), and with any, the 4 of job heartbeats' own pool: a
    /// burst of claims after a quiet spell does not wait for connections to be opened. 0 opens
    /// them only on demand (they close after 60 s idle).
    public var databaseMinConnections: Int = 8
    /// How long a kept-alive connection may sit idle, or a request body stall, before it is closed
    /// (`DRYDOCK_IDLE_TIMEOUT_SECONDS`, default 60).
    public var idleTimeout: Duration = .seconds(60)
    /// How long a new connection has to send its first request's headers
    /// (`DRYDOCK_HEADER_TIMEOUT_SECONDS`, default 10).
    public var headerTimeout: Duration = .seconds(10)
    /// Most connections open at once (`DRYDOCK_MAX_CONNECTIONS`); nil derives it from the
    /// descriptor limit (half of it less 128, at most 10,000). Connections past it wait.
    public var maxConnections: Int?
    /// Where `/metrics` reads from: the registry `main` installed as the metrics backend
    /// (`Observability.bootstrap()`); nil serves an empty exposition.
    public var metrics: PrometheusCollectorRegistry?
    /// OIDC issuers and audience for the CI token exchange (`DRYDOCK_OIDC_ISSUERS`, `DRYDOCK_OIDC_AUDIENCE`).
    public var oidc = OIDCSettings()
    /// Where `GET /downloads/<file>` serves the CLI from (`DRYDOCK_DOWNLOADS_DIR`); nil means the
    /// directory of the running `drydock-server`, where `drydock` is installed beside it.
    public var downloadsDirectory: URL?

    public init(
        databaseURL: String?,
        host: String = "127.0.0.1",
        port: Int = 8080,
        dataDirectory: URL,
        publicURL: String? = nil
    ) {
        self.databaseURL = databaseURL
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// Reads `DRYDOCK_*` variables, with explicit overrides (from flags) taking precedence.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment,
        host: String? = nil,
        port portFlag: Int? = nil,
        dataDirectory: String? = nil,
        databaseURL: String? = nil
    ) throws -> ServerConfiguration {
        let host = host ?? environment["DRYDOCK_HOST"].nonEmpty ?? "127.0.0.1"
        let port: Int
        if let portFlag {
            port = portFlag
        } else if let raw = environment["DRYDOCK_PORT"].nonEmpty {
            guard let parsed = Int(raw), (0...65535).contains(parsed) else {
                throw ConfigurationError("DRYDOCK_PORT must be a port number (0-65535), not '\(raw)'")
            }
            port = parsed
        } else {
            port = 8080
        }
        let dataDir = dataDirectory ?? environment["DRYDOCK_DATA_DIR"].nonEmpty ?? defaultDataDirectory(environment)
        let databaseURL = databaseURL ?? environment["DRYDOCK_DATABASE_URL"].nonEmpty
        if let databaseURL { _ = try DatabaseURL(databaseURL) }
        var configuration = ServerConfiguration(
            databaseURL: databaseURL,
            host: host,
            port: port,
            dataDirectory: URL(fileURLWithPath: dataDir, isDirectory: true).standardizedFileURL,
            publicURL: environment["DRYDOCK_PUBLIC_URL"].nonEmpty
        )
        if let raw = environment["DRYDOCK_MAX_CONTEXT_BYTES"].nonEmpty {
            guard let value = Int64(raw), value > 0 else {
                throw ConfigurationError("DRYDOCK_MAX_CONTEXT_BYTES must be a positive number of bytes, not '\(raw)'")
            }
            configuration.maxContextBytes = value
        }
        if let value = try seconds("DRYDOCK_JOB_LEASE_SECONDS", in: 3...3600, environment) { configuration.jobLease = value }
        if let value = try seconds("DRYDOCK_QUEUE_TIMEOUT_SECONDS", in: 10...86_400, environment) { configuration.queueTimeout = value }
        if let value = try seconds("DRYDOCK_SHUTDOWN_TIMEOUT_SECONDS", in: 1...3600, environment) { configuration.shutdownTimeout = value }
        if let value = try seconds("DRYDOCK_EMULATION_FALLBACK_SECONDS", in: 0...3600, environment) { configuration.emulationFallback = value }
        if let value = try seconds("DRYDOCK_DATABASE_WAIT_SECONDS", in: 1...300, environment) { configuration.databaseWaitLimit = value }
        if let raw = environment["DRYDOCK_DATABASE_MIN_CONNECTIONS"].nonEmpty {
            guard let value = Int(raw), (0...DatabaseURL.poolSize).contains(value) else {
                throw ConfigurationError("DRYDOCK_DATABASE_MIN_CONNECTIONS must be a number of connections from 0 to \(DatabaseURL.poolSize), not '\(raw)'")
            }
            configuration.databaseMinConnections = value
        }
        if let value = try seconds("DRYDOCK_IDLE_TIMEOUT_SECONDS", in: 1...3600, environment) { configuration.idleTimeout = value }
        if let value = try seconds("DRYDOCK_HEADER_TIMEOUT_SECONDS", in: 1...600, environment) { configuration.headerTimeout = value }
        configuration.oidc = try OIDCSettings.parse(issuers: environment["DRYDOCK_OIDC_ISSUERS"].nonEmpty,
                                                    audience: environment["DRYDOCK_OIDC_AUDIENCE"].nonEmpty)
        if let raw = environment["DRYDOCK_BLOB_STORE"].nonEmpty {
            if raw.hasPrefix("s3://") {
                configuration.blobStoreS3 = try S3Settings.parse(raw, environment: environment)
            } else {
                configuration.blobStoreDirectory = try blobStore(raw)
            }
        }
        if let raw = environment["DRYDOCK_ZERO_COPY"].nonEmpty {
            guard let value = ["true": true, "1": true, "false": false, "0": false][raw.lowercased()] else {
                throw ConfigurationError("DRYDOCK_ZERO_COPY must be true or false, not '\(raw)'")
            }
            configuration.zeroCopy = value
        }
        if let raw = environment["DRYDOCK_DOWNLOADS_DIR"].nonEmpty {
            configuration.downloadsDirectory = URL(fileURLWithPath: raw, isDirectory: true)
        }
        if let raw = environment["DRYDOCK_MAX_CONNECTIONS"].nonEmpty {
            guard let value = Int(raw), (1...1_000_000).contains(value) else {
                throw ConfigurationError("DRYDOCK_MAX_CONNECTIONS must be 1 to 1000000, not '\(raw)'")
            }
            configuration.maxConnections = value
        }
        return configuration
    }

    /// `file:///shared/dir` (or an absolute path).
    static func blobStore(_ raw: String) throws -> URL {
        let path = raw.hasPrefix("file://") ? String(raw.dropFirst("file://".count)) : raw
        guard path.hasPrefix("/") else {
            throw ConfigurationError("DRYDOCK_BLOB_STORE must be file:///ABSOLUTE/PATH, not '\(raw)'")
        }
        return URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    static func seconds(_ name: String, in range: ClosedRange<Int>, _ environment: [String: String]) throws -> Duration? {
        guard let raw = environment[name].nonEmpty else { return nil }
        guard let value = Int(raw), range.contains(value) else {
            throw ConfigurationError("\(name) must be a number of seconds from \(range.lowerBound) to \(range.upperBound), not '\(raw)'")
        }
        return .seconds(value)
    }

    /// `$XDG_DATA_HOME/drydock` (or `~/.local/share/drydock`); `/var/lib/drydock` for root,
    /// because the embedded PostgreSQL then runs as the `postgres` user, which cannot enter `/root`.
    static func defaultDataDirectory(_ environment: [String: String]) -> String {
        if geteuid() == 0 { return "/var/lib/drydock" }
        if let xdg = environment["XDG_DATA_HOME"].nonEmpty { return xdg + "/drydock" }
        let home = environment["HOME"].nonEmpty ?? NSHomeDirectory()
        return home + "/.local/share/drydock"
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? {
        guard let self, !self.isEmpty else { return nil }
        return self
    }
}
