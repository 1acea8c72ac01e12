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

    static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            let rest = pattern.dropFirst()
            var p = path
            while true {
                if match(rest, p) { return true }
                guard !p.isEmpty else { return false }
                p = p.dropFirst()
            }
        }
        guard let component = path.first, matchComponent(Array(first.utf8)[...], Array(component.utf8)[...]) else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }

    /// Go's filepath.Match for one component: `*`, `?`, `[…]` (with `^`/`!` negation and ranges), `\` escapes.
    static func matchComponent(_ pattern: ArraySlice<UInt8>, _ name: ArraySlice<UInt8>) -> Bool {
        var p = pattern
        var n = name
        while let c = p.first {
            switch c {
            case UInt8(ascii: "*"):
                let rest = p.dropFirst()
                if rest.isEmpty { return true }
                var candidate = n
                while true {
                    if matchComponent(rest, candidate) { return true }
                    guard !candidate.isEmpty else { return false }
                    candidate = candidate.dropFirst()
                }
            case UInt8(ascii: "?"):
                guard !n.isEmpty else { return false }
                p = p.dropFirst()
                n = n.dropFirst()
            case UInt8(ascii: "["):
                guard let ch = n.first else { return false }
                var q = p.dropFirst()
                var negate = false
                if let f = q.first, f == UInt8(ascii: "^") || f == UInt8(ascii: "!") {
                    negate = true
                    q = q.dropFirst()
                }
                var matched = false
                var first = true
                while let f = q.first, f != UInt8(ascii: "]") || first {
                    first = false
                    var lo = f
                    q = q.dropFirst()
                    if lo == UInt8(ascii: "\\"), let e = q.first { lo = e; q = q.dropFirst() }
                    var hi = lo
                    if q.first == UInt8(ascii: "-"), let h = q.dropFirst().first, h != UInt8(ascii: "]") {
                        hi = h
                        q = q.dropFirst(2)
                    }
                    if lo <= ch && ch <= hi { matched = true }
                }
                guard q.first == UInt8(ascii: "]") else { return false }  // malformed: no match
                guard matched != negate else { return false }
                p = q.dropFirst()
                n = n.dropFirst()
            case UInt8(ascii: "\\"):
                p = p.dropFirst()
                guard let e = p.first, n.first == e else { return false }
                p = p.dropFirst()
                n = n.dropFirst()
            default:
                guard n.first == c else { return false }
                p = p.dropFirst()
                n = n.dropFirst()
            }
        }
        return n.isEmpty
    }
}
