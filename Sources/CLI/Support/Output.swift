import DrydockClient
import Foundation

/// The one renderer for `--format table|json`.
enum Output {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) throws {
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    /// Left-aligned columns with a header; empty lists say so instead of printing nothing.
    static func table(_ headers: [String], _ rows: [[String]], empty: String) {
        guard !rows.isEmpty else {
            print(empty)
            return
        }
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(line(headers))
        for row in rows { print(line(row)) }
    }

    static func date(_ date: Date?) -> String {
        guard let date else { return "-" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func bytes(_ count: Int64) -> String {
        ByteCountFormatter.string(fromByteCount: count, countStyle: .binary)
    }

    static func keyValues(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (key, value) in pairs {
            print("\(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(value)")
        }
    }
}

extension Components.Schemas.Project {
    var tableRow: [String] {
        [id, name, "\(cachePolicy.keepGigabytes) GB / \(cachePolicy.keepDays) days", Output.date(createdAt)]
    }
    static let tableHeaders = ["ID", "NAME", "CACHE", "CREATED"]
}

extension Components.Schemas.Token {
    var tableRow: [String] {
        [id, name, kind.rawValue, projectId ?? "-", prefix + "…", Output.date(createdAt),
         expiresAt.map(Output.date) ?? "never", lastUsedAt.map(Output.date) ?? "never",
         revokedAt == nil ? "active" : "revoked"]
    }
    static let tableHeaders = ["ID", "NAME", "KIND", "PROJECT", "SECRET", "CREATED", "EXPIRES", "LAST USED", "STATUS"]
}
