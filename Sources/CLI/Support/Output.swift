import DrydockClient
import Foundation

/// How every command shows what it got, for `--format table|json|csv`: a list as a table (or
/// CSV rows), one thing as aligned fields (or `field,value` rows), JSON as the API gave it.
extension FormatOption {
    /// A list. Every list's `--format json` has one shape, the API's page:
    /// `{"items": [...], "nextCursor": "..."}` (the cursor only when there is more).
    func list<T: Encodable>(_ items: [T], nextCursor: String? = nil, headers: [String], rows: [[String]], empty: String) throws {
        switch format {
        case .json: try Output.json(ListPage(items: items, nextCursor: nextCursor))
        case .csv: Output.csv([headers] + rows)
        case .table:
            Output.table(headers, rows, empty: empty)
            if let nextCursor { FileHandle.standardError.write(Data("more: add --cursor \(nextCursor)\n".utf8)) }
        }
    }

    /// One thing, as named fields.
    func details(_ json: some Encodable, _ fields: [(String, String)]) throws {
        switch format {
        case .json: try Output.json(json)
        case .csv: Output.csv([["FIELD", "VALUE"]] + fields.map { [$0.0, $0.1] })
        case .table: Output.keyValues(fields)
        }
    }

    /// Something just made. Tables say so in a sentence (on stderr when stdout carries a
    /// `secret`, shown once, alone, so scripts can capture it); CSV gives the fields.
    func created(_ json: some Encodable, message: String, secret: String? = nil, fields: [(String, String)]) throws {
        switch format {
        case .json: try Output.json(json)
        case .csv: Output.csv([["FIELD", "VALUE"]] + fields.map { [$0.0, $0.1] })
        case .table:
            if let secret {
                FileHandle.standardError.write(Data((message + "\n").utf8))
                print(secret)
            } else {
                print(message)
            }
        }
    }
}

/// What every list's `--format json` prints.
struct ListPage<T: Encodable>: Encodable {
    let items: [T]
    let nextCursor: String?
}

enum Output {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = RFC3339DateTranscoder.encodingStrategy
        return encoder
    }()

    /// A line on stderr (diagnostics that must not mix with a command's output).
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

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

    /// RFC 4180: fields with commas, quotes or line breaks are quoted, quotes doubled.
    static func csv(_ rows: [[String]]) {
        for row in rows {
            print(row.map { field in
                field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                    ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
            }.joined(separator: ","))
        }
    }

    static func date(_ date: Date?) -> String {
        guard let date else { return "-" }
        return (try? RFC3339DateTranscoder().encode(date)) ?? "-"
    }

    /// Sizes in decimal units as docker shows them (1 MB = 1,000,000 bytes), one decimal.
    static func bytes(_ count: Int64) -> String {
        bytes(count, unit: unit(for: count))
    }

    static func unit(for count: Int64) -> (name: String, size: Double) {
        let units: [(String, Double)] = [("B", 1), ("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12)]
        return units.last { Double(count) >= $0.1 } ?? ("B", 1)
    }

    /// In a given unit, so figures side by side compare at a glance.
    static func bytes(_ count: Int64, unit: (name: String, size: Double)) -> String {
        unit.size == 1 ? "\(count) B" : String(format: "%.1f %@", Double(count) / unit.size, unit.name)
    }

    static func keyValues(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (key, value) in pairs {
            print("\(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(value)")
        }
    }
}
