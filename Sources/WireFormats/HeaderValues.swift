/// Parsers for the header values clients send. Each returns nil (or throws) on anything it does
/// not understand; none of them traps, whatever the bytes (`scripts/fuzz.sh` checks that).

/// `Range: bytes=a-b`, `bytes=a-`, `bytes=-n` against a resource of `size` bytes (RFC 9110).
/// One range only; nil when the header is malformed or the range is not satisfiable.
public func parseByteRange(_ header: some StringProtocol, size: Int) -> ClosedRange<Int>? {
    guard size > 0 else { return nil }
    let header = Substring(header)
    guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
    let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
    guard spec.count == 2, let first = spec.first, let second = spec.last else { return nil }
    if first.isEmpty {
        guard let suffix = parseDecimal(second), suffix > 0 else { return nil }
        return max(0, size - min(suffix, size))...(size - 1)
    }
    guard let start = parseDecimal(first), start < size else { return nil }
    let end: Int
    if second.isEmpty {
        end = size - 1
    } else {
        guard let last = parseDecimal(second) else { return nil }
        end = min(last, size - 1)
    }
    guard end >= start else { return nil }
    return start...end
}

/// The first byte offset of an upload chunk's `Content-Range`. Clients send `<start>-<end>`
/// (the distribution spec's form), `bytes <start>-<end>/<total>` or `bytes <start>-<end>/*`
/// (RFC 9110's). Nil when there is no start offset to read.
public func parseContentRangeStart(_ header: some StringProtocol) -> Int64? {
    var value = Substring(header).drop { $0 == " " }
    if value.hasPrefix("bytes ") { value = value.dropFirst(6).drop { $0 == " " } }
    let range = value.prefix { $0 != "/" }
    let bounds = range.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
    guard bounds.count == 2, let start = bounds.first.flatMap({ parseDecimal($0) }),
          let last = bounds.last, last.isEmpty || parseDecimal(last).map({ $0 >= start }) == true
    else { return nil }
    return Int64(start)
}

/// The media type of a `Content-Type` value without its parameters, lowercased: `type/subtype`.
/// Nil when it is not of that form.
public func parseMediaType(_ header: some StringProtocol) -> String? {
    let essence = Substring(header).prefix { $0 != ";" }.drop { $0 == " " || $0 == "\t" }
    let trimmed = essence.reversed().drop { $0 == " " || $0 == "\t" }.reversed()
    let text = String(trimmed).lowercased()
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(isTokenCharacter) }) else { return nil }
    return text
}

/// `Scheme value` from an `Authorization` header: the scheme lowercased, the value without
/// surrounding blanks. Nil without a value. (By hand: Foundation's trimming cost more than the
/// rest of authentication put together.)
public func parseAuthorization(_ header: some StringProtocol) -> (scheme: String, value: String)? {
    let header = Substring(header)
    guard let space = header.firstIndex(of: " ") else { return nil }
    let value = header[header.index(after: space)...].drop { $0 == " " || $0 == "\t" }.prefix { $0 != " " && $0 != "\t" }
    let scheme = header[..<space]
    guard !scheme.isEmpty, !value.isEmpty else { return nil }
    return (scheme.lowercased(), String(value))
}

/// The user and password of a Basic credential's base64 value (`user:password`).
public func parseBasicCredentials(_ value: some StringProtocol) -> (user: String, password: String)? {
    guard let bytes = decodeBase64(value), let text = String(validating: bytes, as: UTF8.self),
          let colon = text.firstIndex(of: ":")
    else { return nil }
    return (String(text[..<colon]), String(text[text.index(after: colon)...]))
}

/// One docker token scope, `repository:<name>:<actions>` or `registry:catalog:*`. The name may
/// itself hold colons (a port in a registry host), so the type is the first field and the
/// actions the last.
public struct RegistryScope: Equatable, Sendable {
    public let type: String
    public let name: String
    public let actions: [String]

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 3, let type = parts.first, let actions = parts.last, !type.isEmpty else { return nil }
        let name = parts.dropFirst().dropLast().joined(separator: ":")
        guard !name.isEmpty else { return nil }
        self.type = String(type)
        self.name = name
        self.actions = Substring(actions).split(separator: ",").map { String($0) }
    }
}

/// An `application/x-www-form-urlencoded` body: pairs in order, `+` as a space, percent escapes
/// decoded. Nil when an escape is malformed or decodes to a NUL byte or to invalid UTF-8.
public func parseFormURLEncoded(_ body: some StringProtocol) -> [(name: String, value: String)]? {
    var pairs: [(String, String)] = []
    for pair in Substring(body).split(separator: "&") {
        let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard let rawName = kv.first else { continue }
        let rawValue: Substring = kv.count == 2 ? kv[kv.index(after: kv.startIndex)] : ""
        guard let name = percentDecoded(rawName, plusAsSpace: true), let value = percentDecoded(rawValue, plusAsSpace: true) else {
            return nil
        }
        pairs.append((name, value))
    }
    return pairs
}

/// Decodes percent escapes. Nil when an escape is malformed, or the result holds a NUL byte or is
/// not UTF-8: such values are refused, never passed on (PostgreSQL rejects both).
public func percentDecoded(_ text: some StringProtocol, plusAsSpace: Bool = false) -> String? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count)
    var iterator = text.utf8.makeIterator()
    while let byte = iterator.next() {
        switch byte {
        case UInt8(ascii: "%"):
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        case UInt8(ascii: "+") where plusAsSpace:
            bytes.append(UInt8(ascii: " "))
        default:
            bytes.append(byte)
        }
    }
    guard !bytes.contains(0) else { return nil }
    return String(validating: bytes, as: UTF8.self)
}

/// Whether a request target (path and query, as sent) decodes to clean text: well-formed
/// escapes, no NUL, valid UTF-8. A server answers 400 to anything else before routing it.
public func isCleanRequestTarget(_ target: some StringProtocol) -> Bool {
    // Text without escapes is clean as it stands (a String is valid UTF-8, and the HTTP parser
    // refuses raw NUL): the common case costs one scan and no allocation.
    guard target.utf8.contains(UInt8(ascii: "%")) else { return !target.utf8.contains(0) }
    // `+` means a space only in forms; here it only has to decode.
    return percentDecoded(target) != nil
}

/// A non-negative decimal of ASCII digits that fits in an `Int`; nil otherwise (no signs, no
/// blanks, no other scripts' digits).
public func parseDecimal(_ text: some StringProtocol) -> Int? {
    guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
    return Int(text)
}

func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

/// RFC 9110's `tchar`.
func isTokenCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
    default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

func decodeBase64(_ text: some StringProtocol) -> [UInt8]? {
    var bits: UInt32 = 0, count = 0
    var out: [UInt8] = []
    var padding = 0
    for byte in text.utf8 {
        let value: UInt32
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): value = 62
        case UInt8(ascii: "/"): value = 63
        case UInt8(ascii: "="):
            padding += 1
            continue
        default: return nil
        }
        guard padding == 0 else { return nil }
        bits = bits << 6 | value
        count += 6
        if count >= 8 {
            count -= 8
            out.append(UInt8(truncatingIfNeeded: bits >> UInt32(count)))
        }
    }
    guard padding <= 2 else { return nil }
    return out
}

/// A dollar amount as text (`250`, `250.5`, `0.035`) in exact units of 10^-`scale` dollars
/// (`scale` 2: cents; 5: millicents). Nil for signs, exponents, non-ASCII digits, more
/// fraction digits than `scale`, or amounts of a billion dollars or more. The one money parser
/// for the API (caps) and the operator commands (plan prices).
public func parseDollars(_ text: some StringProtocol, scale: Int) -> Int64? {
    let parts = Substring(text).split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard (0...9).contains(scale) else { return nil }
    guard let wholeText = parts.first, let whole = parseDecimal(wholeText), whole < 1_000_000_000 else { return nil }
    var fraction = 0
    if parts.count == 2, let fractionText = parts.last {
        guard scale > 0, (1...scale).contains(fractionText.count), let value = parseDecimal(fractionText) else { return nil }
        fraction = value
        for _ in fractionText.count..<scale { fraction *= 10 }
    }
    var unit: Int64 = 1
    for _ in 0..<scale { unit *= 10 }
    return Int64(whole) * unit + Int64(fraction)
}
