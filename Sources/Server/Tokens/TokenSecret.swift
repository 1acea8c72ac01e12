import Crypto
import Foundation

/// The kinds of token, as stored and as the API names them.
public enum TokenKind: String, Sendable, CaseIterable {
    case user, organization, project, pull, worker, build, agent, registration
    /// From an OIDC exchange: a CI job's short-lived token for the projects that trust it.
    case ci

    /// Secrets start with a prefix naming their kind, so secret scanners and people recognise them.
    var secretPrefix: String {
        switch self {
        case .user: "ddu_"
        case .organization: "ddo_"
        case .project: "ddp_"
        case .pull: "ddr_"
        case .worker: "ddw_"
        case .build: "ddb_"
        case .agent: "dda_"
        case .registration: "ddg_"
        case .ci: "ddc_"
        }
    }
}

/// Token secrets: 256 random bits, base62, behind a kind prefix. Only a SHA-256 hash is stored;
/// with that much entropy a fast hash is safe and keeps per-request lookups cheap.
public enum TokenSecret {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    public static func generate(kind: TokenKind) -> String {
        var generator = SystemRandomNumberGenerator()
        // 43 base62 characters carry 256.0 bits (62^43 > 2^256).
        var body = [UInt8]()
        body.reserveCapacity(43)
        for _ in 0..<43 { body.append(alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))]) }
        return kind.secretPrefix + String(decoding: body, as: UTF8.self)
    }

    public static func hash(_ secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(secret.utf8)))
    }

    /// What listings show to identify a token: its kind prefix and four characters.
    public static func displayPrefix(_ secret: String) -> String {
        String(secret.prefix(8))
    }

    /// Cheap shape check before touching the database.
    public static func looksValid(_ secret: String) -> Bool {
        secret.utf8.count == 47 && TokenKind.allCases.contains { secret.hasPrefix($0.secretPrefix) }
    }
}

/// Random identifiers: 16 characters of [a-z0-9] (about 82 bits), valid in OCI repository names.
public enum Identifier {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)

    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var out = [UInt8]()
        out.reserveCapacity(16)
        for _ in 0..<16 { out.append(alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))]) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func isValid(_ id: String) -> Bool {
        id.utf8.count == 16 && id.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
    }
}
