import Foundation

/// The saved login: `$XDG_CONFIG_HOME/drydock/config.json` (or `~/.config/drydock/`), mode 0600.
public struct SavedLogin: Codable, Equatable, Sendable {
    public var apiURL: String
    public var token: String?
}

public enum CLIConfiguration {
    public static let defaultAPIURL = "http://127.0.0.1:8080"

    public static func directory(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("drydock", isDirectory: true)
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".config/drydock", isDirectory: true)
    }

    static var file: URL { directory().appendingPathComponent("config.json") }

    public static func load() -> SavedLogin? {
        guard let data = try? Data(contentsOf: file) else { return nil }
        return try? JSONDecoder().decode(SavedLogin.self, from: data)
    }

    /// Writes the login with 0600 permissions from the start (the file holds a secret).
    public static func save(_ login: SavedLogin) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: directory(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(login)
        let temporary = directory().appendingPathComponent(".config.json.\(getpid())")
        fm.createFile(atPath: temporary.path, contents: nil, attributes: [.posixPermissions: 0o600])
        let handle = try FileHandle(forWritingTo: temporary)
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        guard rename(temporary.path, file.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fm.removeItem(at: temporary)
            throw CLIError("could not save the login to \(file.path): \(reason)")
        }
    }

    public static func clearToken() throws -> Bool {
        guard var login = load(), login.token != nil else { return false }
        login.token = nil
        try save(login)
        return true
    }
}

/// `drydock.json`: `{"id": "<project-id>"}`, found by walking up from a directory.
public enum ProjectFile {
    public static let name = "drydock.json"

    struct Contents: Codable { var id: String }

    public static func find(from directory: URL) -> (id: String, file: URL)? {
        var current = directory.standardizedFileURL
        while true {
            let candidate = current.appendingPathComponent(name)
            if let data = try? Data(contentsOf: candidate),
               let contents = try? JSONDecoder().decode(Contents.self, from: data), !contents.id.isEmpty
            {
                return (contents.id, candidate)
            }
            let parent = current.deletingLastPathComponent()
            if parent.path == current.path { return nil }
            current = parent
        }
    }

    public static func write(id: String, in directory: URL) throws -> URL {
        let file = directory.appendingPathComponent(name)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(Contents(id: id))
        data.append(0x0A)
        try data.write(to: file, options: .atomic)
        return file
    }
}
