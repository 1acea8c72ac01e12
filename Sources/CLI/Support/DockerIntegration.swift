import Crypto
import DrydockClient
import Foundation

/// What `drydock configure-docker` and `drydock registry login` change in the docker CLI's
/// configuration (`$DOCKER_CONFIG`, default `~/.docker`), and how `--undo` takes it back: the
/// file's original bytes are restored when nobody changed it since, or else each key Drydock set is
/// put back as it was, leaving other changes alone.
struct DockerIntegration {
    let directory: URL
    /// The drydock executable the plugin and helper links point at.
    let executable: URL

    static func configDirectory(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let dir = environment["DOCKER_CONFIG"], !dir.isEmpty { return URL(fileURLWithPath: dir, isDirectory: true) }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".docker", isDirectory: true)
    }

    /// This process's own executable, resolved (a symlink such as docker-drydock leads to it).
    static func ownExecutable() -> URL {
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: resolved)
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    }

    var configFile: URL { directory.appendingPathComponent("config.json") }
    var stateFile: URL { directory.appendingPathComponent("drydock-configure.json") }
    var pluginLink: URL { directory.appendingPathComponent("cli-plugins/docker-drydock") }

    /// What configure-docker did, to undo it.
    struct State: Codable {
        /// The config file's bytes before (nil: there was none).
        var original: Data?
        /// Whether those bytes can be put back (the file was not changed by others since).
        var restorable: Bool
        /// SHA-256 of the bytes Drydock last wrote.
        var written: String
        /// Each key path Drydock set, with its earlier value (JSON; nil: absent).
        var changes: [Change]
        /// Files Drydock created (links), removed on undo.
        var created: [String]

        struct Change: Codable, Equatable {
            var path: [String]
            var previous: Data?
        }
    }

    func loadState() -> State? {
        guard let data = FileManager.default.contents(atPath: stateFile.path) else { return nil }
        return try? JSONDecoder().decode(State.self, from: data)
    }

    func readConfig() throws -> (data: Data?, object: [String: Any]) {
        guard let data = FileManager.default.contents(atPath: configFile.path) else { return (nil, [:]) }
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return (data, [:]) }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CLIError("\(configFile.path) is not a JSON object; fix or move it, then run this again")
        }
        return (data, object)
    }

    static func sha(_ data: Data) -> String { SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() }

    /// Sets `value` at each key path (two levels: `credHelpers.<host>`, `aliases.builder`) and
    /// installs the links; records what it takes to undo.
    func apply(_ settings: [(path: [String], value: String)], links: [URL]) throws -> [String] {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let (before, initialObject) = try readConfig()
        var object = initialObject
        var state = loadState() ?? State(original: before, restorable: true, written: "", changes: [], created: [])
        if let previous = loadState(), Self.sha(before ?? Data()) != previous.written {
            // Changed since Drydock wrote it: undo can then only take Drydock's keys out.
            state.restorable = false
        }
        var said: [String] = []
        for (path, value) in settings {
            guard path.count == 2 else { continue }
            var section = object[path[0]] as? [String: Any] ?? [:]
            let current = section[path[1]]
            if !state.changes.contains(where: { $0.path == path }) {
                let previous = try current.map { try JSONSerialization.data(withJSONObject: $0, options: [.fragmentsAllowed]) }
                state.changes.append(.init(path: path, previous: previous))
            }
            section[path[1]] = value
            object[path[0]] = section
            said.append("\(path.joined(separator: ".")) = \(value)")
        }
        for link in links {
            try fm.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
            if let existing = try? fm.destinationOfSymbolicLink(atPath: link.path) {
                if existing == executable.path { continue }
                try fm.removeItem(at: link)
            } else if fm.fileExists(atPath: link.path) {
                throw CLIError("\(link.path) exists and is not Drydock's; move it away first")
            }
            try fm.createSymbolicLink(atPath: link.path, withDestinationPath: executable.path)
            if !state.created.contains(link.path) { state.created.append(link.path) }
            said.append("\(link.path) -> \(executable.path)")
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try write(data, to: configFile, mode: 0o600)
        state.written = Self.sha(data)
        try write(try JSONEncoder().encode(state), to: stateFile, mode: 0o600)
        return said
    }

    /// Takes back what `apply` did.
    func undo() throws -> [String] {
        let fm = FileManager.default
        guard let state = loadState() else { return [] }
        var said: [String] = []
        let (current, object) = try readConfig()
        if let current, state.restorable, Self.sha(current) == state.written {
            if let original = state.original {
                try write(original, to: configFile, mode: 0o600)
                said.append("restored \(configFile.path) as it was")
            } else {
                try fm.removeItem(at: configFile)
                said.append("removed \(configFile.path) (there was none before)")
            }
        } else if current != nil {
            var object = object
            for change in state.changes.reversed() where change.path.count == 2 {
                var section = object[change.path[0]] as? [String: Any] ?? [:]
                if let previous = change.previous {
                    section[change.path[1]] = try JSONSerialization.jsonObject(with: previous, options: [.fragmentsAllowed])
                } else {
                    section.removeValue(forKey: change.path[1])
                }
                if section.isEmpty { object.removeValue(forKey: change.path[0]) } else { object[change.path[0]] = section }
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            try write(data, to: configFile, mode: 0o600)
            said.append("took Drydock's settings out of \(configFile.path) (it had changed since, so the rest stays)")
        }
        for path in state.created {
            if (try? fm.destinationOfSymbolicLink(atPath: path)) != nil {
                try? fm.removeItem(atPath: path)
                said.append("removed \(path)")
            }
        }
        try? fm.removeItem(at: stateFile)
        // The plugin directory, when Drydock's link was all it held.
        let plugins = pluginLink.deletingLastPathComponent()
        if (try? fm.contentsOfDirectory(atPath: plugins.path))?.isEmpty == true { try? fm.removeItem(at: plugins) }
        return said
    }

    func write(_ data: Data, to file: URL, mode: Int) throws {
        let temporary = file.deletingLastPathComponent().appendingPathComponent(".\(file.lastPathComponent).\(getpid())")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: mode]) else {
            throw CLIError("cannot write \(temporary.path)")
        }
        guard rename(temporary.path, file.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw CLIError("cannot write \(file.path): \(reason)")
        }
    }

    /// Where `docker-credential-drydock` goes: beside drydock when that directory is writable, else
    /// `~/.local/bin`. Docker, podman, buildah and skopeo find helpers on PATH.
    static func helperLink(executable: URL, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        let beside = executable.deletingLastPathComponent()
        if access(beside.path, W_OK) == 0 { return beside.appendingPathComponent("docker-credential-drydock") }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".local/bin/docker-credential-drydock")
    }

    static func onPath(_ directory: URL, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        (environment["PATH"] ?? "").split(separator: ":").contains { URL(fileURLWithPath: String($0)).standardizedFileURL.path == directory.standardizedFileURL.path }
    }
}
