import Foundation

/// HCL's native syntax: bodies of attributes and blocks, and the expression language (operators
/// by precedence, conditionals, `for` expressions, splats, function calls, templates with
/// interpolations and `if`/`for` directives, heredocs).
struct HCLParser {
    var tokens: [HCLToken]
    var index = 0
    /// Inside (), [] and {} of an expression newlines do not end anything.
    var newlinesIgnored = 0

    init(tokens: [HCLToken]) {
        self.tokens = tokens
    }

    static func parseFile(_ source: String, file: String) throws -> HCLBody {
        var lexer = HCLLexer(source, file: file)
        var parser = HCLParser(tokens: try lexer.tokens())
        let body = try parser.body(closing: false)
        return body
    }

    static func parseExpression(_ source: String, at position: SourcePosition) throws -> HCLExpr {
        var lexer = HCLLexer(source, file: position.file, line: position.line, column: position.column)
        var parser = HCLParser(tokens: try lexer.tokens())
        parser.newlinesIgnored = 1
        let expr = try parser.expression()
        guard parser.peek().kind == .end else { throw BakeError("unexpected \(parser.describe(parser.peek())) after the expression", at: parser.peek().position) }
        return expr
    }

    // MARK: tokens

    mutating func skipNewlines() { while index < tokens.count, tokens[index].kind == .newline { index += 1 } }

    mutating func peek() -> HCLToken {
        if newlinesIgnored > 0 { skipNewlines() }
        return tokens[min(index, tokens.count - 1)]
    }

    mutating func advance() -> HCLToken {
        let token = peek()
        if index < tokens.count { index += 1 }
        return token
    }

    mutating func accept(_ symbol: String) -> Bool {
        if case .symbol(symbol) = peek().kind { index += 1; return true }
        return false
    }

    mutating func expect(_ symbol: String, _ context: String) throws -> SourcePosition {
        let token = peek()
        guard case .symbol(symbol) = token.kind else {
            throw BakeError("expected '\(symbol)' \(context), found \(describe(token))", at: token.position)
        }
        index += 1
        return token.position
    }

    func describe(_ token: HCLToken) -> String {
        switch token.kind {
        case .identifier(let name): "'\(name)'"
        case .number(let n): "the number \(HCLValue.format(n))"
        case .template: "a string"
        case .symbol(let s): "'\(s)'"
        case .newline: "the end of the line"
        case .end: "the end of the file"
        }
    }

    // MARK: bodies

    mutating func body(closing: Bool) throws -> HCLBody {
        var body = HCLBody()
        while true {
            skipNewlines()
            let token = peek()
            if token.kind == .end {
                if closing { throw BakeError("missing '}': the block is not closed", at: token.position) }
                return body
            }
            if closing, case .symbol("}") = token.kind { return body }
            guard case .identifier(let name) = token.kind else {
                throw BakeError("expected an attribute or a block, found \(describe(token))", at: token.position)
            }
            index += 1
            if accept("=") {
                newlinesIgnored = 0
                let expr = try expression()
                body.attributes.append(HCLAttribute(name: name, expr: expr, position: token.position))
                let after = peek()
                switch after.kind {
                case .newline, .end: break
                case .symbol("}") where closing: break
                default: throw BakeError("expected the end of the line after attribute '\(name)', found \(describe(after))", at: after.position)
                }
                continue
            }
            var labels: [String] = []
            while true {
                let label = peek()
                switch label.kind {
                case .template(let pieces):
                    index += 1
                    var text = ""
                    for piece in pieces {
                        guard case .literal(let s) = piece else { throw BakeError("a block label cannot hold interpolations", at: label.position) }
                        text += s
                    }
                    labels.append(text)
                    continue
                case .identifier(let s):
                    index += 1
                    labels.append(s)
                    continue
                default: break
                }
                break
            }
            _ = try expect("{", "to open block '\(name)' (or '=' for an attribute)")
            let inner = try self.body(closing: true)
            _ = try expect("}", "to close block '\(name)'")
            body.blocks.append(HCLBlock(type: name, labels: labels, body: inner, position: token.position))
        }
    }

    // MARK: expressions

    mutating func expression() throws -> HCLExpr {
        let condition = try binary(0)
        if accept("?") {
            newlinesIgnored += 1
            defer { newlinesIgnored -= 1 }
            let yes = try expression()
            _ = try expect(":", "in a conditional (condition ? yes : no)")
            let no = try expression()
            return .conditional(condition, yes, no, condition.position)
        }
        return condition
    }

    static let precedence: [[String]] = [["||"], ["&&"], ["==", "!="], ["<", ">", "<=", ">="], ["+", "-"], ["*", "/", "%"]]

    mutating func binary(_ level: Int) throws -> HCLExpr {
        guard level < Self.precedence.count else { return try unary() }
        var left = try binary(level + 1)
        while true {
            let token = peek()
            guard case .symbol(let op) = token.kind, Self.precedence[level].contains(op) else { return left }
            index += 1
            let right = try binary(level + 1)
            left = .binary(op, left, right, token.position)
        }
    }

    mutating func unary() throws -> HCLExpr {
        let token = peek()
        if case .symbol(let op) = token.kind, op == "!" || op == "-" {
            index += 1
            return .unary(op, try unary(), token.position)
        }
        return try postfix(try primary())
    }

    mutating func postfix(_ base: HCLExpr) throws -> HCLExpr {
        var expr = base
        while true {
            let token = peek()
            switch token.kind {
            case .symbol("["):
                index += 1
                newlinesIgnored += 1
                let key = try expression()
                _ = try expect("]", "to close the index")
                newlinesIgnored -= 1
                expr = .index(expr, key, token.position)
            case .symbol("[*]"), .symbol(".*"):
                index += 1
                var traversals: [Traversal] = []
                while true {
                    let next = peek()
                    if case .symbol(".") = next.kind, case .identifier(let name) = tokens[min(index + 1, tokens.count - 1)].kind {
                        index += 2
                        traversals.append(.attribute(name))
                    } else if case .symbol("[") = next.kind {
                        index += 1
                        newlinesIgnored += 1
                        let key = try expression()
                        _ = try expect("]", "to close the index")
                        newlinesIgnored -= 1
                        traversals.append(.index(key))
                    } else {
                        break
                    }
                }
                expr = .splat(expr, traversals, token.position)
            case .symbol("."):
                index += 1
                let name = advance()
                switch name.kind {
                case .identifier(let s): expr = .attribute(expr, s, token.position)
                case .number(let n): expr = .index(expr, .literal(.number(n), name.position), token.position)
                default: throw BakeError("expected an attribute name after '.', found \(describe(name))", at: name.position)
                }
            default:
                return expr
            }
        }
    }

    mutating func primary() throws -> HCLExpr {
        let token = advance()
        switch token.kind {
        case .number(let n):
            return .literal(.number(n), token.position)
        case .template(let pieces):
            return .template(try Self.template(pieces), token.position)
        case .identifier(let name):
            switch name {
            case "true": return .literal(.bool(true), token.position)
            case "false": return .literal(.bool(false), token.position)
            case "null": return .literal(.null, token.position)
            default: break
            }
            if case .symbol("(") = tokens[min(index, tokens.count - 1)].kind {
                index += 1
                newlinesIgnored += 1
                defer { newlinesIgnored -= 1 }
                var args: [HCLExpr] = []
                var expand = false
                while !accept(")") {
                    args.append(try expression())
                    if accept("...") { expand = true; _ = try expect(")", "after '...' (it expands the last argument)"); break }
                    if accept(")") { break }
                    _ = try expect(",", "between the arguments of \(name)()")
                }
                return .call(name, args, expandLast: expand, token.position)
            }
            return .variable(name, token.position)
        case .symbol("("):
            newlinesIgnored += 1
            defer { newlinesIgnored -= 1 }
            let inner = try expression()
            _ = try expect(")", "to close the parenthesis")
            return inner
        case .symbol("["):
            newlinesIgnored += 1
            defer { newlinesIgnored -= 1 }
            if case .identifier("for") = peek().kind { return try forExpression(open: token, object: false) }
            var items: [HCLExpr] = []
            while !accept("]") {
                items.append(try expression())
                if accept("]") { break }
                _ = try expect(",", "between the items of a list")
            }
            return .tuple(items, token.position)
        case .symbol("{"):
            newlinesIgnored += 1
            defer { newlinesIgnored -= 1 }
            if case .identifier("for") = peek().kind { return try forExpression(open: token, object: true) }
            var items: [(key: ObjectKey, value: HCLExpr)] = []
            while !accept("}") {
                let keyToken = peek()
                let key: ObjectKey
                if case .identifier(let name) = keyToken.kind, case .symbol(let s) = tokens[min(index + 1, tokens.count - 1)].kind, s == "=" || s == ":" {
                    index += 1
                    key = .name(name)
                } else {
                    key = .expr(try expression())
                }
                guard accept("=") || accept(":") else {
                    throw BakeError("expected '=' or ':' after an object key, found \(describe(peek()))", at: peek().position)
                }
                items.append((key, try expression()))
                _ = accept(",")
            }
            return .object(items, token.position)
        default:
            throw BakeError("expected an expression, found \(describe(token))", at: token.position)
        }
    }

    /// `[for k, v in coll : expr if cond]` and `{for k, v in coll : key => value... if cond}`.
    mutating func forExpression(open: HCLToken, object: Bool) throws -> HCLExpr {
        index += 1  // for
        func name(_ parser: inout HCLParser) throws -> String {
            let token = parser.advance()
            guard case .identifier(let s) = token.kind else {
                throw BakeError("expected a variable name in the for expression, found \(parser.describe(token))", at: token.position)
            }
            return s
        }
        var key: String?
        var value = try name(&self)
        if accept(",") {
            key = value
            value = try name(&self)
        }
        guard case .identifier("in") = advance().kind else { throw BakeError("expected 'in' in the for expression", at: open.position) }
        let collection = try expression()
        _ = try expect(":", "after the for expression's collection")
        if object {
            let resultKey = try expression()
            _ = try expect("=>", "between the key and the value of a for expression in {}")
            let result = try expression()
            let grouping = accept("...")
            var condition: HCLExpr?
            if case .identifier("if") = peek().kind { index += 1; condition = try expression() }
            _ = try expect("}", "to close the for expression")
            return .forObject(key: key, value: value, collection: collection, resultKey: resultKey, result: result, grouping: grouping,
                              condition: condition, open.position)
        }
        let result = try expression()
        var condition: HCLExpr?
        if case .identifier("if") = peek().kind { index += 1; condition = try expression() }
        _ = try expect("]", "to close the for expression")
        return .forTuple(key: key, value: value, collection: collection, result: result, condition: condition, open.position)
    }

    // MARK: templates

    /// Template pieces into nodes: interpolations parsed, `%{ if }`/`%{ for }` directives nested,
    /// `~` strip markers applied to the neighbouring literals.
    static func template(_ pieces: [TemplatePiece]) throws -> [TemplateNode] {
        var pieces = pieces
        // Strip markers: remove whitespace of the literal before (~ at the start) or after (~ at the end).
        for i in pieces.indices {
            switch pieces[i] {
            case .interpolation(_, _, let before, let after), .directive(_, _, let before, let after):
                if before, i > 0, case .literal(let s) = pieces[i - 1] {
                    pieces[i - 1] = .literal(String(s.reversed().drop { $0.isWhitespace }.reversed()))
                }
                if after, i + 1 < pieces.count, case .literal(let s) = pieces[i + 1] {
                    pieces[i + 1] = .literal(String(s.drop { $0.isWhitespace }))
                }
            default: break
            }
        }
        var position = 0
        let nodes = try templateNodes(pieces, &position, until: [])
        return nodes.nodes
    }

    static func templateNodes(_ pieces: [TemplatePiece], _ i: inout Int, until: Set<String>) throws -> (nodes: [TemplateNode], stop: String?) {
        var nodes: [TemplateNode] = []
        while i < pieces.count {
            let piece = pieces[i]
            i += 1
            switch piece {
            case .literal(let s):
                nodes.append(.literal(s))
            case .interpolation(let source, let position, _, _):
                nodes.append(.interpolation(try parseExpression(source, at: position)))
            case .directive(let source, let position, _, _):
                let trimmed = source.trimmingCharacters(in: .whitespacesAndNewlines)
                let word = String(trimmed.prefix { !$0.isWhitespace })
                switch word {
                case "if":
                    let condition = try parseExpression(String(trimmed.dropFirst(2)), at: position)
                    let (yes, stop) = try templateNodes(pieces, &i, until: ["else", "endif"])
                    var no: [TemplateNode] = []
                    if stop == "else" {
                        let (otherwise, end) = try templateNodes(pieces, &i, until: ["endif"])
                        guard end == "endif" else { throw BakeError("%{ if } has no %{ endif }", at: position) }
                        no = otherwise
                    } else if stop != "endif" {
                        throw BakeError("%{ if } has no %{ endif }", at: position)
                    }
                    nodes.append(.conditional(condition, then: yes, otherwise: no))
                case "for":
                    // for k, v in coll  /  for v in coll
                    let rest = trimmed.dropFirst(3)
                    guard let inRange = rest.range(of: " in ") else { throw BakeError("%{ for } needs 'for NAME in COLLECTION'", at: position) }
                    let names = rest[..<inRange.lowerBound].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    guard (1...2).contains(names.count), names.allSatisfy({ !$0.isEmpty }) else {
                        throw BakeError("%{ for } needs one or two variable names", at: position)
                    }
                    let collection = try parseExpression(String(rest[inRange.upperBound...]), at: position)
                    let (body, stop) = try templateNodes(pieces, &i, until: ["endfor"])
                    guard stop == "endfor" else { throw BakeError("%{ for } has no %{ endfor }", at: position) }
                    nodes.append(.loop(key: names.count == 2 ? names[0] : nil, value: names.last!, collection: collection, body: body))
                case "else", "endif", "endfor":
                    guard until.contains(word) else { throw BakeError("%{ \(word) } without its opening directive", at: position) }
                    return (nodes, word)
                default:
                    throw BakeError("unknown template directive '%{ \(word) }' (if, else, endif, for, endfor)", at: position)
                }
            }
        }
        return (nodes, nil)
    }
}
