import Crypto
import Foundation

/// The standard functions bake files use (docker buildx's set, from go-cty's stdlib and its own).
/// `try` and `can` are special forms in the evaluator (their arguments may fail).
enum HCLStandardLibrary {
    typealias Body = @Sendable ([HCLValue], SourcePosition) throws -> HCLValue

    static func fn(_ min: Int, _ max: Int?, _ body: @escaping Body) -> HCLFunction { HCLFunction(minimum: min, maximum: max, body: body) }

    static func str(_ v: HCLValue, _ what: String = "the argument") throws -> String {
        guard let s = HCLEvaluator.string(v) else { throw BakeError("\(what) must be a string, not \(v.typeName)") }
        return s
    }

    static func num(_ v: HCLValue, _ what: String = "the argument") throws -> Double {
        guard let n = HCLEvaluator.numberValue(v) else { throw BakeError("\(what) must be a number, not \(v.typeName)") }
        return n
    }

    /// A whole number that fits: huge or fractional values are an error, never a trap.
    static func int(_ v: HCLValue, _ what: String = "the argument", max limit: Double = 9_007_199_254_740_992) throws -> Int {
        let n = try num(v, what)
        guard n.isFinite, abs(n) <= limit else { throw BakeError("\(what) \(HCLValue.format(n)) is out of range") }
        return Int(n.rounded(.towardZero))
    }

    static func list(_ v: HCLValue, _ what: String = "the argument") throws -> [HCLValue] {
        switch v {
        case .list(let items): return items
        case .null: throw BakeError("\(what) must be a list, not null")
        default: throw BakeError("\(what) must be a list, not \(v.typeName)")
        }
    }

    static func object(_ v: HCLValue, _ what: String = "the argument") throws -> [String: HCLValue] {
        guard case .object(let fields) = v else { throw BakeError("\(what) must be a map or object, not \(v.typeName)") }
        return fields
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 { digest.map { String(format: "%02x", $0) }.joined() }

    static func regex(_ pattern: String) throws -> NSRegularExpression {
        do { return try NSRegularExpression(pattern: pattern) } catch { throw BakeError("'\(pattern)' is not a regular expression") }
    }

    /// The matches of `pattern` in `text`: a string (no groups), a list (numbered groups) or an object (named groups).
    static func match(_ result: NSTextCheckingResult, in text: String, pattern: String) -> HCLValue {
        let ns = text as NSString
        func group(_ i: Int) -> HCLValue {
            let r = result.range(at: i)
            return r.location == NSNotFound ? .null : .string(ns.substring(with: r))
        }
        if result.numberOfRanges == 1 { return group(0) }
        let names = (try? NSRegularExpression(pattern: "\\(\\?P?<([A-Za-z][A-Za-z0-9_]*)>").matches(in: pattern, range: NSRange(location: 0, length: (pattern as NSString).length))
            .map { (pattern as NSString).substring(with: $0.range(at: 1)) }) ?? []
        if !names.isEmpty {
            var fields: [String: HCLValue] = [:]
            for name in names {
                let r = result.range(withName: name)
                fields[name] = r.location == NSNotFound ? .null : .string(ns.substring(with: r))
            }
            return .object(fields)
        }
        return .list((1..<result.numberOfRanges).map(group))
    }

    static let all: [String: HCLFunction] = {
        var f: [String: HCLFunction] = [:]
        // Strings.
        f["upper"] = fn(1, 1) { a, _ in .string(try str(a[0]).uppercased()) }
        f["lower"] = fn(1, 1) { a, _ in .string(try str(a[0]).lowercased()) }
        f["title"] = fn(1, 1) { a, _ in .string(try str(a[0]).split(separator: " ", omittingEmptySubsequences: false).map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")) }
        f["strlen"] = fn(1, 1) { a, _ in .number(Double(try str(a[0]).count)) }
        f["strrev"] = fn(1, 1) { a, _ in .string(String(try str(a[0]).reversed())) }
        f["chomp"] = fn(1, 1) { a, _ in
            var s = try str(a[0])
            while s.hasSuffix("\n") || s.hasSuffix("\r") { s.removeLast() }
            return .string(s)
        }
        f["trimspace"] = fn(1, 1) { a, _ in .string(try str(a[0]).trimmingCharacters(in: .whitespacesAndNewlines)) }
        f["trim"] = fn(2, 2) { a, _ in .string(try str(a[0]).trimmingCharacters(in: CharacterSet(charactersIn: try str(a[1])))) }
        f["trimprefix"] = fn(2, 2) { a, _ in
            let s = try str(a[0]), p = try str(a[1])
            return .string(s.hasPrefix(p) ? String(s.dropFirst(p.count)) : s)
        }
        f["trimsuffix"] = fn(2, 2) { a, _ in
            let s = try str(a[0]), p = try str(a[1])
            return .string(s.hasSuffix(p) ? String(s.dropLast(p.count)) : s)
        }
        f["replace"] = fn(3, 3) { a, _ in
            let s = try str(a[0]), search = try str(a[1]), with = try str(a[2])
            if search.count > 2, search.hasPrefix("/"), search.hasSuffix("/") {
                let re = try regex(String(search.dropFirst().dropLast()))
                let template = with.replacingOccurrences(of: "${", with: "$").replacingOccurrences(of: "}", with: "")
                return .string(re.stringByReplacingMatches(in: s, range: NSRange(location: 0, length: (s as NSString).length), withTemplate: template))
            }
            return .string(s.replacingOccurrences(of: search, with: with))
        }
        f["regex_replace"] = fn(3, 3) { a, _ in
            let s = try str(a[0]), re = try regex(try str(a[1]))
            return .string(re.stringByReplacingMatches(in: s, range: NSRange(location: 0, length: (s as NSString).length), withTemplate: try str(a[2])))
        }
        f["regex"] = fn(2, 2) { a, _ in
            let pattern = try str(a[0]), s = try str(a[1])
            guard let m = try regex(pattern).firstMatch(in: s, range: NSRange(location: 0, length: (s as NSString).length)) else {
                throw BakeError("regex(): '\(pattern)' does not match \"\(s)\"")
            }
            return match(m, in: s, pattern: pattern)
        }
        f["regexall"] = fn(2, 2) { a, _ in
            let pattern = try str(a[0]), s = try str(a[1])
            return .list(try regex(pattern).matches(in: s, range: NSRange(location: 0, length: (s as NSString).length)).map { match($0, in: s, pattern: pattern) })
        }
        f["split"] = fn(2, 2) { a, _ in
            let sep = try str(a[0]), s = try str(a[1])
            if s.isEmpty { return .list([]) }
            return .list(s.components(separatedBy: sep).map { .string($0) })
        }
        f["join"] = fn(2, nil) { a, _ in
            let sep = try str(a[0])
            return .string(try a.dropFirst().flatMap { try list($0) }.map { try str($0, "each item") }.joined(separator: sep))
        }
        f["substr"] = fn(3, 3) { a, _ in
            let chars = Array(try str(a[0]))
            var offset = try int(a[1]), length = try int(a[2])
            if offset < 0 { offset = max(0, chars.count + offset) }
            guard offset <= chars.count else { return .string("") }
            if length < 0 || offset + length > chars.count { length = chars.count - offset }
            return .string(String(chars[offset..<(offset + length)]))
        }
        f["indent"] = fn(2, 2) { a, _ in
            let pad = String(repeating: " ", count: max(0, try int(a[0], max: 1024)))
            let lines = try str(a[1]).components(separatedBy: "\n")
            return .string(([lines[0]] + lines.dropFirst().map { $0.isEmpty ? $0 : pad + $0 }).joined(separator: "\n"))
        }
        f["format"] = fn(1, nil) { a, _ in .string(try GoFormat.format(try str(a[0]), Array(a.dropFirst()))) }
        f["formatlist"] = fn(1, nil) { a, _ in
            let pattern = try str(a[0])
            let args = Array(a.dropFirst())
            let lengths = args.compactMap { if case .list(let l) = $0 { l.count } else { nil } }
            guard let n = lengths.first else { return .list([.string(try GoFormat.format(pattern, args))]) }
            guard lengths.allSatisfy({ $0 == n }) else { throw BakeError("formatlist(): the lists are not all the same length") }
            return .list(try (0..<n).map { i in
                .string(try GoFormat.format(pattern, args.map { if case .list(let l) = $0 { l[i] } else { $0 } }))
            })
        }
        f["sanitize"] = fn(1, 1) { a, _ in .string(String(try str(a[0]).map { $0.isLetter || $0.isNumber ? $0 : "_" })) }
        f["urlencode"] = fn(1, 1) { a, _ in
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-_.~")
            return .string(try str(a[0]).addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
        }
        f["basename"] = fn(1, 1) { a, _ in .string((try str(a[0]) as NSString).lastPathComponent) }
        f["dirname"] = fn(1, 1) { a, _ in .string((try str(a[0]) as NSString).deletingLastPathComponent) }
        f["homedir"] = fn(0, 0) { _, _ in .string(NSHomeDirectory()) }

        // Collections.
        f["length"] = fn(1, 1) { a, _ in
            switch a[0] {
            case .list(let l): .number(Double(l.count))
            case .object(let o): .number(Double(o.count))
            case .string(let s): .number(Double(s.count))
            default: throw BakeError("length() needs a list, map or string, not \(a[0].typeName)")
            }
        }
        f["concat"] = fn(0, nil) { a, _ in .list(try a.flatMap { try list($0) }) }
        f["contains"] = fn(2, 2) { a, _ in .bool(try list(a[0]).contains(a[1])) }
        f["distinct"] = fn(1, 1) { a, _ in
            var out: [HCLValue] = []
            for item in try list(a[0]) where !out.contains(item) { out.append(item) }
            return .list(out)
        }
        f["element"] = fn(2, 2) { a, _ in
            let items = try list(a[0])
            guard !items.isEmpty else { throw BakeError("element(): the list is empty") }
            let i = try int(a[1])
            return items[((i % items.count) + items.count) % items.count]
        }
        f["index"] = fn(2, 2) { a, _ in
            guard let i = try list(a[0]).firstIndex(of: a[1]) else { throw BakeError("index(): the list does not hold \(a[1])") }
            return .number(Double(i))
        }
        f["hasindex"] = fn(2, 2) { a, _ in
            switch a[0] {
            case .list(let l): if let n = HCLEvaluator.numberValue(a[1]) { return .bool(n >= 0 && n < Double(l.count)) } else { return .bool(false) }
            case .object(let o): return .bool(HCLEvaluator.string(a[1]).map { o[$0] != nil } ?? false)
            default: return .bool(false)
            }
        }
        f["flatten"] = fn(1, 1) { a, _ in
            func flat(_ v: HCLValue) -> [HCLValue] { if case .list(let l) = v { l.flatMap(flat) } else { [v] } }
            return .list(flat(.list(try list(a[0]))))
        }
        f["keys"] = fn(1, 1) { a, _ in .list(try object(a[0]).keys.sorted().map { .string($0) }) }
        f["values"] = fn(1, 1) { a, _ in
            let o = try object(a[0])
            return .list(o.keys.sorted().map { o[$0]! })
        }
        f["lookup"] = fn(2, 3) { a, _ in
            let o = try object(a[0]), k = try str(a[1])
            if let v = o[k] { return v }
            guard a.count == 3 else { throw BakeError("lookup(): no key '\(k)' and no default") }
            return a[2]
        }
        f["merge"] = fn(0, nil) { a, _ in
            var out: [String: HCLValue] = [:]
            for item in a where !item.isNull { out.merge(try object(item)) { $1 } }
            return .object(out)
        }
        f["range"] = fn(1, 3) { a, _ in
            let nums = try a.map { try num($0) }
            let (start, end, step) = nums.count == 1 ? (0, nums[0], 1) : (nums[0], nums[1], nums.count == 3 ? nums[2] : (nums[1] >= nums[0] ? 1 : -1))
            guard step != 0 else { throw BakeError("range(): the step cannot be 0") }
            var out: [HCLValue] = []
            var x = start
            while (step > 0 ? x < end : x > end), out.count < 1024 { out.append(.number(x)); x += step }
            return .list(out)
        }
        f["reverse"] = fn(1, 1) { a, _ in .list(try list(a[0]).reversed()) }
        f["reverselist"] = f["reverse"]
        f["slice"] = fn(3, 3) { a, _ in
            let items = try list(a[0]), from = try int(a[1]), to = try int(a[2])
            guard from >= 0, to <= items.count, from <= to else { throw BakeError("slice(): \(from) to \(to) is outside a list of \(items.count)") }
            return .list(Array(items[from..<to]))
        }
        f["sort"] = fn(1, 1) { a, _ in .list(try list(a[0]).map { try str($0, "each item") }.sorted().map { .string($0) }) }
        f["coalesce"] = fn(1, nil) { a, _ in
            guard let v = a.first(where: { !$0.isNull && $0 != .string("") }) else { throw BakeError("coalesce(): every argument is null or empty") }
            return v
        }
        f["coalescelist"] = fn(1, nil) { a, _ in
            guard let v = a.first(where: { if case .list(let l) = $0 { !l.isEmpty } else { false } }) else { throw BakeError("coalescelist(): every list is empty") }
            return v
        }
        f["compact"] = fn(1, 1) { a, _ in .list(try list(a[0]).filter { !$0.isNull && $0 != .string("") }) }
        f["zipmap"] = fn(2, 2) { a, _ in
            let ks = try list(a[0]), vs = try list(a[1])
            guard ks.count == vs.count else { throw BakeError("zipmap(): \(ks.count) keys and \(vs.count) values") }
            var out: [String: HCLValue] = [:]
            for (k, v) in zip(ks, vs) { out[try str(k, "each key")] = v }
            return .object(out)
        }
        f["chunklist"] = fn(2, 2) { a, _ in
            let items = try list(a[0]), size = try int(a[1])
            guard size > 0 else { return .list([.list(items)]) }
            return .list(stride(from: 0, to: items.count, by: size).map { .list(Array(items[$0..<min($0 + size, items.count)])) })
        }
        f["setunion"] = fn(1, nil) { a, _ in
            var out: [HCLValue] = []
            for item in try a.flatMap({ try list($0) }) where !out.contains(item) { out.append(item) }
            return .list(out)
        }
        f["setintersection"] = fn(1, nil) { a, _ in
            let lists = try a.map { try list($0) }
            var out: [HCLValue] = []
            for item in lists[0] where lists.dropFirst().allSatisfy({ $0.contains(item) }) && !out.contains(item) { out.append(item) }
            return .list(out)
        }
        f["setsubtract"] = fn(2, 2) { a, _ in
            let b = try list(a[1])
            return .list(try list(a[0]).filter { !b.contains($0) })
        }
        f["setproduct"] = fn(1, nil) { a, _ in
            var out: [[HCLValue]] = [[]]
            for l in try a.map({ try list($0) }) { out = out.flatMap { prefix in l.map { prefix + [$0] } } }
            return .list(out.map { .list($0) })
        }

        // Numbers and logic.
        f["abs"] = fn(1, 1) { a, _ in .number(abs(try num(a[0]))) }
        f["absolute"] = f["abs"]
        f["ceil"] = fn(1, 1) { a, _ in .number((try num(a[0])).rounded(.up)) }
        f["floor"] = fn(1, 1) { a, _ in .number((try num(a[0])).rounded(.down)) }
        f["int"] = fn(1, 1) { a, _ in .number((try num(a[0])).rounded(.towardZero)) }
        f["log"] = fn(2, 2) { a, _ in .number(Foundation.log(try num(a[0])) / Foundation.log(try num(a[1]))) }
        f["pow"] = fn(2, 2) { a, _ in .number(Foundation.pow(try num(a[0]), try num(a[1]))) }
        f["signum"] = fn(1, 1) { a, _ in let n = try num(a[0]); return .number(n > 0 ? 1 : n < 0 ? -1 : 0) }
        f["max"] = fn(1, nil) { a, _ in .number(try a.map { try num($0) }.max()!) }
        f["min"] = fn(1, nil) { a, _ in .number(try a.map { try num($0) }.min()!) }
        f["parseint"] = fn(2, 2) { a, _ in
            let s = try str(a[0]), base = try int(a[1])
            guard (2...36).contains(base), let n = Int(s, radix: base) else { throw BakeError("parseint(): '\(s)' is not a base-\(base) number") }
            return .number(Double(n))
        }
        f["add"] = fn(2, 2) { a, _ in .number(try num(a[0]) + num(a[1])) }
        f["subtract"] = fn(2, 2) { a, _ in .number(try num(a[0]) - num(a[1])) }
        f["multiply"] = fn(2, 2) { a, _ in .number(try num(a[0]) * num(a[1])) }
        f["divide"] = fn(2, 2) { a, _ in
            let d = try num(a[1])
            guard d != 0 else { throw BakeError("divide(): division by zero") }
            return .number(try num(a[0]) / d)
        }
        f["modulo"] = fn(2, 2) { a, _ in .number((try num(a[0])).truncatingRemainder(dividingBy: try num(a[1]))) }
        f["negate"] = fn(1, 1) { a, _ in .number(-(try num(a[0]))) }
        f["equal"] = fn(2, 2) { a, _ in .bool(a[0] == a[1]) }
        f["notequal"] = fn(2, 2) { a, _ in .bool(a[0] != a[1]) }
        f["greaterthan"] = fn(2, 2) { a, _ in .bool(try num(a[0]) > num(a[1])) }
        f["greaterthanorequalto"] = fn(2, 2) { a, _ in .bool(try num(a[0]) >= num(a[1])) }
        f["lessthan"] = fn(2, 2) { a, _ in .bool(try num(a[0]) < num(a[1])) }
        f["lessthanorequalto"] = fn(2, 2) { a, _ in .bool(try num(a[0]) <= num(a[1])) }
        f["and"] = fn(2, 2) { a, p in .bool(try HCLEvaluator.bool(a[0], p, "and()'s first argument") && HCLEvaluator.bool(a[1], p, "and()'s second argument")) }
        f["or"] = fn(2, 2) { a, p in .bool(try HCLEvaluator.bool(a[0], p, "or()'s first argument") || HCLEvaluator.bool(a[1], p, "or()'s second argument")) }
        f["not"] = fn(1, 1) { a, p in .bool(!(try HCLEvaluator.bool(a[0], p, "not()'s argument"))) }

        // Conversion and encoding.
        f["tostring"] = fn(1, 1) { a, _ in a[0].isNull ? .null : .string(try str(a[0])) }
        f["tonumber"] = fn(1, 1) { a, _ in a[0].isNull ? .null : .number(try num(a[0])) }
        f["tobool"] = fn(1, 1) { a, p in a[0].isNull ? .null : .bool(try HCLEvaluator.bool(a[0], p, "tobool()'s argument")) }
        f["tolist"] = fn(1, 1) { a, _ in .list(try list(a[0])) }
        f["toset"] = f["distinct"]
        f["tomap"] = fn(1, 1) { a, _ in .object(try object(a[0])) }
        f["jsonencode"] = fn(1, 1) { a, _ in .string(try a[0].jsonString()) }
        f["jsondecode"] = fn(1, 1) { a, _ in
            do { return try HCLValue.decodeJSON(try str(a[0])) } catch let e as BakeError { throw e } catch { throw BakeError("jsondecode(): not JSON") }
        }
        f["base64encode"] = fn(1, 1) { a, _ in .string(Data(try str(a[0]).utf8).base64EncodedString()) }
        f["base64decode"] = fn(1, 1) { a, _ in
            guard let data = Data(base64Encoded: try str(a[0])), let s = String(data: data, encoding: .utf8) else { throw BakeError("base64decode(): not base64 of UTF-8 text") }
            return .string(s)
        }
        f["md5"] = fn(1, 1) { a, _ in .string(hex(Insecure.MD5.hash(data: Data(try str(a[0]).utf8)))) }
        f["sha1"] = fn(1, 1) { a, _ in .string(hex(Insecure.SHA1.hash(data: Data(try str(a[0]).utf8)))) }
        f["sha256"] = fn(1, 1) { a, _ in .string(hex(SHA256.hash(data: Data(try str(a[0]).utf8)))) }
        f["sha512"] = fn(1, 1) { a, _ in .string(hex(SHA512.hash(data: Data(try str(a[0]).utf8)))) }
        f["uuidv4"] = fn(0, 0) { _, _ in .string(UUID().uuidString.lowercased()) }

        // Dates.
        f["timestamp"] = fn(0, 0) { _, _ in .string(Dates.rfc3339(Date())) }
        f["formatdate"] = fn(2, 2) { a, _ in
            guard let date = Dates.parse(try str(a[1])) else { throw BakeError("formatdate(): '\(a[1])' is not an RFC 3339 timestamp") }
            return .string(try Dates.format(try str(a[0]), date))
        }
        f["timeadd"] = fn(2, 2) { a, _ in
            guard let date = Dates.parse(try str(a[0])) else { throw BakeError("timeadd(): '\(a[0])' is not an RFC 3339 timestamp") }
            return .string(Dates.rfc3339(date.addingTimeInterval(try Dates.duration(try str(a[1])))))
        }
        return f
    }()
}

/// Go's fmt verbs as `format()` takes them: `%s %d %f %v %q %t %x %X %o %b %e %%`, with flags, width and precision.
enum GoFormat {
    static func format(_ pattern: String, _ args: [HCLValue]) throws -> String {
        var out = ""
        var chars = Array(pattern)[...]
        var next = 0
        while let c = chars.popFirst() {
            guard c == "%" else { out.append(c); continue }
            var spec = ""
            while let d = chars.first, "-+ 0#".contains(d) { spec.append(d); chars.removeFirst() }
            var width = ""
            while let d = chars.first, d.isNumber { width.append(d); chars.removeFirst() }
            var precision: String?
            if chars.first == "." {
                chars.removeFirst()
                precision = ""
                while let d = chars.first, d.isNumber { precision!.append(d); chars.removeFirst() }
            }
            guard let verb = chars.popFirst() else { throw BakeError("format(): the pattern ends in the middle of a verb") }
            if verb == "%" { out.append("%"); continue }
            guard next < args.count else { throw BakeError("format(): not enough arguments for the pattern") }
            let arg = args[next]
            next += 1
            var text: String
            switch verb {
            case "s", "v":
                if case .list = arg { text = try arg.jsonString() } else if case .object = arg { text = try arg.jsonString() } else { text = arg.description }
                if let precision, let n = Int(precision) { text = String(text.prefix(n)) }
            case "q": text = try HCLValue.string(HCLEvaluator.string(arg) ?? "").jsonString()
            case "t":
                guard case .bool(let b) = arg else { throw BakeError("format(): %t needs a bool") }
                text = b ? "true" : "false"
            case "d":
                guard let n = HCLEvaluator.numberValue(arg) else { throw BakeError("format(): %d needs a number, not \(arg.typeName)") }
                guard n.isFinite, abs(n) < 9.2e18 else { throw BakeError("format(): %d of \(n) is out of range") }
                text = String(Int64(n))
                if spec.contains("+"), n >= 0 { text = "+" + text }
            case "f", "e":
                guard let n = HCLEvaluator.numberValue(arg) else { throw BakeError("format(): %\(verb) needs a number, not \(arg.typeName)") }
                text = String(format: "%.\(precision.flatMap(Int.init) ?? 6)\(verb)", n)
                if spec.contains("+"), n >= 0 { text = "+" + text }
            case "x", "X", "o", "b":
                if let n = HCLEvaluator.numberValue(arg), n.isFinite, abs(n) < 9.2e18 {
                    let radix = verb == "o" ? 8 : verb == "b" ? 2 : 16
                    text = String(Int64(n), radix: radix, uppercase: verb == "X")
                } else {
                    text = try HCLStandardLibrary.str(arg).utf8.map { String(format: verb == "X" ? "%02X" : "%02x", $0) }.joined()
                }
            default:
                throw BakeError("format(): unknown verb %\(verb)")
            }
            if let w = Int(width), w <= 4096, text.count < w {
                let pad = String(repeating: spec.contains("0") && !spec.contains("-") && "dfexXob".contains(verb) ? "0" : " ", count: w - text.count)
                if spec.contains("-") { text += pad } else if pad.first == "0", text.hasPrefix("-") || text.hasPrefix("+") {
                    text = String(text.first!) + pad + text.dropFirst()
                } else { text = pad + text }
            }
            out += text
        }
        return out
    }
}

/// RFC 3339 timestamps and Terraform's `formatdate` patterns.
enum Dates {
    static func rfc3339(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    static func parse(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }

    /// `1h30m`, `-10s`, `1.5h` (units h, m, s, ms, us, ns).
    static func duration(_ text: String) throws -> TimeInterval {
        var rest = Substring(text)
        var sign = 1.0
        if rest.first == "-" { sign = -1; rest.removeFirst() } else if rest.first == "+" { rest.removeFirst() }
        var total = 0.0
        guard !rest.isEmpty else { throw BakeError("'\(text)' is not a duration like 1h30m") }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            rest.removeFirst(number.count)
            let unit = rest.prefix { $0.isLetter || $0 == "µ" }
            rest.removeFirst(unit.count)
            guard let n = Double(number) else { throw BakeError("'\(text)' is not a duration like 1h30m") }
            switch unit {
            case "h": total += n * 3600
            case "m": total += n * 60
            case "s": total += n
            case "ms": total += n / 1000
            case "us", "µs": total += n / 1_000_000
            case "ns": total += n / 1_000_000_000
            default: throw BakeError("'\(text)' is not a duration like 1h30m (units h, m, s, ms, us, ns)")
            }
        }
        return sign * total
    }

    static func format(_ pattern: String, _ date: Date) throws -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        var out = ""
        var chars = Array(pattern)[...]
        while let ch = chars.first {
            if ch == "'" {
                chars.removeFirst()
                while let d = chars.popFirst(), d != "'" { out.append(d) }
                continue
            }
            guard ch.isLetter else { out.append(ch); chars.removeFirst(); continue }
            var run = 0
            while chars.first == ch { run += 1; chars.removeFirst() }
            let token = String(repeating: ch, count: run)
            func pad(_ n: Int, _ w: Int) -> String { String(repeating: "0", count: max(0, w - String(n).count)) + String(n) }
            switch token {
            case "YYYY": out += pad(c.year!, 4)
            case "YY": out += pad(c.year! % 100, 2)
            case "MMMM": out += months[c.month! - 1]
            case "MMM": out += String(months[c.month! - 1].prefix(3))
            case "MM": out += pad(c.month!, 2)
            case "M": out += String(c.month!)
            case "DD": out += pad(c.day!, 2)
            case "D": out += String(c.day!)
            case "EEEE": out += days[c.weekday! - 1]
            case "EEE": out += String(days[c.weekday! - 1].prefix(3))
            case "hh": out += pad(c.hour!, 2)
            case "h": out += String(c.hour!)
            case "HH": out += pad((c.hour! + 11) % 12 + 1, 2)
            case "H": out += String((c.hour! + 11) % 12 + 1)
            case "AA": out += c.hour! < 12 ? "AM" : "PM"
            case "aa": out += c.hour! < 12 ? "am" : "pm"
            case "mm": out += pad(c.minute!, 2)
            case "m": out += String(c.minute!)
            case "ss": out += pad(c.second!, 2)
            case "s": out += String(c.second!)
            case "Z": out += "Z"
            case "ZZZ": out += "UTC"
            case "ZZZZ": out += "+0000"
            case "ZZZZZ": out += "+00:00"
            default: throw BakeError("formatdate(): unknown pattern '\(token)'")
            }
        }
        return out
    }
}
