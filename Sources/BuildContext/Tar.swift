import Foundation

/// Just enough of the tar format for build contexts: ustar headers, PAX records for long names,
/// link targets and large sizes. Written deterministically (sorted, owner 0:0) so an unchanged
/// context has an unchanged digest.
public enum Tar {
    public enum EntryType: UInt8, Sendable {
        case file = 48       // '0'
        case hardLink = 49   // '1'
        case symlink = 50    // '2'
        case directory = 53  // '5'
    }

    public struct Header: Sendable {
        public var path: String
        public var type: EntryType
        public var mode: Int
        public var size: Int64
        public var mtime: Int64
        public var linkName: String = ""

        public init(path: String, type: EntryType, mode: Int, size: Int64, mtime: Int64, linkName: String = "") {
            self.path = path
            self.type = type
            self.mode = mode
            self.size = size
            self.mtime = mtime
            self.linkName = linkName
        }
    }

    static func octal(_ value: Int64, width: Int) -> [UInt8] {
        var digits = Array(String(value, radix: 8).utf8)
        if digits.count > width - 1 { digits = Array(repeating: UInt8(ascii: "7"), count: width - 1) }
        return Array(repeating: UInt8(ascii: "0"), count: width - 1 - digits.count) + digits + [0]
    }

    static func block(name: String, type: UInt8, mode: Int, size: Int64, mtime: Int64, linkName: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], _ offset: Int, _ max: Int) {
            for (i, b) in bytes.prefix(max).enumerated() { h[offset + i] = b }
        }
        put(Array(name.utf8), 0, 100)
        put(octal(Int64(mode & 0o7777), width: 8), 100, 8)
        put(octal(0, width: 8), 108, 8)
        put(octal(0, width: 8), 116, 8)
        put(octal(size, width: 12), 124, 12)
        put(octal(mtime, width: 12), 136, 12)
        put(Array(repeating: UInt8(ascii: " "), count: 8), 148, 8)
        h[156] = type
        put(Array(linkName.utf8), 157, 100)
        put(Array("ustar\u{0}00".utf8), 257, 8)
        let sum = h.reduce(0) { $0 + Int64($1) }
        put(octal(sum, width: 7) + [UInt8(ascii: " ")], 148, 8)
        return h
    }

    static func paxRecord(_ key: String, _ value: String) -> [UInt8] {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).utf8.count + body.utf8.count != length { length = String(length).utf8.count + body.utf8.count }
        return Array("\(length)\(body)".utf8)
    }

    /// The header blocks for an entry (a PAX block first when the name, link or size needs it).
    public static func headerBlocks(_ header: Header) -> [UInt8] {
        var name = header.path
        if header.type == .directory, !name.hasSuffix("/") { name += "/" }
        var pax: [UInt8] = []
        if name.utf8.count > 100 { pax += paxRecord("path", name) }
        if header.linkName.utf8.count > 100 { pax += paxRecord("linkpath", header.linkName) }
        if header.size > 0o77777777777 { pax += paxRecord("size", String(header.size)) }
        var out: [UInt8] = []
        if !pax.isEmpty {
            out += block(name: "PaxHeaders/" + String(name.suffix(80)), type: UInt8(ascii: "x"), mode: 0o644,
                         size: Int64(pax.count), mtime: header.mtime, linkName: "")
            out += pax + padding(Int64(pax.count))
        }
        out += block(name: String(decoding: Array(name.utf8).prefix(100), as: UTF8.self), type: header.type.rawValue,
                     mode: header.mode, size: header.type == .file ? header.size : 0, mtime: header.mtime,
                     linkName: String(decoding: Array(header.linkName.utf8).prefix(100), as: UTF8.self))
        return out
    }

    public static func padding(_ size: Int64) -> [UInt8] {
        let rest = Int(size % 512)
        return rest == 0 ? [] : [UInt8](repeating: 0, count: 512 - rest)
    }

    public static let end = [UInt8](repeating: 0, count: 1024)
}
