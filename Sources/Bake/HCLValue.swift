import Foundation

/// Where something is in a bake file, for errors that name `FILE:LINE:COLUMN`.
public struct SourcePosition: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// A bake error: one line, naming the file, line and column.
public struct BakeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var position: SourcePosition?
    public var message: String

    public init(_ message: String, at position: SourcePosition? = nil) {
        self.message = message
        self.position = position
    }

    public var description: String { position.map { "\($0): \(message)" } ?? message }
}

/// An HCL value, as bake files compute them (cty's types, simplified: lists, tuples and sets are
/// lists; maps and objects are objects).
public enum HCLValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case list([HCLValue])
    case object([String: HCLValue])

    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "string"
        case .list: "list"
        case .object: "object"
        }
    }

    /// The value as text, for templates and string conversion (numbers without a fraction print as integers).
    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let v): v ? "true" : "false"
        case .number(let v): Self.format(v)
        case .string(let v): v
        case .list, .object: (try? jsonString()) ?? ""
        }
    }

    static func format(_ v: Double) -> String {
        if v.isFinite, v.rounded() == v, abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    /// JSON text (objects with sorted keys).
    public func jsonString() throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: jsonObject, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]), as: UTF8.self)
    }

    public var jsonObject: Any {
        switch self {
        case .null: NSNull()
        case .bool(let v): v
        case .number(let v): v.rounded() == v && abs(v) < 1e15 ? Int64(v) as Any : v as Any
        case .string(let v): v
        case .list(let items): items.map(\.jsonObject)
        case .object(let fields): fields.mapValues(\.jsonObject)
        }
    }

    public var isNull: Bool { if case .null = self { true } else { false } }
}

/// JSON bake files and `jsondecode`: values as JSON has them (booleans are not numbers).
extension HCLValue: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let v = try? container.decode(Bool.self) { self = .bool(v) }
        else if let v = try? container.decode(Double.self) { self = .number(v) }
        else if let v = try? container.decode(String.self) { self = .string(v) }
        else if let v = try? container.decode([HCLValue].self) { self = .list(v) }
        else { self = .object(try container.decode([String: HCLValue].self)) }
    }

    public static func decodeJSON(_ text: String) throws -> HCLValue {
        try JSONDecoder().decode(HCLValue.self, from: Data(text.utf8))
    }
}
