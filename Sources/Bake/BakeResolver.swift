import Foundation

/// Evaluates a loaded model into the targets asked for.
struct Resolver {
    let model: Model
    let options: BakeOptions
    var variableValues: [String: HCLValue] = [:]
    var resolving: [String] = []
    /// Target name → resolved target (after inherits; before matrix expansion of its own).
    var resolvedTargets: [String: [BakeTarget]] = [:]
    /// The targets being resolved now (for cycles through inherits and target.NAME references).
    var currentTargets: [String] = []
    var functionVariablesResolved = false

    init(model: Model, options: BakeOptions) {
        self.model = model
        self.options = options
    }

    // MARK: variables and functions

    /// The evaluator over the bake file's variables (resolved on first use) and functions.
    func evaluator(_ lookup: @escaping (String, SourcePosition) throws -> HCLValue?) -> HCLEvaluator {
        // One table for this evaluation; user functions call through it (and so each other).
        let table = FunctionTable()
        var functions = HCLStandardLibrary.all
        for (name, block) in model.functions {
            let attributes = Dictionary(block.body.attributes.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
            let params: [String] = {
                guard case .tuple(let items, _)? = attributes["params"]?.expr else { return [] }
                return items.compactMap { if case .variable(let n, _) = $0 { n } else { nil } }
            }()
            let variadic: String? = { if case .variable(let n, _)? = attributes["variadic_param"]?.expr { n } else { nil } }()
            guard let result = attributes["result"]?.expr else { continue }
            // User functions see the file's variables and the other functions.
            let captured = UserFunction(params: params, variadic: variadic, result: result, lookup: lookup, table: table)
            functions[name] = HCLFunction(minimum: params.count, maximum: variadic == nil ? params.count : nil) { args, _ in
                try captured.call(args)
            }
        }
        table.functions = functions
        return HCLEvaluator(functions: functions, lookup: lookup)
    }

    mutating func variable(_ name: String, _ position: SourcePosition) throws -> HCLValue? {
        if let known = variableValues[name] { return known }
        switch name {
        case "BAKE_LOCAL_PLATFORM": return .string(options.localPlatform)
        case "BAKE_CMD_CONTEXT": return .string(options.commandContext)
        default: break
        }
        guard let block = model.variables[name] else { return nil }
        if resolving.contains(name) {
            throw BakeError("variable '\(name)' depends on itself: \((resolving + [name]).joined(separator: " -> "))", at: position)
        }
        resolving.append(name)
        defer { resolving.removeLast() }
        let attributes = Dictionary(block.body.attributes.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        var value: HCLValue = .string("")
        if let defaultAttribute = attributes["default"] {
            value = try evaluateWithVariables(defaultAttribute.expr)
        }
        if let raw = options.environment[name] {
            value = try Self.convert(raw, like: value, variable: name, at: block.position)
        }
        // validation { condition = …  error_message = "…" }
        for rule in block.body.blocks where rule.type == "validation" {
            let ruleAttributes = Dictionary(rule.body.attributes.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
            guard let condition = ruleAttributes["condition"] else { throw BakeError("a validation block needs a condition", at: rule.position) }
            variableValues[name] = value
            let ok = try HCLEvaluator.bool(try evaluateWithVariables(condition.expr), condition.position, "a validation condition")
            if !ok {
                let message = try ruleAttributes["error_message"].map { HCLEvaluator.string(try evaluateWithVariables($0.expr)) ?? "" } ?? "invalid value"
                variableValues[name] = nil
                throw BakeError("variable \(name) = \(value.description.isEmpty ? "\"\"" : value.description): \(message)", at: condition.expr.start)
            }
        }
        variableValues[name] = value
        return value
    }

    /// An environment value typed like the variable's default (numbers, booleans, JSON for lists and maps).
    static func convert(_ raw: String, like value: HCLValue, variable: String, at position: SourcePosition) throws -> HCLValue {
        switch value {
        case .number:
            guard let n = Double(raw) else { throw BakeError("variable \(variable) is a number, and the environment gives '\(raw)'", at: position) }
            return .number(n)
        case .bool:
            guard raw == "true" || raw == "false" else { throw BakeError("variable \(variable) is a bool, and the environment gives '\(raw)'", at: position) }
            return .bool(raw == "true")
        case .list, .object:
            guard let decoded = try? HCLValue.decodeJSON(raw) else { throw BakeError("variable \(variable) is a \(value.typeName); give it as JSON", at: position) }
            return decoded
        default:
            return .string(raw)
        }
    }

    mutating func evaluateWithVariables(_ expr: HCLExpr, _ scope: [String: HCLValue] = [:]) throws -> HCLValue {
        var scope = scope
        // `target.NAME.ATTR`: another target's resolved attributes (as --print shows them).
        let referenced = Set(expr.attributeNames(of: "target"))
        if !referenced.isEmpty, scope["target"] == nil, model.variables["target"] == nil {
            var fields: [String: HCLValue] = [:]
            for name in referenced.sorted() {
                let made = try target(name, chain: currentTargets, position: expr.position)
                guard made.count == 1 else { throw BakeError("target.\(name) is a matrix of \(made.count) targets; name one of them", at: expr.position) }
                let json = try JSONSerialization.data(withJSONObject: made[0].printed, options: [.sortedKeys])
                fields[name] = try HCLValue.decodeJSON(String(decoding: json, as: UTF8.self))
            }
            scope["target"] = .object(fields)
        }
        // Resolve the variables the expression reads first, so the evaluator's lookup is a plain read.
        for name in Set(expr.variables) where scope[name] == nil && name != "target" { _ = try variable(name, expr.position) }
        // And, once, the variables user functions read (a function body is evaluated where it is called).
        if !functionVariablesResolved {
            functionVariablesResolved = true
            for (_, block) in model.functions {
                for attribute in block.body.attributes where attribute.name == "result" {
                    for name in Set(attribute.expr.variables) { _ = try variable(name, attribute.position) }
                }
            }
        }
        let known = variableValues
        let platform = options.localPlatform, context = options.commandContext
        let evaluator = self.evaluator { name, _ in
            if let v = known[name] { return v }
            if name == "BAKE_LOCAL_PLATFORM" { return .string(platform) }
            if name == "BAKE_CMD_CONTEXT" { return .string(context) }
            return nil
        }
        return try evaluator.evaluate(expr, scope)
    }

    // MARK: targets

    /// The targets a name stands for: itself, or a matrix's generated names.
    mutating func target(_ name: String, chain: [String], position: SourcePosition?) throws -> [BakeTarget] {
        if let done = resolvedTargets[name] { return done }
        if chain.contains(name) {
            throw BakeError("a cycle through inherits or target references: \((chain + [name]).joined(separator: " -> "))", at: position)
        }
        guard let layers = model.targets[name] else {
            throw BakeError("unknown target '\(name)'" + (chain.last.map { " (inherited by '\($0)')" } ?? ""), at: position)
        }
        currentTargets.append(name)
        defer { currentTargets.removeLast() }
        let all = layers.flatMap(\.attributes)
        let matrixAttribute = all.last { $0.name == "matrix" }
        var combinations: [[String: HCLValue]] = [[:]]
        if let matrixAttribute {
            guard case .object(let axes) = try evaluateWithVariables(matrixAttribute.expr) else {
                throw BakeError("matrix must be an object of lists, e.g. { tgt = [\"a\", \"b\"] }", at: matrixAttribute.position)
            }
            for axis in axes.keys.sorted() {
                guard case .list(let values) = axes[axis]! else { throw BakeError("matrix.\(axis) must be a list", at: matrixAttribute.position) }
                combinations = combinations.flatMap { combo in values.map { combo.merging([axis: $0]) { $1 } } }
            }
        }
        var out: [BakeTarget] = []
        for combo in combinations {
            var targetName = name
            if matrixAttribute != nil {
                guard let nameAttribute = all.last(where: { $0.name == "name" }) else {
                    throw BakeError("target '\(name)' has a matrix and so needs name = \"…${…}\" to tell its targets apart", at: matrixAttribute!.position)
                }
                guard let generated = HCLEvaluator.string(try evaluateWithVariables(nameAttribute.expr, combo)), !generated.isEmpty else {
                    throw BakeError("a matrix target's name must be a string", at: nameAttribute.position)
                }
                targetName = generated
            }
            var result = BakeTarget(name: targetName)
            // inherits first (in order), then this target's own attributes, file by file.
            if let inherits = all.last(where: { $0.name == "inherits" }) {
                guard case .list(let parents) = try evaluateWithVariables(inherits.expr, combo) else {
                    throw BakeError("inherits must be a list of target names", at: inherits.position)
                }
                for parent in parents {
                    guard let parentName = HCLEvaluator.string(parent) else { throw BakeError("inherits must be a list of target names", at: inherits.position) }
                    let resolved = try target(parentName, chain: chain + [name], position: inherits.position)
                    guard resolved.count == 1 else {
                        throw BakeError("'\(parentName)' is a matrix of \(resolved.count) targets; inherit from one of them by name", at: inherits.position)
                    }
                    result = Self.merge(result, resolved[0])
                }
            }
            for layer in layers {
                var own = BakeTarget(name: targetName)
                var set: Set<String> = []
                for attribute in layer.attributes where !Bake.structural.contains(attribute.name) {
                    try apply(attribute.name, try evaluateWithVariables(attribute.expr, combo), to: &own, at: attribute.position)
                    set.insert(attribute.name)
                }
                result = Self.merge(result, own, only: set)
            }
            out.append(result)
        }
        resolvedTargets[name] = out
        return out
    }

    /// Sets one attribute's value on a target, checking its type.
    func apply(_ key: String, _ value: HCLValue, to target: inout BakeTarget, at position: SourcePosition) throws {
        func string() throws -> String? {
            if value.isNull { return nil }
            guard let s = HCLEvaluator.string(value) else { throw BakeError("\(key) must be a string, not \(value.typeName)", at: position) }
            return s
        }
        func strings() throws -> [String] {
            if value.isNull { return [] }
            guard case .list(let items) = value else {
                if let single = HCLEvaluator.string(value) { return [single] }
                throw BakeError("\(key) must be a list of strings, not \(value.typeName)", at: position)
            }
            return try items.map {
                guard let s = HCLEvaluator.string($0) else { throw BakeError("\(key) must be a list of strings; it holds a \($0.typeName)", at: position) }
                return s
            }
        }
        func map() throws -> [String: String?] {
            if value.isNull { return [:] }
            guard case .object(let fields) = value else { throw BakeError("\(key) must be a map of strings, not \(value.typeName)", at: position) }
            return try fields.mapValues {
                if $0.isNull { return nil }
                guard let s = HCLEvaluator.string($0) else { throw BakeError("\(key) values must be strings; one is a \($0.typeName)", at: position) }
                return s
            }
        }
        func bool() throws -> Bool? {
            if value.isNull { return nil }
            return try HCLEvaluator.bool(value, position, key)
        }
        switch key {
        case "context": target.context = try string()
        case "dockerfile": target.dockerfile = try string()
        case "dockerfile-inline": target.dockerfileInline = try string()
        case "target": target.target = try string()
        case "network": target.network = try string()
        case "description": target.description = try string()
        case "tags": target.tags = try strings()
        case "platforms": target.platforms = try strings()
        case "annotations": target.annotations = try strings()
        case "attest": target.attest = try strings()
        case "cache-from": target.cacheFrom = try strings()
        case "cache-to": target.cacheTo = try strings()
        case "secret": target.secret = try strings()
        case "ssh": target.ssh = try strings()
        case "output": target.output = try strings()
        case "no-cache-filter": target.noCacheFilter = try strings()
        case "entitlements": target.entitlements = try strings()
        case "args": target.args = try map()
        case "labels": target.labels = try map()
        case "contexts": target.contexts = try map().compactMapValues { $0 }
        case "pull": target.pull = try bool()
        case "no-cache": target.noCache = try bool()
        default: throw BakeError("unknown attribute '\(key)'", at: position)
        }
    }

    /// `child` over `base`: replaced fields take the child's when it sets them; maps merge by key; lists append.
    static func merge(_ base: BakeTarget, _ child: BakeTarget, only set: Set<String>? = nil) -> BakeTarget {
        var out = base
        out.name = child.name
        func has(_ key: String) -> Bool { set?.contains(key) ?? true }
        if has("context"), let v = child.context { out.context = v }
        if has("dockerfile"), let v = child.dockerfile { out.dockerfile = v }
        if has("dockerfile-inline"), let v = child.dockerfileInline { out.dockerfileInline = v }
        if has("target"), let v = child.target { out.target = v }
        if has("network"), let v = child.network { out.network = v }
        if has("description"), let v = child.description { out.description = v }
        if has("pull"), let v = child.pull { out.pull = v }
        if has("no-cache"), let v = child.noCache { out.noCache = v }
        if has("tags"), set != nil || !child.tags.isEmpty { out.tags = child.tags }
        if has("platforms"), set != nil || !child.platforms.isEmpty { out.platforms = child.platforms }
        if has("cache-to"), set != nil || !child.cacheTo.isEmpty { out.cacheTo = child.cacheTo }
        if has("output"), set != nil || !child.output.isEmpty { out.output = child.output }
        out.args.merge(child.args) { $1 }
        out.labels.merge(child.labels) { $1 }
        out.contexts.merge(child.contexts) { $1 }
        for (list, keyPath) in [(child.annotations, \BakeTarget.annotations), (child.attest, \BakeTarget.attest), (child.cacheFrom, \BakeTarget.cacheFrom),
                                (child.secret, \BakeTarget.secret), (child.ssh, \BakeTarget.ssh), (child.noCacheFilter, \BakeTarget.noCacheFilter),
                                (child.entitlements, \BakeTarget.entitlements)] {
            for item in list where !out[keyPath: keyPath].contains(item) { out[keyPath: keyPath].append(item) }
        }
        return out
    }

    // MARK: groups and the command line

    /// Names as the command line gives them (targets or groups; none: `default`) into targets.
    mutating func resolve(_ names: [String]) throws -> BakeDefinition {
        let asked = names.isEmpty ? ["default"] : names
        var groupsOut: [String: [String]] = [:]
        var targets: [String: BakeTarget] = [:]
        var requested: [String] = []

        func members(_ group: String, position: SourcePosition) throws -> [String] {
            guard let entry = model.groups[group] else { return [] }
            guard case .list(let items) = try evaluateWithVariables(entry.members) else {
                throw BakeError("group '\(group)': targets must be a list of names", at: entry.position)
            }
            return try items.map {
                guard let s = HCLEvaluator.string($0) else { throw BakeError("group '\(group)': targets must be a list of names", at: entry.position) }
                return s
            }
        }
        func expand(_ name: String, _ chain: [String], position: SourcePosition?) throws {
            if model.groups[name] != nil {
                if chain.contains(name) { throw BakeError("a cycle through groups: \((chain + [name]).joined(separator: " -> "))", at: position) }
                let list = try members(name, position: model.groups[name]!.position)
                groupsOut[name] = list
                for member in list { try expand(member, chain + [name], position: model.groups[name]!.position) }
                return
            }
            // A matrix target's base name stands for all its targets (printed as a group of them, as buildx does).
            let made = try target(name, chain: [], position: position)
            if made.count > 1 || made.first?.name != name { groupsOut[name] = made.map(\.name).sorted() }
            for target in made {
                if targets[target.name] == nil { requested.append(target.name) }
                targets[target.name] = target
            }
        }
        for name in asked {
            if name == "default", model.groups["default"] == nil, model.targets["default"] == nil {
                // No default group: buildx builds a lone target, else says what to name.
                if model.targetOrder.count == 1 { try expand(model.targetOrder[0], [], position: nil); continue }
                let known = (model.groupOrder + model.targetOrder).joined(separator: ", ")
                throw BakeError(known.isEmpty ? "no targets: the bake files define none" : "no default group: name what to build (\(known))")
            }
            if model.groups[name] == nil, model.targets[name] == nil {
                let known = (model.groupOrder + model.targetOrder).joined(separator: ", ")
                throw BakeError("unknown target or group '\(name)'" + (known.isEmpty ? "" : " (the bake files define: \(known))"))
            }
            try expand(name, [], position: nil)
        }
        if groupsOut["default"] == nil { groupsOut["default"] = asked }
        // --set, and target: contexts' own targets come along.
        for override in options.overrides { try applyOverride(override, to: &targets) }
        var pending = targets.values.flatMap(\.dependencies)
        while let dependency = pending.popLast() {
            guard targets[dependency] == nil else { continue }
            for target in try target(dependency, chain: [], position: nil) {
                targets[target.name] = target
                pending += target.dependencies
            }
        }
        let definition = BakeDefinition(groups: groupsOut, targets: targets, requested: requested)
        _ = try definition.buildOrder()  // a cycle through contexts is an error now, before anything is queued
        return definition
    }

    /// `--set PATTERN.KEY=VALUE` (`*` and `?` in the pattern; `args.NAME`, `labels.NAME`, `contexts.NAME`; `platform` for platforms).
    func applyOverride(_ text: String, to targets: inout [String: BakeTarget]) throws {
        guard let eq = text.firstIndex(of: "=") else { throw BakeError("--set \(text): use PATTERN.KEY=VALUE, e.g. '*.platform=linux/arm64'") }
        let path = String(text[..<eq]), value = String(text[text.index(after: eq)...])
        let parts = path.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.count >= 2 else { throw BakeError("--set \(text): use PATTERN.KEY=VALUE, e.g. 'api.tags=reg/api:dev'") }
        let pattern = parts[0]
        var key = parts[1]
        let sub = parts.count == 3 ? parts[2] : nil
        let regex = "^" + NSRegularExpression.escapedPattern(for: pattern).replacingOccurrences(of: "\\*", with: ".*").replacingOccurrences(of: "\\?", with: ".") + "$"
        let matching = targets.keys.filter { $0.range(of: regex, options: .regularExpression) != nil }
        guard !matching.isEmpty else { throw BakeError("--set \(text): no target matches '\(pattern)'") }
        if key == "platform" { key = "platforms" }
        if key == "secrets" { key = "secret" }
        let position = SourcePosition(file: "--set", line: 1, column: 1)
        for name in matching {
            var target = targets[name]!
            switch key {
            case "args", "labels", "contexts":
                guard let sub else { throw BakeError("--set \(text): \(key) takes a name: \(pattern).\(key).NAME=VALUE") }
                var own = BakeTarget(name: name)
                try apply(key, .object([sub: .string(value)]), to: &own, at: position)
                target = Self.merge(target, own, only: [key])
            case "no-cache", "pull":
                try apply(key, .string(value), to: &target, at: position)
            default:
                guard Bake.stringFields.contains(key) || Bake.listFields.contains(key) else {
                    throw BakeError("--set \(text): '\(key)' cannot be set (args.NAME, labels.NAME, contexts.NAME, tags, platform, context, dockerfile, target, output, cache-from, cache-to, secrets, ssh, no-cache, pull)")
                }
                let v: HCLValue = Bake.listFields.contains(key) ? .list(value.split(separator: ",").map { .string(String($0)) }) : .string(value)
                try apply(key, v, to: &target, at: position)
            }
            targets[name] = target
        }
    }
}

/// A function a bake file defines: `function "name" { params = [a, b]  variadic_param = rest  result = … }`.
struct UserFunction: @unchecked Sendable {
    var params: [String]
    var variadic: String?
    var result: HCLExpr
    var lookup: (String, SourcePosition) throws -> HCLValue?
    let table: FunctionTable

    func call(_ args: [HCLValue]) throws -> HCLValue {
        var scope: [String: HCLValue] = [:]
        for (param, value) in zip(params, args) { scope[param] = value }
        if let variadic { scope[variadic] = .list(Array(args.dropFirst(params.count))) }
        return try HCLEvaluator(functions: table.functions, lookup: lookup).evaluate(result, scope)
    }
}

/// The functions of one evaluation, shared by the user functions that call each other.
final class FunctionTable: @unchecked Sendable {
    var functions: [String: HCLFunction] = [:]
}
