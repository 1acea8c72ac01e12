import Foundation
import Yams

/// The request side of `openapi.yaml`, enforced as written: every query parameter and JSON body
/// of every operation is checked against its schema's rules (types, whole numbers, `minimum`,
/// `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, `pattern`, `enum`, `required`,
/// `additionalProperties: false`, and no `null` where the schema does not allow it) before the
/// generated code decodes it, and a violation names the parameter or field at fault. Built once,
/// at start-up, from the document the server embeds and serves, so the contract and the checks
/// cannot drift apart.
public final class Contract: Sendable {
    final class Schema: @unchecked Sendable {
        var type: String?
        var properties: [String: Schema] = [:]
        var required: [String] = []
        var closed = false
        var additional: Schema?
        var items: Schema?
        var enumValues: [String]?
        var minLength: Int?
        var maxLength: Int?
        var minItems: Int?
        var maxItems: Int?
        var minimum: Double?
        var maximum: Double?
        var pattern: NSRegularExpression?
        var patternText: String?
        /// What the pattern means, in words (`x-pattern-message`).
        var patternMessage: String?
        var nullable = false
    }

    struct Operation: @unchecked Sendable {
        var query: [String: Schema] = [:]
        var body: Schema?
    }

    /// A rule broken: the field (a dotted JSON path, or the query parameter's name) and why.
    public struct Violation: Error, Equatable, Sendable {
        public let field: String
        public let message: String
    }

    private let operations: [String: Operation]

    public init(yaml: String) throws {
        guard let document = try Yams.load(yaml: yaml) as? [String: Any] else { throw ConfigurationError("openapi.yaml is not a YAML mapping") }
        let components = document["components"] as? [String: Any] ?? [:]
        let schemas = components["schemas"] as? [String: Any] ?? [:]
        let parameters = components["parameters"] as? [String: Any] ?? [:]
        var cache: [String: Schema] = [:]

        func schema(_ raw: Any?, depth: Int = 0) -> Schema {
            let result = Schema()
            guard let raw = raw as? [String: Any], depth < 32 else { return result }
            if let ref = raw["$ref"] as? String {
                let name = String(ref.split(separator: "/").last ?? "")
                if let cached = cache[name] { return cached }
                let placeholder = Schema()
                cache[name] = placeholder
                let resolved = schema(schemas[name], depth: depth + 1)
                cache[name] = resolved
                return resolved
            }
            result.type = raw["type"] as? String
            if let types = raw["type"] as? [String] {
                result.type = types.first { $0 != "null" }
                result.nullable = types.contains("null")
            }
            if raw["nullable"] as? Bool == true { result.nullable = true }
            for (name, sub) in raw["properties"] as? [String: Any] ?? [:] { result.properties[name] = schema(sub, depth: depth + 1) }
            result.required = raw["required"] as? [String] ?? []
            if raw["additionalProperties"] as? Bool == false { result.closed = true }
            if let additional = raw["additionalProperties"] as? [String: Any] { result.additional = schema(additional, depth: depth + 1) }
            if let items = raw["items"] { result.items = schema(items, depth: depth + 1) }
            if let values = raw["enum"] as? [Any] { result.enumValues = values.map { "\($0)" } }
            result.minLength = raw["minLength"] as? Int
            result.maxLength = raw["maxLength"] as? Int
            result.minItems = raw["minItems"] as? Int
            result.maxItems = raw["maxItems"] as? Int
            result.minimum = (raw["minimum"] as? NSNumber)?.doubleValue
            result.maximum = (raw["maximum"] as? NSNumber)?.doubleValue
            if let pattern = raw["pattern"] as? String {
                result.patternText = pattern
                result.pattern = try? NSRegularExpression(pattern: pattern)
                result.patternMessage = raw["x-pattern-message"] as? String
            }
            return result
        }

        var operations: [String: Operation] = [:]
        for (_, item) in document["paths"] as? [String: Any] ?? [:] {
            guard let item = item as? [String: Any] else { continue }
            let shared = item["parameters"] as? [Any] ?? []
            for (method, raw) in item where ["get", "put", "post", "patch", "delete", "head"].contains(method) {
                guard let op = raw as? [String: Any], let id = op["operationId"] as? String else { continue }
                var operation = Operation()
                for parameter in shared + (op["parameters"] as? [Any] ?? []) {
                    var parameter = parameter as? [String: Any] ?? [:]
                    if let ref = parameter["$ref"] as? String {
                        parameter = parameters[String(ref.split(separator: "/").last ?? "")] as? [String: Any] ?? [:]
                    }
                    guard parameter["in"] as? String == "query", let name = parameter["name"] as? String else { continue }
                    operation.query[name] = schema(parameter["schema"])
                }
                if let body = op["requestBody"] as? [String: Any], let content = body["content"] as? [String: Any],
                   let json = content["application/json"] as? [String: Any] {
                    operation.body = schema(json["schema"])
                }
                operations[id] = operation
            }
        }
        self.operations = operations
    }

    /// The operation's query parameters, as sent (percent-decoded); the first rule broken, if any.
    public func checkQuery(operation: String, _ items: [(String, String)]) -> Violation? {
        guard let op = operations[operation] else { return nil }
        for (name, text) in items {
            guard let schema = op.query[name] else { continue }  // unknown parameters are ignored, as HTTP does
            let value: JSONValue
            switch schema.type {
            case "integer":
                guard let number = Int64(text) else { return Violation(field: name, message: "must be a whole number (got '\(Self.shown(text))')") }
                value = .integer(number)
            case "number":
                guard let number = Double(text), number.isFinite else { return Violation(field: name, message: "must be a number (got '\(Self.shown(text))')") }
                value = .number(number)
            case "boolean":
                guard text == "true" || text == "false" else { return Violation(field: name, message: "must be true or false (got '\(Self.shown(text))')") }
                value = .bool(text == "true")
            default:
                value = .string(text)
            }
            if let violation = check(value, schema, path: name) { return violation }
        }
        return nil
    }

    /// The operation's JSON body; the first rule broken, if any. Bodies that are not JSON are
    /// left to the decoder (which says so).
    public func checkBody(operation: String, _ bytes: [UInt8]) -> Violation? {
        guard let schema = operations[operation]?.body,
              let value = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else { return nil }
        return check(value, schema, path: "")
    }

    static func shown(_ text: String) -> String { text.count > 40 ? String(text.prefix(40)) + "…" : text }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func check(_ value: JSONValue, _ schema: Schema, path: String) -> Violation? {
        let field = path.isEmpty ? "body" : path
        if case .null = value {
            return schema.nullable ? nil : Violation(field: field, message: "must not be null; leave it out to use its default")
        }
        switch schema.type {
        case "object":
            guard case .object(let object) = value else { return Violation(field: field, message: "must be an object") }
            for name in schema.required where object[name] == nil {
                return Violation(field: Self.join(path, name), message: "is required")
            }
            for (key, member) in object.sorted(by: { $0.key < $1.key }) {
                if let sub = schema.properties[key] ?? schema.additional {
                    if let violation = check(member, sub, path: Self.join(path, key)) { return violation }
                } else if schema.closed {
                    let known = schema.properties.keys.sorted().joined(separator: ", ")
                    return Violation(field: Self.join(path, key), message: "is not a field here (the fields are: \(known))")
                }
            }
        case "array":
            guard case .array(let array) = value else { return Violation(field: field, message: "must be an array") }
            if let max = schema.maxItems, array.count > max { return Violation(field: field, message: "has \(array.count) items; at most \(max) are allowed") }
            if let min = schema.minItems, array.count < min { return Violation(field: field, message: "needs at least \(min) item\(min == 1 ? "" : "s")") }
            if let items = schema.items {
                for (i, element) in array.enumerated() {
                    if let violation = check(element, items, path: "\(path)[\(i)]") { return violation }
                }
            }
        case "string":
            guard case .string(let string) = value else { return Violation(field: field, message: "must be a string") }
            let length = string.unicodeScalars.count
            if let max = schema.maxLength, length > max { return Violation(field: field, message: "is \(length) characters long; at most \(max) are allowed") }
            if let min = schema.minLength, length < min {
                return Violation(field: field, message: min == 1 ? "must not be empty" : "must be at least \(min) characters long")
            }
            if let values = schema.enumValues, !values.contains(string) {
                return Violation(field: field, message: "must be one of \(values.joined(separator: ", ")) (got '\(Self.shown(string))')")
            }
            if let pattern = schema.pattern {
                let range = NSRange(string.startIndex..., in: string)
                if pattern.firstMatch(in: string, range: range) == nil {
                    if let message = schema.patternMessage { return Violation(field: field, message: "\(message) (got '\(Self.shown(string))')") }
                    return Violation(field: field, message: "'\(Self.shown(string))' does not match \(schema.patternText ?? "the pattern")")
                }
            }
        case "integer", "number":
            let double: Double
            switch value {
            case .integer(let number): double = Double(number)
            case .number(let number):
                if schema.type == "integer" {
                    if number.rounded() != number { return Violation(field: field, message: "must be a whole number (got \(number))") }
                    return Violation(field: field, message: "is too large (got \(number))")
                }
                double = number
            default:
                return Violation(field: field, message: schema.type == "integer" ? "must be a whole number" : "must be a number")
            }
            if let min = schema.minimum, double < min { return Violation(field: field, message: "must be at least \(Self.figure(min)) (got \(Self.figure(double)))") }
            if let max = schema.maximum, double > max { return Violation(field: field, message: "must be at most \(Self.figure(max)) (got \(Self.figure(double)))") }
        case "boolean":
            guard case .bool = value else { return Violation(field: field, message: "must be true or false") }
        default:
            break
        }
        return nil
    }

    static func figure(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// A JSON value with its kind kept (a whole number is not a fraction, `true` is not 1).
enum JSONValue: Decodable {
    case null, bool(Bool), integer(Int64), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
