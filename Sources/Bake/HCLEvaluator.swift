import Foundation

/// A function callable from HCL: the standard library's or one a bake file defines.
struct HCLFunction: Sendable {
    /// Parameter count: `minimum...maximum` (`nil` maximum: variadic).
    var minimum: Int
    var maximum: Int?
    var body: @Sendable ([HCLValue], SourcePosition) throws -> HCLValue
}

/// Evaluates expressions against variables (the scope, then `lookup` for top-level names that are
/// resolved on demand) and functions. Every error names where it happened.
struct HCLEvaluator {
    var functions: [String: HCLFunction]
    /// Top-level names (bake variables, `target`) resolved when first read.
    var lookup: (String, SourcePosition) throws -> HCLValue?

    func evaluate(_ expr: HCLExpr, _ scope: [String: HCLValue] = [:]) throws -> HCLValue {
        switch expr {
        case .literal(let value, _):
            return value
        case .variable(let name, let position):
            if let value = scope[name] { return value }
            if let value = try lookup(name, position) { return value }
            throw BakeError("undefined variable '\(name)'", at: position)
        case .template(let nodes, let position):
            if nodes.count == 1, case .interpolation(let inner) = nodes[0] { return try evaluate(inner, scope) }
            return .string(try render(nodes, scope, position))
        case .tuple(let items, _):
            return .list(try items.map { try evaluate($0, scope) })
        case .object(let items, _):
            var fields: [String: HCLValue] = [:]
            for (key, value) in items {
                let name: String
                switch key {
                case .name(let n): name = n
                case .expr(let e):
                    let k = try evaluate(e, scope)
                    guard let s = Self.string(k) else { throw BakeError("an object key must be a string, not \(k.typeName)", at: e.position) }
                    name = s
                }
                fields[name] = try evaluate(value, scope)
            }
            return .object(fields)
        case .call("try", let argExprs, _, let position):
            // The first argument that evaluates without an error.
            var last: BakeError?
            for arg in argExprs {
                do { return try evaluate(arg, scope) } catch let error as BakeError { last = error }
            }
            throw BakeError("try(): no argument could be evaluated" + (last.map { " (the last: \($0.message))" } ?? ""), at: position)
        case .call("can", let argExprs, _, let position):
            guard argExprs.count == 1 else { throw BakeError("can() takes 1 argument, not \(argExprs.count)", at: position) }
            do { _ = try evaluate(argExprs[0], scope); return .bool(true) } catch is BakeError { return .bool(false) }
        case .call(let name, let argExprs, let expandLast, let position):
            guard let function = functions[name] else { throw BakeError("undefined function '\(name)'", at: position) }
            var args = try argExprs.map { try evaluate($0, scope) }
            if expandLast {
                guard case .list(let rest)? = args.last else { throw BakeError("'...' expands a list, and the last argument is not one", at: position) }
                args.removeLast()
                args += rest
            }
            guard args.count >= function.minimum, function.maximum.map({ args.count <= $0 }) ?? true else {
                let expected = function.maximum == function.minimum ? "\(function.minimum)"
                    : function.maximum.map { "\(function.minimum) to \($0)" } ?? "at least \(function.minimum)"
                throw BakeError("\(name)() takes \(expected) argument(s), not \(args.count)", at: position)
            }
            do {
                return try function.body(args, position)
            } catch var error as BakeError {
                if error.position == nil { error.position = position }
                if !error.message.hasPrefix(name) { error.message = "\(name)(): \(error.message)" }
                throw error
            }
        case .index(let base, let keyExpr, let position):
            return try index(try evaluate(base, scope), try evaluate(keyExpr, scope), position)
        case .attribute(let base, let name, let position):
            return try attribute(try evaluate(base, scope), name, position)
        case .splat(let base, let traversals, let position):
            let value = try evaluate(base, scope)
            let items: [HCLValue]
            switch value {
            case .null: return .list([])
            case .list(let list): items = list
            default: items = [value]
            }
            return .list(try items.map { item in
                var current = item
                for traversal in traversals {
                    switch traversal {
                    case .attribute(let name): current = try attribute(current, name, position)
                    case .index(let e): current = try index(current, try evaluate(e, scope), position)
                    }
                }
                return current
            })
        case .unary(let op, let operand, let position):
            let value = try evaluate(operand, scope)
            if op == "!" { return .bool(!(try Self.bool(value, position, "the operand of !"))) }
            return .number(-(try Self.number(value, position, "the operand of -")))
        case .binary(let op, let left, let right, let position):
            // && and || do not evaluate their right side when the left decides.
            if op == "&&" || op == "||" {
                let a = try Self.bool(try evaluate(left, scope), position, "the left side of \(op)")
                if op == "&&", !a { return .bool(false) }
                if op == "||", a { return .bool(true) }
                return .bool(try Self.bool(try evaluate(right, scope), position, "the right side of \(op)"))
            }
            let a = try evaluate(left, scope), b = try evaluate(right, scope)
            switch op {
            case "==": return .bool(Self.equal(a, b))
            case "!=": return .bool(!Self.equal(a, b))
            default: break
            }
            let x = try Self.number(a, position, "the left side of \(op)")
            let y = try Self.number(b, position, "the right side of \(op)")
            switch op {
            case "+": return .number(x + y)
            case "-": return .number(x - y)
            case "*": return .number(x * y)
            case "/":
                guard y != 0 else { throw BakeError("division by zero", at: position) }
                return .number(x / y)
            case "%":
                guard y != 0 else { throw BakeError("modulo by zero", at: position) }
                return .number(x.truncatingRemainder(dividingBy: y))
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: throw BakeError("unknown operator \(op)", at: position)
            }
        case .conditional(let condition, let yes, let no, let position):
            return try Self.bool(try evaluate(condition, scope), position, "a condition") ? try evaluate(yes, scope) : try evaluate(no, scope)
        case .forTuple(let keyName, let valueName, let collection, let result, let condition, let position):
            var out: [HCLValue] = []
            for (k, v) in try pairs(try evaluate(collection, scope), position) {
                var inner = scope
                if let keyName { inner[keyName] = k }
                inner[valueName] = v
                if let condition, !(try Self.bool(try evaluate(condition, inner), condition.position, "a for expression's if")) { continue }
                out.append(try evaluate(result, inner))
            }
            return .list(out)
        case .forObject(let keyName, let valueName, let collection, let resultKey, let result, let grouping, let condition, let position):
            var out: [String: HCLValue] = [:]
            var groups: [String: [HCLValue]] = [:]
            for (k, v) in try pairs(try evaluate(collection, scope), position) {
                var inner = scope
                if let keyName { inner[keyName] = k }
                inner[valueName] = v
                if let condition, !(try Self.bool(try evaluate(condition, inner), condition.position, "a for expression's if")) { continue }
                let keyValue = try evaluate(resultKey, inner)
                guard let key = Self.string(keyValue) else { throw BakeError("a for expression's key must be a string, not \(keyValue.typeName)", at: resultKey.position) }
                let value = try evaluate(result, inner)
                if grouping {
                    groups[key, default: []].append(value)
                } else {
                    guard out[key] == nil else {
                        throw BakeError("duplicate key '\(key)' in a for expression (add '...' after the value to group them)", at: resultKey.position)
                    }
                    out[key] = value
                }
            }
            return grouping ? .object(groups.mapValues { .list($0) }) : .object(out)
        }
    }

    func render(_ nodes: [TemplateNode], _ scope: [String: HCLValue], _ position: SourcePosition) throws -> String {
        var out = ""
        for node in nodes {
            switch node {
            case .literal(let s):
                out += s
            case .interpolation(let e):
                let value = try evaluate(e, scope)
                guard let text = Self.string(value) else {
                    throw BakeError(value.isNull ? "a template cannot include null" : "a template cannot include a \(value.typeName); use jsonencode() or join()",
                                    at: e.position)
                }
                out += text
            case .conditional(let condition, let yes, let no):
                out += try render(try Self.bool(try evaluate(condition, scope), condition.position, "%{ if }") ? yes : no, scope, position)
            case .loop(let keyName, let valueName, let collection, let body):
                for (k, v) in try pairs(try evaluate(collection, scope), collection.position) {
                    var inner = scope
                    if let keyName { inner[keyName] = k }
                    inner[valueName] = v
                    out += try render(body, inner, position)
                }
            }
        }
        return out
    }

    /// (key, value) pairs of a list (index, item) or an object (key, value; keys sorted, as HCL does).
    func pairs(_ value: HCLValue, _ position: SourcePosition) throws -> [(HCLValue, HCLValue)] {
        switch value {
        case .list(let items): return items.enumerated().map { (.number(Double($0.offset)), $0.element) }
        case .object(let fields): return fields.keys.sorted().map { (.string($0), fields[$0]!) }
        default: throw BakeError("a for expression needs a list or an object, not \(value.typeName)", at: position)
        }
    }

    func index(_ base: HCLValue, _ key: HCLValue, _ position: SourcePosition) throws -> HCLValue {
        switch base {
        case .list(let items):
            guard let n = Self.numberValue(key), n.rounded() == n else { throw BakeError("a list index must be a whole number, not \(key)", at: position) }
            guard n >= 0, n < Double(items.count) else { throw BakeError("index \(HCLValue.format(n)) is out of range (the list has \(items.count) items)", at: position) }
            return items[Int(n)]
        case .object(let fields):
            guard let name = Self.string(key) else { throw BakeError("an object key must be a string, not \(key.typeName)", at: position) }
            guard let value = fields[name] else { throw BakeError("the object has no key '\(name)'", at: position) }
            return value
        case .null:
            throw BakeError("cannot index null", at: position)
        default:
            throw BakeError("cannot index a \(base.typeName)", at: position)
        }
    }

    func attribute(_ base: HCLValue, _ name: String, _ position: SourcePosition) throws -> HCLValue {
        switch base {
        case .object(let fields):
            guard let value = fields[name] else { throw BakeError("no attribute '\(name)'", at: position) }
            return value
        case .null:
            throw BakeError("cannot read attribute '\(name)' of null", at: position)
        default:
            throw BakeError("a \(base.typeName) has no attribute '\(name)'", at: position)
        }
    }

    // MARK: conversions (cty's: strings that spell numbers or booleans convert)

    static func string(_ value: HCLValue) -> String? {
        switch value {
        case .string(let s): s
        case .number(let n): HCLValue.format(n)
        case .bool(let b): b ? "true" : "false"
        default: nil
        }
    }

    static func numberValue(_ value: HCLValue) -> Double? {
        switch value {
        case .number(let n): n
        case .string(let s): Double(s.trimmingCharacters(in: .whitespaces))
        default: nil
        }
    }

    static func number(_ value: HCLValue, _ position: SourcePosition, _ what: String) throws -> Double {
        guard let n = numberValue(value) else { throw BakeError("\(what) must be a number, not \(value.typeName == "string" ? "the string \"\(value)\"" : value.typeName)", at: position) }
        return n
    }

    static func bool(_ value: HCLValue, _ position: SourcePosition, _ what: String) throws -> Bool {
        switch value {
        case .bool(let b): return b
        case .string("true"): return true
        case .string("false"): return false
        default: throw BakeError("\(what) must be a bool, not \(value.typeName)", at: position)
        }
    }

    static func equal(_ a: HCLValue, _ b: HCLValue) -> Bool { a == b }
}
