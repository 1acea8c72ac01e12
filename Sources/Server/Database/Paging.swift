import Foundation
import PostgresNIO

/// A page of a list, newest first, and the cursor of the next page if there is one.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?
}

/// Lists are ordered by a per-table `seq` (bigserial), so cursors are exact and stable while
/// rows are added. A cursor is the last `seq` seen, base64url-encoded to stay opaque.
enum PageCursor {
    static func encode(_ seq: Int64) -> String {
        Data("v1:\(seq)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Int64.max when there is no cursor, so "seq < cursor" starts at the newest row.
    static func decode(_ cursor: String?) throws -> Int64 {
        guard let cursor, !cursor.isEmpty else { return Int64.max }
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
              let text = String(data: data, encoding: .utf8), text.hasPrefix("v1:"),
              let seq = Int64(text.dropFirst(3)), seq > 0
        else {
            throw DomainError.invalidField("cursor", "is not a cursor returned by this list; start again without it")
        }
        return seq
    }

    static func limit(_ limit: Int?) throws -> Int {
        let limit = limit ?? 50
        guard (1...200).contains(limit) else { throw DomainError.invalidField("limit", "must be between 1 and 200") }
        return limit
    }

    /// Trims the one extra row fetched to know whether another page follows.
    static func page<Item>(_ rows: [(seq: Int64, item: Item)], limit: Int) -> Page<Item> {
        let more = rows.count > limit
        let kept = rows.prefix(limit)
        return Page(items: kept.map(\.item), nextCursor: more ? kept.last.map { encode($0.seq) } : nil)
    }
}

extension Error {
    /// PostgreSQL's unique_violation (23505).
    var isUniqueViolation: Bool {
        (self as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }
}
