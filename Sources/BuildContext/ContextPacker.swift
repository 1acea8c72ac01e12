import Crypto
import Foundation

/// Packs a build context the way `docker build` sends one, into a tar laid out as
/// `context/…` (the files `.dockerignore` lets through) plus `Dockerfile` at the top (the
/// Dockerfile to build, which Docker always sends even when `.dockerignore` names it).
/// The tar is written to a file while its SHA-256 is computed, so an unchanged context is
/// recognised by the server without being sent again.
public struct PackedContext: Sendable {
    public let file: URL
    public let digest: String   // sha256:<hex>
    public let size: Int64
    public let fileCount: Int
    /// The largest files packed, biggest first (at most five), to name when a context is too big.
    public var largestFiles: [(path: String, size: Int64)] = []
}

public enum ContextError: Error, CustomStringConvertible {
    case notADirectory(String)
    case dockerfileMissing(String)
    case unreadable(String, String)

    public var description: String {
        switch self {
        case .notADirectory(let path): "the build context '\(path)' is not a directory"
        case .dockerfileMissing(let path): "no Dockerfile at '\(path)' (name another with -f)"
        case .unreadable(let path, let why): "cannot read '\(path)': \(why)"
        }
    }
}

public enum ContextPacker {
    /// - Parameters:
    ///   - directory: the context directory.
    ///   - dockerfile: the Dockerfile (absolute or relative to the current directory).
    /// `progress` is told the bytes packed so far, now and then (every 16 MB).
    public static func pack(directory: URL, dockerfile: URL, into output: URL,
                            progress: ((Int64) -> Void)? = nil) throws -> PackedContext {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ContextError.notADirectory(directory.path)
        }
        guard let dockerfileData = FileManager.default.contents(atPath: dockerfile.path) else {
            throw ContextError.dockerfileMissing(dockerfile.path)
        }
        let ignore = DockerIgnore(contentsOf: directory.appendingPathComponent(".dockerignore"))
        FileManager.default.createFile(atPath: output.path, contents: nil, attributes: [.posixPermissions: 0o600])
        let handle = try FileHandle(forWritingTo: output)
        defer { try? handle.close() }
        var writer = Writer(handle: handle)
        writer.progress = progress
        try writer.write(Tar.headerBlocks(.init(path: "Dockerfile", type: .file, mode: 0o644, size: Int64(dockerfileData.count), mtime: 0)))
        try writer.write(Array(dockerfileData))
        try writer.write(Tar.padding(Int64(dockerfileData.count)))
        try writer.write(Tar.headerBlocks(.init(path: "context", type: .directory, mode: 0o755, size: 0, mtime: 0)))
        var count = 0
        try walk(directory, relative: "", ignore: ignore, writer: &writer, count: &count)
        try writer.write(Tar.end)
        try writer.flush()
        return PackedContext(file: output, digest: "sha256:" + writer.hasher.finalize().map { String(format: "%02x", $0) }.joined(),
                             size: writer.size, fileCount: count, largestFiles: writer.largest)
    }

    struct Writer {
        let handle: FileHandle
        var hasher = SHA256()
        var size: Int64 = 0
        var buffer: [UInt8] = []
        var largest: [(path: String, size: Int64)] = []
        var progress: ((Int64) -> Void)?
        var reported: Int64 = 0

        mutating func note(_ path: String, size: Int64) {
            if largest.count < 5 || size > (largest.last?.size ?? 0) {
                largest.append((path, size))
                largest.sort { $0.size > $1.size }
                if largest.count > 5 { largest.removeLast() }
            }
            if let progress, self.size - reported >= 16 << 20 {
                reported = self.size
                progress(self.size)
            }
        }

        init(handle: FileHandle) {
            self.handle = handle
            buffer.reserveCapacity(1 << 20)
        }

        mutating func write(_ bytes: [UInt8]) throws {
            hasher.update(data: bytes)
            size += Int64(bytes.count)
            buffer += bytes
            if buffer.count >= 1 << 20 { try flush() }
        }

        mutating func flush() throws {
            guard !buffer.isEmpty else { return }
            try handle.write(contentsOf: buffer)
            buffer.removeAll(keepingCapacity: true)
        }
    }

    static func walk(_ root: URL, relative: String, ignore: DockerIgnore, writer: inout Writer, count: inout Int) throws {
        let directory = relative.isEmpty ? root.path : root.path + "/" + relative
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        } catch {
            throw ContextError.unreadable(directory, "\(error.localizedDescription)")
        }
        for name in names {
            let path = relative.isEmpty ? name : relative + "/" + name
            let full = root.path + "/" + path
            var info = stat()
            guard lstat(full, &info) == 0 else { throw ContextError.unreadable(full, String(cString: strerror(errno))) }
            let excluded = ignore.excludes(path)
            let kind = info.st_mode & S_IFMT
            let mode = Int(info.st_mode & 0o7777)
            let mtime = Int64(info.st_mtim.tv_sec)
            if kind == S_IFDIR {
                if excluded && !ignore.mayReinclude(under: path) { continue }
                if !excluded {
                    try writer.write(Tar.headerBlocks(.init(path: "context/" + path, type: .directory, mode: mode, size: 0, mtime: mtime)))
                }
                try walk(root, relative: path, ignore: ignore, writer: &writer, count: &count)
                continue
            }
            if excluded { continue }
            if kind == S_IFLNK {
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: full)
                try writer.write(Tar.headerBlocks(.init(path: "context/" + path, type: .symlink, mode: 0o777, size: 0, mtime: mtime, linkName: target)))
                count += 1
            } else if kind == S_IFREG {
                let size = Int64(info.st_size)
                try writer.write(Tar.headerBlocks(.init(path: "context/" + path, type: .file, mode: mode, size: size, mtime: mtime)))
                guard let input = FileHandle(forReadingAtPath: full) else { throw ContextError.unreadable(full, "permission denied") }
                defer { try? input.close() }
                var written: Int64 = 0
                while written < size {
                    guard let chunk = try input.read(upToCount: Int(min(1 << 20, size - written))), !chunk.isEmpty else { break }
                    try writer.write(Array(chunk))
                    written += Int64(chunk.count)
                }
                if written < size {  // the file shrank while packing: keep the tar well-formed
                    try writer.write([UInt8](repeating: 0, count: Int(size - written)))
                }
                try writer.write(Tar.padding(size))
                writer.note(path, size: size)
                count += 1
            }
            // Sockets, devices and FIFOs are not part of a build context (as with Docker).
        }
    }
}
