import Foundation

/// `.dockerignore` as Docker reads it: one pattern per line, `#` comments, `!` exceptions, later
/// lines win, `*`/`?`/`[…]` within one path component, `**` across any number of them, and a
/// pattern that matches a directory also excludes everything in it.
public struct DockerIgnore: Sendable {
    struct Rule: Sendable {
        let components: [String]
        let exclusion: Bool  // true for `!pattern`
    }

    let rules: [Rule]

    public init(_ text: String) {
        var rules: [Rule] = []
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
            if line.hasPrefix("#") { continue }
            line = line.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            var exclusion = false
            if line.hasPrefix("!") {
                exclusion = true
                line = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
            }
            let cleaned = Self.clean(line)
            if cleaned.isEmpty || cleaned == "." { continue }
            rules.append(Rule(components: cleaned.split(separator: "/").map(String.init), exclusion: exclusion))
        }
        self.rules = rules
    }

    public init(contentsOf url: URL) {
        self.init((try? String(contentsOf: url, encoding: .utf8)) ?? "")
    }

    /// Go's filepath.Clean of a pattern, with the leading `/` dropped (patterns are relative to the context).
    static func clean(_ path: String) -> String {
        var out: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == "..", let last = out.last, last != ".." {
                out.removeLast()
                continue
            }
            if part == "..", out.isEmpty { continue }  // above the root is the root
            out.append(part)
        }
        return out.joined(separator: "/")
    }

    /// Whether a path (relative to the context, `/`-separated) is left out of the context.
    public func excludes(_ path: String) -> Bool {
        let parts = path.split(separator: "/").map(String.init)
        var excluded = false
        for rule in rules {
            // A pattern matches the path or any of its parent directories.
            var matched = false
            for end in stride(from: parts.count, through: 1, by: -1) where Self.match(rule.components[...], parts[0..<end]) {
                matched = true
                break
            }
            if matched { excluded = !rule.exclusion }
        }
        return excluded
    }

    /// Whether anything under this directory could be re-included by an exception, so the
    /// directory must be walked even though it is excluded.
    public func mayReinclude(under directory: String) -> Bool {
        let parts = directory.split(separator: "/").map(String.init)
        for rule in rules where rule.exclusion {
            if rule.components.contains(where: { $0.contains("**") }) { return true }
            // The exception's leading components must be able to match this directory's.
            if rule.components.count > parts.count,
               Self.match(rule.components[0..<parts.count], parts[...]) { return true }
        }
        return false
    }

    /// Whether `pattern`'s components match `path`'s, `**` standing for any number of them.
    /// Greedy with one backtracking point (the last `**`): time is at most the product of the
    /// two lengths, however many `**` a pattern holds. (Recursive backtracking was exponential:
    /// the fuzzer hung on `**/**/**/…` against a deep path.)
    static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        globMatch(Array(pattern), Array(path), isStar: { $0 == "**" }) { component, name in
            matchComponent(Array(component.utf8)[...], Array(name.utf8)[...])
        }
    }

    /// The walk both levels share: `tokens` against `items`, where a star token stands for any
    /// run of items and every other token for exactly one. Greedy, going back only to the last
    /// star, so at most `tokens.count × items.count` steps.
    static func globMatch<Token, Item>(_ tokens: [Token], _ items: [Item], isStar: (Token) -> Bool,
                                       matches: (Token, Item) -> Bool) -> Bool {
        var t = 0, i = 0
        var star: (token: Int, item: Int)?
        while i < items.count {
            if t < tokens.count, isStar(tokens[t]) {
                star = (t, i)
                t += 1
            } else if t < tokens.count, matches(tokens[t], items[i]) {
                t += 1
                i += 1
            } else if let last = star {
                star = (last.token, last.item + 1)
                t = last.token + 1
                i = last.item + 1
            } else {
                return false
            }
        }
        while t < tokens.count, isStar(tokens[t]) { t += 1 }
        return t == tokens.count
    }

    /// One element of a component pattern.
    enum GlobToken: Equatable {
        case star
        case one
        case byte(UInt8)
        case set(ranges: [ClosedRange<UInt8>], negated: Bool)
        /// A malformed `[…]`: matches nothing, as in Go.
        case never

        func matches(_ byte: UInt8) -> Bool {
            switch self {
            case .star, .one: true
            case .byte(let b): b == byte
            case .set(let ranges, let negated): ranges.contains { $0.contains(byte) } != negated
            case .never: false
            }
        }
    }

    static func globTokens(_ pattern: ArraySlice<UInt8>) -> [GlobToken] {
        var tokens: [GlobToken] = []
        var p = pattern
        while let c = p.first {
            p = p.dropFirst()
            switch c {
            case UInt8(ascii: "*"):
                if tokens.last != .star { tokens.append(.star) }
            case UInt8(ascii: "?"):
                tokens.append(.one)
            case UInt8(ascii: "\\"):
                guard let escaped = p.first else { tokens.append(.never); return tokens }
                tokens.append(.byte(escaped))
                p = p.dropFirst()
            case UInt8(ascii: "["):
                var negated = false
                if let f = p.first, f == UInt8(ascii: "^") || f == UInt8(ascii: "!") {
                    negated = true
                    p = p.dropFirst()
                }
                var ranges: [ClosedRange<UInt8>] = []
                var first = true
                while let f = p.first, f != UInt8(ascii: "]") || first {
                    first = false
                    var lo = f
                    p = p.dropFirst()
                    if lo == UInt8(ascii: "\\"), let e = p.first { lo = e; p = p.dropFirst() }
                    var hi = lo
                    if p.first == UInt8(ascii: "-"), let h = p.dropFirst().first, h != UInt8(ascii: "]") {
                        hi = h
                        p = p.dropFirst(2)
                    }
                    if lo <= hi { ranges.append(lo...hi) }
                }
                guard p.first == UInt8(ascii: "]") else { tokens.append(.never); return tokens }
                p = p.dropFirst()
                tokens.append(.set(ranges: ranges, negated: negated))
            default:
                tokens.append(.byte(c))
            }
        }
        return tokens
    }

    /// Go's filepath.Match for one component: `*`, `?`, `[…]` (with `^`/`!` negation and ranges),
    /// `\` escapes. The same greedy, single-backtrack walk as `match`.
    static func matchComponent(_ pattern: ArraySlice<UInt8>, _ name: ArraySlice<UInt8>) -> Bool {
        let tokens = globTokens(pattern)
        return globMatch(tokens, Array(name), isStar: { $0 == .star }) { token, byte in token.matches(byte) }
    }
}
