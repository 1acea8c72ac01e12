import Foundation

/// A token of HCL's native syntax.
enum HCLTokenKind: Equatable {
    case identifier(String)
    case number(Double)
    /// A quoted string or heredoc: the template's parts, unparsed.
    case template([TemplatePiece])
    case symbol(String)
    case newline
    case end
}

/// A piece of a template as the lexer finds it: literal text, or the source of an `${…}`
/// interpolation or `%{…}` directive (with where it starts, and whether `~` strips whitespace).
enum TemplatePiece: Equatable {
    case literal(String)
    case interpolation(String, SourcePosition, stripBefore: Bool, stripAfter: Bool)
    case directive(String, SourcePosition, stripBefore: Bool, stripAfter: Bool)
}

struct HCLToken: Equatable {
    var kind: HCLTokenKind
    var position: SourcePosition
}

/// Turns HCL source into tokens: identifiers (with `-`), numbers, quoted strings and heredocs
/// (kept as template pieces), operators and newlines; `#`, `//` and `/* */` comments are skipped.
struct HCLLexer {
    let scalars: [Unicode.Scalar]
    let file: String
    var index = 0
    var line: Int
    var column: Int

    init(_ source: String, file: String, line: Int = 1, column: Int = 1) {
        self.scalars = Array(source.unicodeScalars)
        self.file = file
        self.line = line
        self.column = column
    }

    var position: SourcePosition { SourcePosition(file: file, line: line, column: column) }

    func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        index + offset < scalars.count ? scalars[index + offset] : nil
    }

    mutating func advance() -> Unicode.Scalar? {
        guard index < scalars.count else { return nil }
        let c = scalars[index]
        index += 1
        if c == "\n" { line += 1; column = 1 } else { column += 1 }
        return c
    }

    static func isIdentifierStart(_ c: Unicode.Scalar) -> Bool { c == "_" || CharacterSet.letters.contains(c) }
    static func isIdentifierPart(_ c: Unicode.Scalar) -> Bool { c == "_" || c == "-" || CharacterSet.alphanumerics.contains(c) }

    static let symbols3 = ["..."]
    static let symbols2 = ["==", "!=", "<=", ">=", "&&", "||", "=>", "[*", ".*"]

    mutating func tokens() throws -> [HCLToken] {
        var out: [HCLToken] = []
        while true {
            let token = try next()
            out.append(token)
            if token.kind == .end { return out }
        }
    }

    mutating func next() throws -> HCLToken {
        // Whitespace and comments.
        while let c = peek() {
            if c == " " || c == "\t" || c == "\r" {
                _ = advance()
            } else if c == "#" || (c == "/" && peek(1) == "/") {
                while let d = peek(), d != "\n" { _ = advance() }
            } else if c == "/" && peek(1) == "*" {
                let start = position
                _ = advance(); _ = advance()
                while true {
                    guard let d = advance() else { throw BakeError("unterminated /* comment", at: start) }
                    if d == "*", peek() == "/" { _ = advance(); break }
                }
            } else {
                break
            }
        }
        let start = position
        guard let c = peek() else { return HCLToken(kind: .end, position: start) }
        if c == "\n" {
            _ = advance()
            return HCLToken(kind: .newline, position: start)
        }
        if Self.isIdentifierStart(c) {
            var name = ""
            while let d = peek(), Self.isIdentifierPart(d) { name.unicodeScalars.append(d); _ = advance() }
            return HCLToken(kind: .identifier(name), position: start)
        }
        if CharacterSet.decimalDigits.contains(c) {
            var text = ""
            while let d = peek(), CharacterSet.decimalDigits.contains(d) { text.unicodeScalars.append(d); _ = advance() }
            if peek() == ".", let d = peek(1), CharacterSet.decimalDigits.contains(d) {
                text.unicodeScalars.append(advance()!)
                while let d = peek(), CharacterSet.decimalDigits.contains(d) { text.unicodeScalars.append(d); _ = advance() }
            }
            if let e = peek(), e == "e" || e == "E" {
                let sign = peek(1)
                let digitAt = (sign == "+" || sign == "-") ? 2 : 1
                if let d = peek(digitAt), CharacterSet.decimalDigits.contains(d) {
                    for _ in 0..<digitAt { text.unicodeScalars.append(advance()!) }
                    while let d = peek(), CharacterSet.decimalDigits.contains(d) { text.unicodeScalars.append(d); _ = advance() }
                }
            }
            guard let value = Double(text) else { throw BakeError("'\(text)' is not a number", at: start) }
            return HCLToken(kind: .number(value), position: start)
        }
        if c == "\"" {
            _ = advance()
            return HCLToken(kind: .template(try quotedTemplate(start: start)), position: start)
        }
        if c == "<", peek(1) == "<" {
            var offset = 2
            let indent = peek(2) == "-"
            if indent { offset = 3 }
            if let d = peek(offset), Self.isIdentifierStart(d) {
                for _ in 0..<offset { _ = advance() }
                return HCLToken(kind: .template(try heredoc(indent: indent, start: start)), position: start)
            }
        }
        for symbol in Self.symbols3 + Self.symbols2 where matches(symbol) {
            if symbol == "[*" {
                // `[*]` only: `[` then `*` in an arithmetic expression (`[*x]`) is not a splat.
                guard peek(2) == "]" else { continue }
                for _ in 0..<3 { _ = advance() }
                return HCLToken(kind: .symbol("[*]"), position: start)
            }
            for _ in symbol.unicodeScalars { _ = advance() }
            return HCLToken(kind: .symbol(symbol), position: start)
        }
        if "{}[](),=.:?!<>+-*/%".unicodeScalars.contains(c) {
            _ = advance()
            return HCLToken(kind: .symbol(String(Character(c))), position: start)
        }
        throw BakeError("unexpected character '\(Character(c))'", at: start)
    }

    func matches(_ symbol: String) -> Bool {
        for (i, s) in symbol.unicodeScalars.enumerated() where peek(i) != s { return false }
        return true
    }

    /// The pieces of a quoted string, after its opening quote.
    mutating func quotedTemplate(start: SourcePosition) throws -> [TemplatePiece] {
        var pieces: [TemplatePiece] = []
        var literal = ""
        func flush() { if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" } }
        while true {
            guard let c = peek(), c != "\n" else { throw BakeError("unterminated string (a quoted string ends on its line)", at: start) }
            if c == "\"" { _ = advance(); break }
            if c == "\\" {
                let escapeAt = position
                _ = advance()
                guard let e = advance() else { throw BakeError("unterminated string", at: start) }
                switch e {
                case "n": literal += "\n"
                case "t": literal += "\t"
                case "r": literal += "\r"
                case "\"": literal += "\""
                case "\\": literal += "\\"
                case "u", "U":
                    let count = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<count { if let h = advance() { hex.unicodeScalars.append(h) } }
                    guard let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else {
                        throw BakeError("invalid escape \\\(e)\(hex)", at: escapeAt)
                    }
                    literal.unicodeScalars.append(scalar)
                default: throw BakeError("invalid escape \\\(Character(e)) in a string", at: escapeAt)
                }
                continue
            }
            if try templateMarker(&literal, &pieces) { continue }
            literal.unicodeScalars.append(advance()!)
        }
        flush()
        return pieces
    }

    /// At `${`/`%{`: the sequence as a piece (after the literal so far). At `$${`/`%%{`: a literal
    /// `${`/`%{`. Returns whether it consumed anything.
    mutating func templateMarker(_ literal: inout String, _ pieces: inout [TemplatePiece]) throws -> Bool {
        guard let c = peek(), c == "$" || c == "%" else { return false }
        if peek(1) == "{" {
            if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
            pieces.append(try templateSequence())
            return true
        }
        if peek(1) == c, peek(2) == "{" {
            _ = advance()
            literal.unicodeScalars.append(advance()!)
            return true
        }
        return false
    }

    /// `${ … }` or `%{ … }`, with its source kept for the parser (braces and strings inside balanced).
    mutating func templateSequence() throws -> TemplatePiece {
        let start = position
        let marker = advance()!
        _ = advance()  // {
        var stripBefore = false
        if peek() == "~" { _ = advance(); stripBefore = true }
        let innerStart = position
        var source = ""
        var depth = 0
        var inString = false
        while true {
            guard let c = peek() else { throw BakeError("unterminated \(marker){ … } in a template", at: start) }
            if inString {
                if c == "\\" { source.unicodeScalars.append(advance()!); if let n = advance() { source.unicodeScalars.append(n) }; continue }
                if c == "\"" { inString = false }
                source.unicodeScalars.append(advance()!)
                continue
            }
            if c == "\"" { inString = true; source.unicodeScalars.append(advance()!); continue }
            if c == "{" { depth += 1 }
            if c == "}" {
                if depth == 0 { _ = advance(); break }
                depth -= 1
            }
            source.unicodeScalars.append(advance()!)
        }
        var stripAfter = false
        if source.hasSuffix("~") { source.removeLast(); stripAfter = true }
        return marker == "$"
            ? .interpolation(source, innerStart, stripBefore: stripBefore, stripAfter: stripAfter)
            : .directive(source, innerStart, stripBefore: stripBefore, stripAfter: stripAfter)
    }

    /// A heredoc after `<<` or `<<-`: its lines up to the marker line, as template pieces.
    mutating func heredoc(indent: Bool, start: SourcePosition) throws -> [TemplatePiece] {
        var marker = ""
        while let d = peek(), Self.isIdentifierPart(d) { marker.unicodeScalars.append(d); _ = advance() }
        while let d = peek(), d == " " || d == "\t" || d == "\r" { _ = advance() }
        guard advance() == "\n" else { throw BakeError("a heredoc's marker <<\(marker) must end its line", at: start) }
        // Collect the raw lines first (to strip the common indentation of <<-), then split into pieces.
        var lines: [(text: String, position: SourcePosition)] = []
        while true {
            guard peek() != nil else { throw BakeError("heredoc <<\(marker) has no closing \(marker) line", at: start) }
            let linePosition = position
            var text = ""
            while let d = peek(), d != "\n" { text.unicodeScalars.append(d); _ = advance() }
            if text.trimmingCharacters(in: .whitespaces) == marker { break }
            _ = advance()
            lines.append((text, linePosition))
        }
        if indent {
            let widths = lines.filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
                .map { $0.text.prefix { $0 == " " || $0 == "\t" }.count }
            let strip = widths.min() ?? 0
            lines = lines.map { (String($0.text.dropFirst(min(strip, $0.text.prefix { $0 == " " || $0 == "\t" }.count))),
                                 SourcePosition(file: $0.position.file, line: $0.position.line, column: $0.position.column + strip)) }
        }
        var pieces: [TemplatePiece] = []
        for (text, linePosition) in lines {
            var sub = HCLLexer(text + "\n", file: file, line: linePosition.line, column: linePosition.column)
            pieces += try sub.templateBody()
        }
        return Self.merge(pieces)
    }

    /// The pieces of raw template text (a heredoc line): no quotes, no escapes but `$${`/`%%{`.
    mutating func templateBody() throws -> [TemplatePiece] {
        var pieces: [TemplatePiece] = []
        var literal = ""
        while let c = peek() {
            if try templateMarker(&literal, &pieces) { continue }
            literal.unicodeScalars.append(c)
            _ = advance()
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        return pieces
    }

    static func merge(_ pieces: [TemplatePiece]) -> [TemplatePiece] {
        var out: [TemplatePiece] = []
        for piece in pieces {
            if case .literal(let b) = piece, case .literal(let a)? = out.last {
                out[out.count - 1] = .literal(a + b)
            } else {
                out.append(piece)
            }
        }
        return out
    }
}
