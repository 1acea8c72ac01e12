import DrydockProcess
import Foundation

/// A project's cache for one platform, kept as its policy says: started over when the project's
/// cache was reset (a newer generation), and after each job the least recently used images go
/// first until the cache is within its size, and nothing unused for longer than its days stays.
///
/// "Used" is what buildah says a build used: each step's image (`--> Using cache <id>` for a cached
/// step, `--> <id>` for a new one), the built image, and the base images the Dockerfile names.
/// Images the cache has not seen before count as used when first seen. The record lives beside
/// the storage (`cache-usage.json`: image id → last use).
public enum CacheMaintenance {
    static let generationFile = "generation"
    static let usageFile = "cache-usage.json"

    /// Starts the cache over when the project's generation is newer than the one it was made
    /// for: the old storage is deleted. Returns whether it did.
    static func prepare(root: URL, generation: Int, storageArguments: [String], environment: [String: String]) async -> Bool {
        let file = root.appendingPathComponent(generationFile)
        let stored = (try? String(contentsOf: file, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        guard generation > stored else {
            if !FileManager.default.fileExists(atPath: file.path) { try? "\(generation)".write(to: file, atomically: true, encoding: .utf8) }
            return false
        }
        _ = try? await ChildProcess.run(storageArguments + ["rm", "--all"], environment: environment)
        _ = try? await ChildProcess.run(storageArguments + ["rmi", "--all", "--force"], environment: environment)
        for name in ["storage", "contexts", "last-push.json", usageFile] {
            try? FileManager.default.removeItem(at: root.appendingPathComponent(name))
        }
        // Layers buildah could not delete (still mounted by a dead process) go with the directory.
        _ = try? await ChildProcess.run(["rm", "-rf", root.appendingPathComponent("storage").path], environment: environment)
        try? "\(generation)".write(to: file, atomically: true, encoding: .utf8)
        return true
    }

    /// The image id a line of buildah's output names as a step's result, if any.
    public static func imageId(inBuildahLine line: String) -> String? {
        guard line.hasPrefix("--> ") else { return nil }
        var rest = line.dropFirst(4)
        if rest.hasPrefix("Using cache ") { rest = rest.dropFirst("Using cache ".count) }
        let id = rest.prefix { $0.isHexDigit }
        guard id.count >= 11, id.count == rest.trimmingCharacters(in: .whitespaces).count else { return nil }
        return String(id).lowercased()
    }

    /// An image as containers/storage records it (`overlay-images/images.json`).
    struct Image: Decodable {
        var id: String
        var names: [String]?
        /// RFC 3339 in UTC: sorts as text.
        var created: String?
    }

    public struct Outcome: Sendable, Equatable {
        public var bytes: Int64
        public var images: Int
        public var removed: [String]
    }

    /// Applies the policy after a job. `used` holds image ids (full, or the 11-character short form buildah prints)
    /// the job used; they are never removed by this pass. `referenced` is text (the Dockerfile)
    /// whose image names mark tagged base images as used.
    static func enforce(root: URL, storageArguments: [String], environment: [String: String], used: Set<String>, referenced: String,
                        keepBytes: Int64, keepDays: Int, now: Date = Date()) async -> Outcome {
        var images = list(root: root)
        var usage = loadUsage(root)
        let usedNow = images.filter { image in
            let id = bare(image.id)
            return used.contains { id.hasPrefix($0) } || (image.names ?? []).contains { referenced.contains(repository(of: $0)) }
        }.map { bare($0.id) }
        for image in images where usage[bare(image.id)] == nil { usage[bare(image.id)] = now }
        for id in usedNow { usage[id] = now }
        let protected = Set(usedNow)
        var removed: [String] = []
        // Unused for longer than keep-days: gone, whatever the size.
        let horizon = now.addingTimeInterval(-Double(keepDays) * 86_400)
        for image in images where !protected.contains(bare(image.id)) && (usage[bare(image.id)] ?? now) < horizon {
            if await remove(bare(image.id), storageArguments: storageArguments, environment: environment) { removed.append(bare(image.id)) }
        }
        images = images.filter { !removed.contains(bare($0.id)) }
        // Over the size: the least recently used first, until within it.
        var bytes = JobRun.diskUsage(root.path)
        var candidates = images.filter { !protected.contains(bare($0.id)) }
            .sorted { (usage[bare($0.id)] ?? now, $0.created ?? "") < (usage[bare($1.id)] ?? now, $1.created ?? "") }
        while bytes > keepBytes, !candidates.isEmpty {
            let oldest = bare(candidates.removeFirst().id)
            if await remove(oldest, storageArguments: storageArguments, environment: environment) {
                removed.append(oldest)
                bytes = JobRun.diskUsage(root.path)
            }
        }
        // `bytes` was measured after the last removal; the list is what was not removed.
        let remaining = images.filter { !removed.contains(bare($0.id)) }
        let present = Set(remaining.map { bare($0.id) })
        usage = usage.filter { present.contains($0.key) }
        saveUsage(usage, root)
        return Outcome(bytes: bytes, images: remaining.count, removed: removed)
    }

    /// The cache's images, read from the storage's own record (written atomically by buildah):
    /// a file read instead of a `buildah images` process after every job.
    static func list(root: URL) -> [Image] {
        let file = root.appendingPathComponent("storage/overlay-images/images.json")
        guard let data = FileManager.default.contents(atPath: file.path) else { return [] }
        return (try? JSONDecoder().decode([Image].self, from: data)) ?? []
    }

    static func remove(_ id: String, storageArguments: [String], environment: [String: String]) async -> Bool {
        guard let result = try? await ChildProcess.run(storageArguments + ["rmi", "--force", id], environment: environment) else { return false }
        return result.status == 0
    }

    static func bare(_ id: String) -> String { id.hasPrefix("sha256:") ? String(id.dropFirst(7)) : id }

    /// `host/repo:tag` → `host/repo` (what a Dockerfile's FROM names, with or without a tag).
    static func repository(of name: String) -> String {
        if let at = name.firstIndex(of: "@") { return String(name[..<at]) }
        if let colon = name.lastIndex(of: ":"), !name[colon...].contains("/") { return String(name[..<colon]) }
        return name
    }

    static func loadUsage(_ root: URL) -> [String: Date] {
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent(usageFile).path) else { return [:] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return (try? decoder.decode([String: Date].self, from: data)) ?? [:]
    }

    static func saveUsage(_ usage: [String: Date], _ root: URL) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        try? encoder.encode(usage).write(to: root.appendingPathComponent(usageFile), options: .atomic)
    }
}
