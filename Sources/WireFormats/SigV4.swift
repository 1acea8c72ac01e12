import Crypto
import Foundation

/// AWS Signature Version 4, as S3-compatible stores (AWS, MinIO, Ceph, moto…) check it: the
/// `Authorization` header of a request, or a presigned URL. Written from AWS's description of the
/// signing process; tested against the examples AWS publishes for S3 and for the SigV4 test suite.
public struct SigV4: Sendable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var region: String
    public var service: String
    /// A temporary credential's session token, sent as `x-amz-security-token`.
    public var sessionToken: String?

    public init(accessKeyId: String, secretAccessKey: String, region: String, service: String = "s3", sessionToken: String? = nil) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.region = region
        self.service = service
        self.sessionToken = sessionToken
    }

    /// The SHA-256 of an empty body, and the marker for a body not hashed.
    public static let emptyPayload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The headers to add to a request (`x-amz-date`, `x-amz-content-sha256` unless given,
    /// the session token, and `authorization`). `headers` must include `host`; every header
    /// given is signed. `path` is the request path as sent (already percent-encoded);
    /// `query` the decoded parameters.
    public func sign(method: String, path: String, query: [(String, String)] = [], headers: [(String, String)],
                     payloadHash: String, date: Date = Date()) -> [(String, String)] {
        let amzDate = Self.amzDate(date)
        var all = headers
        all.append(("x-amz-date", amzDate))
        if service == "s3", !all.contains(where: { $0.0.lowercased() == "x-amz-content-sha256" }) {
            all.append(("x-amz-content-sha256", payloadHash))
        }
        if let sessionToken { all.append(("x-amz-security-token", sessionToken)) }
        let (canonicalHeaders, signedHeaders) = Self.canonical(headers: all)
        let request = [method, Self.canonicalURI(path), Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let scope = "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
        let signature = self.signature(request: request, amzDate: amzDate, scope: scope)
        let added = all.filter { name, _ in !headers.contains { $0.0 == name } }
        return added + [("authorization", "AWS4-HMAC-SHA256 Credential=\(accessKeyId)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)")]
    }

    /// The query of a presigned URL good for `expires` seconds (at most 7 days): its parameters,
    /// encoded, `X-Amz-Signature` last. Only `host` is signed; the body is not.
    public func presignedQuery(method: String, path: String, host: String, query: [(String, String)] = [], expires: Int,
                               date: Date = Date()) -> String {
        let amzDate = Self.amzDate(date)
        let scope = "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
        var parameters = query + [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "\(accessKeyId)/\(scope)"), ("X-Amz-Date", amzDate),
            ("X-Amz-Expires", "\(max(1, min(expires, 604_800)))"), ("X-Amz-SignedHeaders", "host"),
        ]
        if let sessionToken { parameters.append(("X-Amz-Security-Token", sessionToken)) }
        let request = [method, Self.canonicalURI(path), Self.canonicalQuery(parameters), "host:\(host)\n", "host", Self.unsignedPayload]
            .joined(separator: "\n")
        let signature = self.signature(request: request, amzDate: amzDate, scope: scope)
        return Self.canonicalQuery(parameters) + "&X-Amz-Signature=\(signature)"
    }

    func signature(request: String, amzDate: String, scope: String) -> String {
        let toSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Data(request.utf8)))].joined(separator: "\n")
        var key = SymmetricKey(data: Data("AWS4\(secretAccessKey)".utf8))
        for part in [String(amzDate.prefix(8)), region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return Self.hex(HMAC<SHA256>.authenticationCode(for: Data(toSign.utf8), using: key))
    }

    // MARK: the canonical forms

    /// Each path segment encoded once (S3 does not encode twice), `/` kept.
    static func canonicalURI(_ path: String) -> String {
        let decoded = path.isEmpty ? "/" : path
        return decoded.split(separator: "/", omittingEmptySubsequences: false)
            .map { encode(String($0).removingPercentEncoding ?? String($0)) }
            .joined(separator: "/")
    }

    /// Parameters encoded, sorted by name then value, `name=value` joined with `&`.
    static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (encode($0.0), encode($0.1)) }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Lowercased names, values trimmed with inner runs of spaces made one, sorted by name.
    static func canonical(headers: [(String, String)]) -> (String, String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            merged[name.lowercased(), default: []].append(collapsed.trimmingCharacters(in: .whitespaces))
        }
        let names = merged.keys.sorted()
        return (names.map { "\($0):\((merged[$0] ?? []).joined(separator: ","))\n" }.joined(), names.joined(separator: ";"))
    }

    /// RFC 3986 unreserved characters kept, every other byte `%XX` (uppercase).
    public static func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) {
                out.append(Character(UnicodeScalar(byte)))
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static let unreserved: Set<UInt8> = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)

    static func amzDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year ?? 1970, c.month ?? 1, c.day ?? 1, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
