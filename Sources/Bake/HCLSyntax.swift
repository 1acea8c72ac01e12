import Foundation

/// An HCL expression, as parsed.
indirect enum HCLExpr {
    case literal(HCLValue, SourcePosition)
    case template([TemplateNode], SourcePosition)
    case variable(String, SourcePosition)
    case tuple([HCLExpr], SourcePosition)
    case object([(key: ObjectKey, value: HCLExpr)], SourcePosition)
    case call(String, [HCLExpr], expandLast: Bool, SourcePosition)
    case index(HCLExpr, HCLExpr, SourcePosition)
    case attribute(HCLExpr, String, SourcePosition)
    /// `list[*].a.b`: the traversals after the splat apply to each element.
    case splat(HCLExpr, [Traversal], SourcePosition)
    case unary(String, HCLExpr, SourcePosition)
    case binary(String, HCLExpr, HCLExpr, SourcePosition)
    case conditional(HCLExpr, HCLExpr, HCLExpr, SourcePosition)
    case forTuple(key: String?, value: String, collection: HCLExpr, result: HCLExpr, condition: HCLExpr?, SourcePosition)
    case forObject(key: String?, value: String, collection: HCLExpr, resultKey: HCLExpr, result: HCLExpr, grouping: Bool,
                   condition: HCLExpr?, SourcePosition)

    var position: SourcePosition {
        switch self {
        case .literal(_, let p), .template(_, let p), .variable(_, let p), .tuple(_, let p), .object(_, let p),
             .call(_, _, _, let p), .index(_, _, let p), .attribute(_, _, let p), .splat(_, _, let p), .unary(_, _, let p),
             .binary(_, _, _, let p), .conditional(_, _, _, let p), .forTuple(_, _, _, _, _, let p), .forObject(_, _, _, _, _, _, _, let p):
            p
        }
    }

    /// Where the expression's text begins (an operator's position is its own; this is its left side's).
    var start: SourcePosition {
        switch self {
        case .binary(_, let left, _, _), .conditional(let left, _, _, _), .index(let left, _, _), .attribute(let left, _, _), .splat(let left, _, _):
            left.start
        default:
            position
        }
    }

    /// The names read as `root.NAME` (`target.api.tags` → `api`), anywhere in the expression.
    func attributeNames(of root: String) -> [String] {
        var out: [String] = []
        func walk(_ e: HCLExpr) {
            switch e {
            case .attribute(.variable(let name, _), let attribute, _) where name == root:
                out.append(attribute)
            case .index(.variable(let name, _), .literal(.string(let key), _), _) where name == root:
                out.append(key)
            case .literal, .variable: break
            case .template(let nodes, _): nodes.forEach(walkNode)
            case .tuple(let items, _): items.forEach(walk)
            case .object(let items, _): items.forEach { if let k = $0.key.expr { walk(k) }; walk($0.value) }
            case .call(_, let args, _, _): args.forEach(walk)
            case .index(let a, let b, _): walk(a); walk(b)
            case .attribute(let a, _, _), .unary(_, let a, _): walk(a)
            case .splat(let a, let traversals, _):
                walk(a)
                for case .index(let t) in traversals { walk(t) }
            case .binary(_, let a, let b, _): walk(a); walk(b)
            case .conditional(let a, let b, let c, _): walk(a); walk(b); walk(c)
            case .forTuple(_, _, let c, let r, let cond, _): walk(c); walk(r); if let cond { walk(cond) }
            case .forObject(_, _, let c, let k, let r, _, let cond, _): walk(c); walk(k); walk(r); if let cond { walk(cond) }
            }
        }
        func walkNode(_ n: TemplateNode) {
            switch n {
            case .literal: break
            case .interpolation(let e): walk(e)
            case .conditional(let c, let a, let b): walk(c); a.forEach(walkNode); b.forEach(walkNode)
            case .loop(_, _, let c, let body): walk(c); body.forEach(walkNode)
            }
        }
        walk(self)
        return out
    }

    /// The variables an expression reads (for ordering variable evaluation and for errors).
    var variables: [String] {
        switch self {
        case .literal: []
        case .variable(let name, _): [name]
        case .template(let nodes, _): nodes.flatMap(\.variables)
        case .tuple(let items, _): items.flatMap(\.variables)
        case .object(let items, _): items.flatMap { ($0.key.expr?.variables ?? []) + $0.value.variables }
        case .call(_, let args, _, _): args.flatMap(\.variables)
        case .index(let a, let b, _): a.variables + b.variables
        case .attribute(let a, _, _), .unary(_, let a, _): a.variables
        case .splat(let a, let traversals, _):
            a.variables + traversals.flatMap { traversal -> [String] in
                if case .index(let e) = traversal { return e.variables }
                return []
            }
        case .binary(_, let a, let b, _): a.variables + b.variables
        case .conditional(let a, let b, let c, _): a.variables + b.variables + c.variables
        case .forTuple(let k, let v, let collection, let result, let condition, _):
            collection.variables + (result.variables + (condition?.variables ?? [])).filter { $0 != k && $0 != v }
        case .forObject(let k, let v, let collection, let key, let result, _, let condition, _):
            collection.variables + (key.variables + result.variables + (condition?.variables ?? [])).filter { $0 != k && $0 != v }
        }
    }
}

enum ObjectKey {
    case name(String)
    case expr(HCLExpr)

    var expr: HCLExpr? { if case .expr(let e) = self { e } else { nil } }
}

enum Traversal {
    case attribute(String)
    case index(HCLExpr)
}

indirect enum TemplateNode {
    case literal(String)
    case interpolation(HCLExpr)
    case conditional(HCLExpr, then: [TemplateNode], otherwise: [TemplateNode])
    case loop(key: String?, value: String, collection: HCLExpr, body: [TemplateNode])

    var variables: [String] {
        switch self {
        case .literal: []
        case .interpolation(let e): e.variables
        case .conditional(let c, let a, let b): c.variables + a.flatMap(\.variables) + b.flatMap(\.variables)
        case .loop(let k, let v, let c, let body): c.variables + body.flatMap(\.variables).filter { $0 != k && $0 != v }
        }
    }
}

/// A body: attributes and blocks, in order.
struct HCLBody {
    var attributes: [HCLAttribute] = []
    var blocks: [HCLBlock] = []
}

struct HCLAttribute {
    var name: String
    var expr: HCLExpr
    var position: SourcePosition
}

struct HCLBlock {
    var type: String
    var labels: [String]
    var body: HCLBody
    var position: SourcePosition
}
