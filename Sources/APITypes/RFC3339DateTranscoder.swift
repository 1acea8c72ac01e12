import Foundation
import OpenAPIRuntime

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 3339 timestamps (`2026-11-27T15:04:05Z`) for the API. Encoding formats by hand with
/// `gmtime_r`, without the lock and formatter the runtime's default transcoder uses per date, which
/// showed up on the hot path of every listing; decoding accepts fractional seconds too.
public struct RFC3339DateTranscoder: DateTranscoder {
    public init() {}

    public func encode(_ date: Date) throws -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        // "YYYY-MM-DDTHH:MM:SSZ", written digit by digit: this runs for every date in every answer.
        return String(unsafeUninitializedCapacity: 20) { out in
            func put(_ value: Int32, _ width: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    out[index] = UInt8(48 + value % 10)
                    value /= 10
                }
            }
            put(parts.tm_year + 1900, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(parts.tm_mon + 1, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(parts.tm_mday, 2, at: 8)
            out[10] = UInt8(ascii: "T")
            put(parts.tm_hour, 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put(parts.tm_min, 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(parts.tm_sec, 2, at: 17)
            out[19] = UInt8(ascii: "Z")
            return 20
        }
    }

    public func decode(_ string: String) throws -> Date {
        let plain = ISO8601DateFormatter()
        if let date = plain.date(from: string) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = fractional.date(from: string) { return date }
        throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "expected an RFC 3339 date-time, got '\(string)'"))
    }

    /// The same format for Codable outside the generated code (log lines, stored specs, the CLI).
    public static var encodingStrategy: JSONEncoder.DateEncodingStrategy {
        .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(try RFC3339DateTranscoder().encode(date))
        }
    }

    public static var decodingStrategy: JSONDecoder.DateDecodingStrategy {
        .custom { decoder in try RFC3339DateTranscoder().decode(try decoder.singleValueContainer().decode(String.self)) }
    }
}
