import Foundation

/// Unpacks a context tar into a fresh directory, refusing anything that could write outside it:
/// absolute paths, `..`, links whose target leaves the directory, entries through symlinks,
/// and contexts over the size or file-count limits.
public enum ContextUnpacker {
    public struct Limits: Sendable {
        public var maxBytes: Int64
        public var maxFiles: Int
        public init(maxBytes: Int64 = 8 << 30, maxFiles: Int = 500_000) {
            self.maxBytes = maxBytes
            self.maxFiles = maxFiles
        }
    }

    public enum UnpackError: Error, CustomStringConvertible, Equatable {
        case unsafePath(String)
        case escapingLink(String, String)
        case throughSymlink(String)
        case tooLarge(Int64)
        case tooManyFiles(Int)
        case malformed(String)

        public var description: String {
            switch self {
            case .unsafePath(let p): "refused context entry '\(p)': absolute paths and '..' are not allowed"
            case .escapingLink(let p, let t): "refused context entry '\(p)': its link target '\(t)' leaves the context"
            case .throughSymlink(let p): "refused context entry '\(p)': it would be written through a symbolic link"
            case .tooLarge(let n): "the context unpacks to more than \(n) bytes"
            case .tooManyFiles(let n): "the context has more than \(n) files"
            case .malformed(let why): "the context is not a valid tar: \(why)"
            }
        }
    }

    /// Reads `tar` and writes its entries under `destination` (which must exist and be empty).
    public static func unpack(_ tar: URL, into destination: URL, limits: Limits = Limits()) throws {
        guard let input = FileHandle(forReadingAtPath: tar.path) else { throw UnpackError.malformed("cannot open \(tar.path)") }
        defer { try? input.close() }
        var reader = BlockReader(handle: input)
        let root = destination.standardizedFileURL.path
        var total: Int64 = 0
        var files = 0
        var pax: [String: String] = [:]
        var longName: String?
        var longLink: String?
        while true {
            guard let block = try reader.read(512) else { throw UnpackError.malformed("it ends without the end-of-archive blocks") }
            if block.allSatisfy({ $0 == 0 }) { return }
            let header = try parse(block)
            var path = longName ?? pax["path"] ?? header.name
            var link = longLink ?? pax["linkpath"] ?? header.linkName
            let size = pax["size"].flatMap(Int64.init) ?? header.size
            pax = [:]
            longName = nil
            longLink = nil
            switch header.type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                let data = try reader.readPadded(size)
                if header.type == UInt8(ascii: "x") { pax = parsePax(data) }
                continue
            case UInt8(ascii: "L"), UInt8(ascii: "K"):
                let data = try reader.readPadded(size)
                let text = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                if header.type == UInt8(ascii: "L") { longName = text } else { longLink = text }
                continue
            default:
                break
            }
            path = try clean(path)
            files += 1
            guard files <= limits.maxFiles else { throw UnpackError.tooManyFiles(limits.maxFiles) }
            if path.isEmpty {  // the root itself
                try reader.skipPadded(size)
                continue
            }
            let target = root + "/" + path
            try checkParents(root: root, path: path)
            switch header.type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                total += size
                guard total <= limits.maxBytes else { throw UnpackError.tooLarge(limits.maxBytes) }
                try makeParents(root: root, path: path)
                unlink(target)
                let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(header.mode & 0o777))
                guard fd >= 0 else { throw UnpackError.malformed("cannot create '\(path)': \(String(cString: strerror(errno)))") }
                let output = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
                try reader.copy(size, to: output)
                fchmod(fd, mode_t(header.mode & 0o777))
                var times = [timespec(tv_sec: time_t(header.mtime), tv_nsec: 0), timespec(tv_sec: time_t(header.mtime), tv_nsec: 0)]
                futimens(fd, &times)
                try output.close()
            case UInt8(ascii: "5"):
                try reader.skipPadded(size)
                try makeParents(root: root, path: path + "/x")
                chmod(target, mode_t(header.mode & 0o777) | 0o700)
            case UInt8(ascii: "2"):
                try reader.skipPadded(size)
                guard !link.isEmpty, !link.hasPrefix("/") else { throw UnpackError.escapingLink(path, link) }
                let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
                guard staysInside(parent.isEmpty ? link : parent + "/" + link) else { throw UnpackError.escapingLink(path, link) }
                try makeParents(root: root, path: path)
                unlink(target)
                guard symlink(link, target) == 0 else { throw UnpackError.malformed("cannot link '\(path)': \(String(cString: strerror(errno)))") }
            case UInt8(ascii: "1"):
                try reader.skipPadded(size)
                link = try clean(link)
                try checkParents(root: root, path: link)
                var info = stat()
                guard lstat(root + "/" + link, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
                    throw UnpackError.escapingLink(path, link)
                }
                try makeParents(root: root, path: path)
                unlink(target)
                guard Foundation.link(root + "/" + link, target) == 0 else {
                    throw UnpackError.malformed("cannot link '\(path)': \(String(cString: strerror(errno)))")
                }
            default:
                // Devices, FIFOs and the like have no place in a build context: skip them.
                try reader.skipPadded(size)
            }
        }
    }

    /// `a/./b/` → `a/b`; throws on absolute paths and any `..`.
    static func clean(_ raw: String) throws -> String {
        guard !raw.hasPrefix("/") else { throw UnpackError.unsafePath(raw) }
        var parts: [Substring] = []
        for part in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { throw UnpackError.unsafePath(raw) }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }

    /// Whether a relative path, with its `..` folded lexically, stays under the root.
    static func staysInside(_ path: String) -> Bool {
        var depth = 0
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            depth += part == ".." ? -1 : 1
            if depth < 0 { return false }
        }
        return true
    }

    /// No existing parent of `path` may be a symbolic link (that is how tar-slip escapes).
    static func checkParents(root: String, path: String) throws {
        var current = root
        for part in path.split(separator: "/").dropLast() {
            current += "/" + part
            var info = stat()
            if lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK { throw UnpackError.throughSymlink(path) }
        }
    }

    static func makeParents(root: String, path: String) throws {
        var current = root
        for part in path.split(separator: "/").dropLast() {
            current += "/" + part
            if mkdir(current, 0o755) != 0, errno != EEXIST {
                throw UnpackError.malformed("cannot create directory '\(current)': \(String(cString: strerror(errno)))")
            }
        }
    }

    struct RawHeader {
        var name: String
        var mode: Int
        var size: Int64
        var mtime: Int64
        var type: UInt8
        var linkName: String
    }

    static func parse(_ b: [UInt8]) throws -> RawHeader {
        func string(_ offset: Int, _ length: Int) -> String {
            String(decoding: b[offset..<(offset + length)].prefix { $0 != 0 }, as: UTF8.self)
        }
        func number(_ offset: Int, _ length: Int) throws -> Int64 {
            let field = b[offset..<(offset + length)]
            if let first = field.first, first & 0x80 != 0 {  // base-256
                return field.dropFirst().reduce(Int64(first & 0x7f)) { ($0 << 8) | Int64($1) }
            }
            let text = String(decoding: field.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if text.isEmpty { return 0 }
            guard let value = Int64(text, radix: 8) else { throw UnpackError.malformed("bad number '\(text)' in a header") }
            return value
        }
        let stored = try number(148, 8)
        var sum: Int64 = 0
        for (i, byte) in b.enumerated() { sum += (148..<156).contains(i) ? 32 : Int64(byte) }
        guard stored == sum else { throw UnpackError.malformed("a header's checksum is wrong") }
        var name = string(0, 100)
        if string(257, 5) == "ustar" {
            let prefix = string(345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        let size = try number(124, 12)
        guard size >= 0 else { throw UnpackError.malformed("negative size") }
        return RawHeader(name: name, mode: Int(try number(100, 8)), size: size, mtime: try number(136, 12), type: b[156], linkName: string(157, 100))
    }

    static func parsePax(_ data: [UInt8]) -> [String: String] {
        var out: [String: String] = [:]
        var rest = data[...]
        while let space = rest.firstIndex(of: UInt8(ascii: " ")),
              let length = Int(String(decoding: rest[rest.startIndex..<space], as: UTF8.self)), length > 0,
              rest.count >= length
        {
            let record = rest[(space + 1)..<(rest.startIndex + length - 1)]
            if let eq = record.firstIndex(of: UInt8(ascii: "=")) {
                out[String(decoding: record[record.startIndex..<eq], as: UTF8.self)] = String(decoding: record[(eq + 1)...], as: UTF8.self)
            }
            rest = rest.dropFirst(length)
        }
        return out
    }

    struct BlockReader {
        let handle: FileHandle
        var buffer: [UInt8] = []
        var position = 0

        init(handle: FileHandle) { self.handle = handle }

        mutating func fill(_ count: Int) throws -> Bool {
            while buffer.count - position < count {
                if position > 0 {
                    buffer.removeFirst(position)
                    position = 0
                }
                guard let chunk = try handle.read(upToCount: max(1 << 20, count)), !chunk.isEmpty else { return false }
                buffer += chunk
            }
            return true
        }

        mutating func read(_ count: Int) throws -> [UInt8]? {
            guard try fill(count) else { return nil }
            defer { position += count }
            return Array(buffer[position..<(position + count)])
        }

        mutating func readPadded(_ size: Int64) throws -> [UInt8] {
            guard size <= 1 << 20 else { throw UnpackError.malformed("an extended header is too large") }
            guard let data = try read(Int(size)) else { throw UnpackError.malformed("truncated") }
            try skip(Int64(Tar.padding(size).count))
            return data
        }

        mutating func skip(_ count: Int64) throws {
            var left = count
            while left > 0 {
                let n = Int(min(left, 1 << 20))
                guard try fill(n) else { throw UnpackError.malformed("truncated") }
                position += n
                left -= Int64(n)
            }
        }

        mutating func skipPadded(_ size: Int64) throws {
            try skip(size + Int64(Tar.padding(size).count))
        }

        mutating func copy(_ size: Int64, to output: FileHandle) throws {
            var left = size
            while left > 0 {
                let n = Int(min(left, 1 << 20))
                guard try fill(n) else { throw UnpackError.malformed("truncated") }
                try output.write(contentsOf: buffer[position..<(position + n)])
                position += n
                left -= Int64(n)
            }
            try skip(Int64(Tar.padding(size).count))
        }
    }
}
