import DrydockProcess
import Foundation

/// The agent's cache volumes: one per project and platform (`volumes/<project>/<os-arch[-variant]>`),
/// written by one builder at a time; builders started by autoscaling get a clone
/// (`clones/<builder-id>`) that is thrown away when they stop.
public struct CacheVolumes: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    var volumes: URL { root.appendingPathComponent("volumes") }
    var clones: URL { root.appendingPathComponent("clones") }

    /// The volume the server names (`<project-id>/<platform>`), refusing anything that could leave
    /// the volumes directory.
    public func volume(named name: String) throws -> URL {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-")
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 64 && $0.allSatisfy { allowed.contains($0) } && !$0.hasPrefix("-") }) else {
            throw AgentError.launch("the server named a cache volume '\(name)', which is not <project>/<platform>")
        }
        return volumes.appendingPathComponent(String(parts[0])).appendingPathComponent(String(parts[1]))
    }

    public func clone(for builderId: String) -> URL { clones.appendingPathComponent(builderId) }

    /// Makes a clone of `volume` for a builder: copy-on-write where the filesystem allows (`cp
    /// --reflink=auto`), a copy otherwise. buildah's storage is copied under read locks on its
    /// lock files (the ones buildah itself takes), so a build committing meanwhile on the volume
    /// waits for the copy rather than leaving it half-written.
    public func makeClone(of volume: URL, at clone: URL) async throws {
        try? FileManager.default.removeItem(at: clone)
        try FileManager.default.createDirectory(at: clone, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let storage = volume.appendingPathComponent("storage")
        for file in ["generation", "cache-usage.json", "last-push.json"] {
            let source = volume.appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: source.path) {
                try FileManager.default.copyItem(at: source, to: clone.appendingPathComponent(file))
            }
        }
        guard FileManager.default.fileExists(atPath: storage.path) else { return }
        let locks = StorageLocks(storage: storage)
        try await locks.withReadLocks {
            let result = try await ChildProcess.run(["cp", "-a", "--reflink=auto", storage.path, clone.appendingPathComponent("storage").path])
            guard result.status == 0 else {
                throw AgentError.launch("cloning the cache \(volume.path) failed: \(result.errorOutput.prefix(500))")
            }
        }
    }

    public func removeClone(for builderId: String) {
        try? FileManager.default.removeItem(at: clone(for: builderId))
    }

    /// Clones left by a previous run of the agent (its builders are gone with it).
    public func removeAllClones() {
        try? FileManager.default.removeItem(at: clones)
    }
}

/// containers/storage's lock files, taken for reading with fcntl as buildah takes them: all or
/// none at a time (never holding one while waiting for another), so no deadlock with a build.
struct StorageLocks {
    let storage: URL

    var files: [String] {
        ["storage.lock", "overlay-layers/layers.lock", "overlay-images/images.lock", "overlay-containers/containers.lock"]
            .map { storage.appendingPathComponent($0).path }
            .filter { FileManager.default.fileExists(atPath: $0) }
    }

    func withReadLocks<T>(_ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(600)
        while true {
            var held: [Int32] = []
            var all = true
            for path in files {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { continue }
                var lock = flock()
                lock.l_type = Int16(F_RDLCK)
                lock.l_whence = Int16(SEEK_SET)
                if fcntl(fd, F_SETLK, &lock) == 0 {
                    held.append(fd)
                } else {
                    close(fd)
                    all = false
                    break
                }
            }
            if all {
                defer { for fd in held { close(fd) } }  // closing drops the lock
                return try await body()
            }
            for fd in held { close(fd) }
            guard ContinuousClock.now < deadline else { throw AgentError.launch("the cache at \(storage.path) stayed locked for 10 minutes") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
