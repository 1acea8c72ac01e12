import Foundation
import Yams

/// One bake file's text and name (the name is what errors show).
public struct BakeFileSource: Sendable {
    public var name: String
    public var text: String

    public init(name: String, text: String) {
        self.name = name
        self.text = text
    }
}

public struct BakeOptions: Sendable {
    /// Variables' overrides (`TAG=v2 drydock bake`) and compose interpolation.
    public var environment: [String: String]
    /// `--set PATTERN.KEY=VALUE`, in order.
    public var overrides: [String] = []
    /// `BAKE_LOCAL_PLATFORM`.
    public var localPlatform: String
    /// `BAKE_CMD_CONTEXT`.
    public var commandContext: String = "cwd"

    public init(environment: [String: String], overrides: [String] = [], localPlatform: String, commandContext: String = "cwd") {
        self.environment = environment
        self.overrides = overrides
        self.localPlatform = localPlatform
        self.commandContext = commandContext
    }
}

/// Loads bake files (HCL, JSON, compose) and resolves the asked-for targets: variables with
/// environment overrides and validation, user functions, groups, `inherits` chains, matrices,
/// `--set` overrides, merged across files in order as buildx merges them.
public enum Bake {
    /// buildx's lookup order when no `-f` is given; every one found is loaded, in this order.
    public static let defaultFileNames = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml",
                                          "docker-bake.json", "docker-bake.hcl", "docker-bake.override.json", "docker-bake.override.hcl"]

    public static func defaultFiles(in directory: URL) -> [URL] {
        defaultFileNames.map { directory.appendingPathComponent($0) }.filter { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// Attributes that a later file (or a child target) replaces; the others (maps and lists) merge.
    static let replaced: Set<String> = ["cache-to", "dockerfile-inline", "dockerfile", "output", "platforms", "pull", "tags", "target",
                                        "context", "description", "network", "no-cache"]
    static let stringFields: Set<String> = ["context", "dockerfile", "dockerfile-inline", "target", "network", "description"]
    static let listFields: Set<String> = ["tags", "platforms", "annotations", "attest", "cache-from", "cache-to", "secret", "ssh", "output",
                                          "no-cache-filter", "entitlements"]
    static let mapFields: Set<String> = ["args", "labels", "contexts"]
    static let boolFields: Set<String> = ["pull", "no-cache"]
    static let structural: Set<String> = ["inherits", "matrix", "name"]

    public static func load(_ files: [BakeFileSource], names: [String], options: BakeOptions) throws -> BakeDefinition {
        var model = Model()
        for file in files {
            let lower = file.name.lowercased()
            if lower.hasSuffix(".json") {
                try model.addJSON(file)
            } else if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") {
                try model.addCompose(file, environment: options.environment)
            } else {
                try model.add(try HCLParser.parseFile(file.text, file: file.name), file: file.name)
            }
        }
        var resolver = Resolver(model: model, options: options)
        return try resolver.resolve(names)
    }
}

/// Blocks from every file, before evaluation.
struct Model {
    struct Layer {
        var attributes: [HCLAttribute]
        var position: SourcePosition
    }

    var variables: [String: HCLBlock] = [:]
    var functions: [String: HCLBlock] = [:]
    var groups: [String: (members: HCLExpr, position: SourcePosition)] = [:]
    var groupOrder: [String] = []
    /// Target name → its blocks, in file order.
    var targets: [String: [Layer]] = [:]
    var targetOrder: [String] = []

    mutating func add(_ body: HCLBody, file: String) throws {
        if let stray = body.attributes.first {
            throw BakeError("'\(stray.name) = …' at the top level: a bake file holds target, group, variable and function blocks", at: stray.position)
        }
        for block in body.blocks {
            guard block.labels.count == 1, let name = block.labels.first, !name.isEmpty else {
                throw BakeError("a \(block.type) block takes one name: \(block.type) \"NAME\" { … }", at: block.position)
            }
            switch block.type {
            case "variable": variables[name] = block
            case "function": functions[name] = block
            case "group":
                guard let targets = block.body.attributes.first(where: { $0.name == "targets" }) else {
                    throw BakeError("group '\(name)' has no targets = [...]", at: block.position)
                }
                if groups[name] == nil { groupOrder.append(name) }
                groups[name] = (targets.expr, block.position)
            case "target":
                for nested in block.body.blocks {
                    throw BakeError("unexpected block '\(nested.type)' in target '\(name)'", at: nested.position)
                }
                for attribute in block.body.attributes {
                    let known = Bake.stringFields.union(Bake.listFields).union(Bake.mapFields).union(Bake.boolFields).union(Bake.structural)
                    guard known.contains(attribute.name) else {
                        throw BakeError("unknown attribute '\(attribute.name)' in target '\(name)'", at: attribute.position)
                    }
                }
                if targets[name] == nil { targetOrder.append(name) }
                targets[name, default: []].append(Layer(attributes: block.body.attributes, position: block.position))
            default:
                throw BakeError("unknown block type '\(block.type)' (target, group, variable, function)", at: block.position)
            }
        }
    }

    /// JSON bake files: the same blocks as objects; their strings are templates (`${TAG}` works).
    mutating func addJSON(_ file: BakeFileSource) throws {
        let value: HCLValue
        do { value = try HCLValue.decodeJSON(file.text) } catch { throw BakeError("\(file.name): not valid JSON (\(error))") }
        guard case .object(let top) = value else { throw BakeError("\(file.name): a JSON bake file is an object") }
        let position = SourcePosition(file: file.name, line: 1, column: 1)
        func expr(_ v: HCLValue) throws -> HCLExpr {
            switch v {
            case .string(let s):
                var lexer = HCLLexer("\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n") + "\"",
                                     file: file.name)
                let tokens = try lexer.tokens()
                guard case .template(let pieces) = tokens[0].kind else { return .literal(v, position) }
                return .template(try HCLParser.template(pieces), position)
            case .list(let items): return .tuple(try items.map(expr), position)
            case .object(let fields): return .object(try fields.keys.sorted().map { (.name($0), try expr(fields[$0]!)) }, position)
            default: return .literal(v, position)
            }
        }
        var body = HCLBody()
        for (type, entries) in top.sorted(by: { $0.key < $1.key }) {
            guard case .object(let named) = entries else { throw BakeError("\(file.name): \"\(type)\" must be an object of named blocks") }
            for (name, content) in named.sorted(by: { $0.key < $1.key }) {
                guard case .object(let fields) = content else { throw BakeError("\(file.name): \(type) \"\(name)\" must be an object") }
                var inner = HCLBody()
                for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
                    if type == "variable", key == "validation", case .list(let rules) = value {
                        for rule in rules {
                            guard case .object(let r) = rule else { continue }
                            inner.blocks.append(HCLBlock(type: "validation", labels: [],
                                                         body: HCLBody(attributes: try r.map { HCLAttribute(name: $0.key, expr: try expr($0.value), position: position) }),
                                                         position: position))
                        }
                        continue
                    }
                    inner.attributes.append(HCLAttribute(name: key, expr: try expr(value), position: position))
                }
                body.blocks.append(HCLBlock(type: type, labels: [name], body: inner, position: position))
            }
        }
        try add(body, file: file.name)
    }

    /// Compose files: each service with `build:` is a target (its `image` a tag); `x-bake` holds bake's own fields.
    mutating func addCompose(_ file: BakeFileSource, environment: [String: String]) throws {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: file.text) } catch { throw BakeError("\(file.name): not valid YAML (\(error))") }
        guard let top = loaded as? [String: Any] else { throw BakeError("\(file.name): a compose file is a mapping") }
        let position = SourcePosition(file: file.name, line: 1, column: 1)
        func text(_ any: Any) -> String { ComposeInterpolation.apply("\(any)", environment) }
        func lit(_ s: String) -> HCLExpr { .literal(.string(s), position) }
        func list(_ items: [String]) -> HCLExpr { .tuple(items.map(lit), position) }
        func map(_ any: Any?) -> HCLExpr? {
            if let dict = any as? [String: Any] { return .object(dict.keys.sorted().map { (.name($0), lit(text(dict[$0]!))) }, position) }
            if let items = any as? [Any] {
                var fields: [(key: ObjectKey, value: HCLExpr)] = []
                for item in items.map(text) {
                    let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                    fields.append((.name(kv[0]), kv.count == 2 ? lit(kv[1]) : .literal(.null, position)))
                }
                return .object(fields, position)
            }
            return nil
        }
        var names: [String] = []
        for (service, definition) in ((top["services"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let def = definition as? [String: Any], let build = def["build"] else { continue }
            var attributes: [HCLAttribute] = []
            func set(_ name: String, _ expr: HCLExpr) { attributes.append(HCLAttribute(name: name, expr: expr, position: position)) }
            if let context = build as? String {
                set("context", lit(text(context)))
            } else if let b = build as? [String: Any] {
                set("context", lit(text(b["context"] ?? ".")))
                if let v = b["dockerfile"] { set("dockerfile", lit(text(v))) }
                if let v = b["dockerfile_inline"] { set("dockerfile-inline", lit(text(v))) }
                if let v = b["target"] { set("target", lit(text(v))) }
                if let v = map(b["args"]) { set("args", v) }
                if let v = map(b["labels"]) { set("labels", v) }
                if let v = map(b["additional_contexts"]) { set("contexts", v) }
                if let v = b["network"] { set("network", lit(text(v))) }
                if let v = b["no_cache"] as? Bool { set("no-cache", .literal(.bool(v), position)) }
                if let v = b["pull"] as? Bool { set("pull", .literal(.bool(v), position)) }
                var tags = ((b["tags"] as? [Any]) ?? []).map(text)
                if let image = def["image"] { tags.insert(text(image), at: 0) }
                if !tags.isEmpty { set("tags", list(tags)) }
                if let v = b["platforms"] as? [Any] { set("platforms", list(v.map(text))) }
                if let v = b["cache_from"] as? [Any] { set("cache-from", list(v.map(text))) }
                if let v = b["cache_to"] as? [Any] { set("cache-to", list(v.map(text))) }
                if let v = b["secrets"] as? [Any] { set("secret", list(v.map { "id=\(text($0))" })) }
                if let v = b["ssh"] as? [Any] { set("ssh", list(v.map(text))) }
                if let x = b["x-bake"] as? [String: Any] {
                    for (key, value) in x.sorted(by: { $0.key < $1.key }) {
                        if let items = value as? [Any] { set(key, list(items.map(text))) }
                        else if let b = value as? Bool { set(key, .literal(.bool(b), position)) }
                        else if let m = map(value) { set(key, m) }
                        else { set(key, lit(text(value))) }
                    }
                }
            }
            if attributes.first(where: { $0.name == "tags" }) == nil, let image = def["image"] { set("tags", list([text(image)])) }
            try add(HCLBody(blocks: [HCLBlock(type: "target", labels: [service], body: HCLBody(attributes: attributes), position: position)]), file: file.name)
            names.append(service)
        }
        if groups["default"] == nil, !names.isEmpty {
            groupOrder.append("default")
            groups["default"] = (list(names), position)
        }
    }
}

/// `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$VAR` in compose files, from the environment.
enum ComposeInterpolation {
    static func apply(_ text: String, _ environment: [String: String]) -> String {
        var out = ""
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            guard c == "$" else { out.append(c); continue }
            if chars.first == "$" { chars.removeFirst(); out.append("$"); continue }
            if chars.first == "{" {
                chars.removeFirst()
                var inner = ""
                while let d = chars.popFirst(), d != "}" { inner.append(d) }
                if let range = inner.range(of: ":-") {
                    let name = String(inner[..<range.lowerBound])
                    let value = environment[name] ?? ""
                    out += value.isEmpty ? String(inner[range.upperBound...]) : value
                } else if let range = inner.range(of: "-") {
                    out += environment[String(inner[..<range.lowerBound])] ?? String(inner[range.upperBound...])
                } else {
                    out += environment[inner] ?? ""
                }
                continue
            }
            var name = ""
            while let d = chars.first, d.isLetter || d.isNumber || d == "_" { name.append(d); chars.removeFirst() }
            out += name.isEmpty ? "$" : environment[name] ?? ""
        }
        return out
    }
}
