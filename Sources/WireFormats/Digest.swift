import Foundation
#if canImport(Crypto)
import Crypto
#endif

/// A content digest, `sha256:<64 hex>` or `sha512:<128 hex>`.
public struct Digest: Hashable, Sendable, CustomStringConvertible {
    public enum Algorithm: String, Sendable {
        case sha256, sha512
        public var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    public let algorithm: Algorithm
    public let hex: String

    public init?(_ string: some StringProtocol) {
        let parts = string.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let algorithm = Algorithm(rawValue: String(parts[0])),
              parts[1].count == algorithm.hexLength,
              parts[1].utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else { return nil }
        self.algorithm = algorithm
        self.hex = String(parts[1])
    }

    init(algorithm: Algorithm, hex: String) {
        self.algorithm = algorithm
        self.hex = hex
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }
}

#if canImport(Crypto)
extension Digest {
    public static func of(_ bytes: some DataProtocol, algorithm: Algorithm = .sha256) -> Digest {
        var hasher = DigestHasher(algorithm)
        hasher.update(bytes)
        return hasher.finalize()
    }
}

/// Incremental hashing for either algorithm.
public struct DigestHasher: Sendable {
    private var sha256: SHA256?
    private var sha512: SHA512?
    public let algorithm: Digest.Algorithm

    public init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha256: sha256 = SHA256()
        case .sha512: sha512 = SHA512()
        }
    }

    public mutating func update(_ bytes: some DataProtocol) {
        if sha256 != nil { sha256?.update(data: bytes) } else { sha512?.update(data: bytes) }
    }

    public mutating func update(bufferPointer: UnsafeRawBufferPointer) {
        if sha256 != nil { sha256?.update(bufferPointer: bufferPointer) } else { sha512?.update(bufferPointer: bufferPointer) }
    }

    public func finalize() -> Digest {
        let bytes: [UInt8] = if let sha256 { Array(sha256.finalize()) } else if let sha512 { Array(sha512.finalize()) } else { [] }
        let hexDigits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            hex.append(hexDigits[Int(byte >> 4)])
            hex.append(hexDigits[Int(byte & 0x0f)])
        }
        return Digest(algorithm: algorithm, hex: String(decoding: hex, as: UTF8.self))
    }
}
#endif
