import DrydockProcess
import Foundation
import Logging

/// The private PostgreSQL cluster `drydock-server` runs inside its data directory when no
/// `DRYDOCK_DATABASE_URL` is given. It uses the system's `initdb`/`pg_ctl`, listens only on a
/// Unix socket in the data directory, and runs as the `postgres` user when the server runs as root
/// (PostgreSQL refuses to run as root).
public struct EmbeddedPostgres: Sendable {
    public let clusterDirectory: URL
    public let socketDirectory: URL
    public let logFile: URL
    let binDirectory: URL
    /// The unprivileged user the cluster runs as, or nil to run as ourselves.
    let runAs: String?
    static let superuser = "drydock"
    static let database = "drydock"

    public init(dataDirectory: URL) throws {
        self.clusterDirectory = dataDirectory.appendingPathComponent("postgres", isDirectory: true)
        self.socketDirectory = dataDirectory.appendingPathComponent("run", isDirectory: true)
        self.logFile = dataDirectory.appendingPathComponent("postgres.log")
        self.binDirectory = try Self.findBinaries()
        self.runAs = geteuid() == 0 ? "postgres" : nil
    }

    /// Records which `drydock-server` runs the cluster, so a server restarted after `kill -9`
    /// takes over the cluster its predecessor left running and stops it in turn.
    var ownerFile: URL { clusterDirectory.deletingLastPathComponent().appendingPathComponent("postgres.owner") }

    /// Makes this process the cluster's owner if it has none alive; returns whether it now is.
    /// A server calls this after `start` found the cluster already running.
    public func adoptIfOrphaned(logger: Logger) -> Bool {
        if let text = try? String(contentsOf: ownerFile, encoding: .utf8),
           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid != getpid(), Self.isServerProcess(pid) {
            return false
        }
        logger.warning("adopting the private PostgreSQL cluster a stopped server left running; it stops with this server",
                       metadata: ["cluster": "\(clusterDirectory.path)"])
        recordOwner()
        return true
    }

    /// Marks this process as the one that stops the cluster.
    public func recordOwner() {
        try? "\(getpid())\n".write(to: ownerFile, atomically: true, encoding: .utf8)
    }

    /// Whether `pid` is a live drydock-server (not a recycled pid of something else).
    static func isServerProcess(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return true }
        let first = cmdline.split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        return first.hasSuffix("drydock-server")
    }

    public var databaseURL: DatabaseURL {
        DatabaseURL(socketDirectory: socketDirectory.path, username: Self.superuser, database: Self.database)
    }

    /// Initialises the cluster if needed and starts it unless it already runs (a server may be
    /// running while `bootstrap` is used). Returns true when this call started it.
    @discardableResult
    public func start(logger: Logger) async throws -> Bool {
        let fm = FileManager.default
        try fm.createDirectory(at: clusterDirectory.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fm.createDirectory(at: clusterDirectory, withIntermediateDirectories: true)
        try fm.createDirectory(at: socketDirectory, withIntermediateDirectories: true)
        try fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: clusterDirectory.path)
        try fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: socketDirectory.path)
        if let runAs {
            // The postgres user must be able to pass through the data directory (not list it).
            try fm.setAttributes([.posixPermissions: 0o711], ofItemAtPath: clusterDirectory.deletingLastPathComponent().path)
            try await run("/bin/chown", ["-R", "\(runAs):\(runAs)", clusterDirectory.path, socketDirectory.path], asUser: nil)
            if !fm.fileExists(atPath: logFile.path) { fm.createFile(atPath: logFile.path, contents: nil) }
            try await run("/bin/chown", ["\(runAs):\(runAs)", logFile.path], asUser: nil)
            // The postgres user must be able to reach the data directory.
            do {
                try await run("/usr/bin/test", ["-x", clusterDirectory.path, "-a", "-w", socketDirectory.path], asUser: runAs)
            } catch {
                throw ConfigurationError(
                    "the '\(runAs)' user cannot reach \(clusterDirectory.path); choose a DRYDOCK_DATA_DIR outside home directories (the default for root is /var/lib/drydock)"
                )
            }
        }
        if !fm.fileExists(atPath: clusterDirectory.appendingPathComponent("PG_VERSION").path) {
            logger.info("initialising private PostgreSQL cluster", metadata: ["path": "\(clusterDirectory.path)"])
            try await run(binDirectory.appendingPathComponent("initdb").path, [
                "-D", clusterDirectory.path, "-U", Self.superuser, "-A", "trust", "-E", "UTF8", "--no-instructions",
            ], asUser: runAs)
        }
        if await isRunning() {
            logger.info("private PostgreSQL cluster already running", metadata: ["socket": "\(socketDirectory.path)"])
            return false
        }
        logger.info("starting private PostgreSQL cluster", metadata: ["socket": "\(socketDirectory.path)"])
        try await run(binDirectory.appendingPathComponent("pg_ctl").path, [
            "-D", clusterDirectory.path, "-l", logFile.path, "-w", "-t", "60",
            "-o", "-c listen_addresses='' -k '\(socketDirectory.path)' -c max_connections=100",
            "start",
        ], asUser: runAs)
        try await createDatabaseIfMissing()
        return true
    }

    public func isRunning() async -> Bool {
        (try? await run(binDirectory.appendingPathComponent("pg_ctl").path, ["-D", clusterDirectory.path, "status"], asUser: runAs)) != nil
    }

    public func stop(logger: Logger) async {
        logger.info("stopping private PostgreSQL cluster")
        defer { try? FileManager.default.removeItem(at: ownerFile) }
        do {
            try await run(binDirectory.appendingPathComponent("pg_ctl").path, ["-D", clusterDirectory.path, "-m", "fast", "-w", "stop"], asUser: runAs)
        } catch {
            logger.error("could not stop PostgreSQL: \(error)")
        }
    }

    /// `pg_ctl stop` (fast: sessions are ended, no recovery at the next start), waiting at most
    /// 20 s, as a command to run without tasks: a server forced to exit stops its cluster with it.
    var emergencyStopCommand: [String] {
        Self.command(binDirectory.appendingPathComponent("pg_ctl").path, ["-D", clusterDirectory.path, "-m", "fast", "-w", "-t", "20", "stop"],
                     asUser: runAs)
    }

    /// `executable` with `arguments`, through runuser as `user` when given.
    static func command(_ executable: String, _ arguments: [String], asUser user: String?) -> [String] {
        let argv = [executable] + arguments
        guard let user else { return argv }
        let runuser = FileManager.default.isExecutableFile(atPath: "/sbin/runuser") ? "/sbin/runuser" : "/usr/sbin/runuser"
        return [runuser, "-u", user, "--"] + argv
    }

    private func createDatabaseIfMissing() async throws {
        let psql = binDirectory.appendingPathComponent("psql").path
        let psqlPath = FileManager.default.isExecutableFile(atPath: psql) ? psql : "/usr/bin/psql"
        let exists = try await run(psqlPath, [
            "-h", socketDirectory.path, "-U", Self.superuser, "-d", "postgres", "-tAc",
            "SELECT 1 FROM pg_database WHERE datname = '\(Self.database)'",
        ], asUser: runAs)
        if exists.trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
            try await run(psqlPath, ["-h", socketDirectory.path, "-U", Self.superuser, "-d", "postgres", "-c", "CREATE DATABASE \(Self.database)"], asUser: runAs)
        }
    }

    static func findBinaries() throws -> URL {
        let fm = FileManager.default
        var candidates: [String] = []
        if let path = ProcessInfo.processInfo.environment["PATH"] {
            candidates += path.split(separator: ":").map(String.init)
        }
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            let sorted = versions.compactMap { v in Int(v).map { ($0, v) } }.sorted { $0.0 > $1.0 }
            candidates += sorted.map { "/usr/lib/postgresql/\($0.1)/bin" }
        }
        for dir in candidates {
            let pgctl = dir + "/pg_ctl", initdb = dir + "/initdb"
            if fm.isExecutableFile(atPath: pgctl), fm.isExecutableFile(atPath: initdb) {
                // Resolve symlinks such as /usr/local/bin/pg_ctl so psql/createdb come from the same install.
                let resolved = URL(fileURLWithPath: pgctl).resolvingSymlinksInPath().deletingLastPathComponent()
                return resolved
            }
        }
        throw ConfigurationError(
            "PostgreSQL is not installed (no initdb/pg_ctl found). Install it with 'apt-get install postgresql', or point DRYDOCK_DATABASE_URL at an existing server"
        )
    }

    /// Runs a command to completion (as `user` when given, through runuser), returning its standard
    /// output; throws with its error output on failure. `pg_ctl start` leaves the server behind
    /// with its output in the log file, so nothing it inherits keeps the run waiting.
    @discardableResult
    func run(_ executable: String, _ arguments: [String], asUser user: String?) async throws -> String {
        let argv = Self.command(executable, arguments, asUser: user)
        let name = (executable as NSString).lastPathComponent
        let outcome: ProcessOutcome
        do {
            // Started in a directory every user can enter, so the postgres user is not stuck in /root.
            outcome = try await ChildProcess.run(argv, directory: "/")
        } catch {
            throw ConfigurationError("\(error)")
        }
        guard outcome.succeeded else {
            throw ConfigurationError("\(name) failed (exit \(outcome.status)): \(outcome.failureText(limit: 2000))")
        }
        return outcome.output
    }
}
