import Foundation
import HTTPTypes
import NIOCore
import PostgresNIO

/// Failures that are not the client's fault and not a bug: PostgreSQL out of reach, storage
/// full, or a value PostgreSQL cannot store. Recognised here once; the API and the registry each
/// turn them into their own error format with a status a client can act on.
enum ServiceFault: Equatable {
    /// PostgreSQL did not answer in time or is shutting down: 503 with `Retry-After`.
    case databaseUnavailable
    /// The disk holding blobs or contexts is full: 507.
    case storageFull
    /// A value PostgreSQL refuses (a NUL character, an out-of-range number): 400.
    case unstorableValue
    /// The object store holding blobs failed or is out of reach: 503 with `Retry-After`.
    case blobStoreUnavailable

    static let retryAfterSeconds = 5

    init?(_ error: any Error) {
        switch error {
        case is DatabaseUnavailable:
            self = .databaseUnavailable
        case let error as PSQLError:
            if Database.isDroppedConnection(error) || error.code == .poolClosed {
                self = .databaseUnavailable
                return
            }
            guard let state = error.serverInfo?[.sqlState] else { return nil }
            if state.hasPrefix("22") {
                self = .unstorableValue
            } else if state.hasPrefix("57P") || state.hasPrefix("53") || state.hasPrefix("08") {
                self = .databaseUnavailable
            } else {
                return nil
            }
        case BlobStoreError.storageFull:
            self = .storageFull
        case BlobStoreError.unavailable:
            self = .blobStoreUnavailable
        case let error as IOError where Self.isNoSpace(error.errnoCode):
            self = .storageFull
        case let error as POSIXError where Self.isNoSpace(error.code.rawValue):
            self = .storageFull
        case let error as CocoaError where (error.underlying as? POSIXError).map({ Self.isNoSpace($0.code.rawValue) }) ?? false:
            self = .storageFull
        default:
            return nil
        }
    }

    static func isNoSpace(_ code: Int32) -> Bool { code == ENOSPC || code == EDQUOT }

    var status: HTTPResponse.Status {
        switch self {
        case .databaseUnavailable, .blobStoreUnavailable: .serviceUnavailable
        case .storageFull: HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
        case .unstorableValue: .badRequest
        }
    }

    var message: String {
        switch self {
        case .databaseUnavailable:
            "the server cannot reach its database right now; try again in a few seconds"
        case .storageFull:
            "the server's storage is full; nothing was stored. Ask the operator to free space on the server's data disk"
        case .blobStoreUnavailable:
            "the server's blob storage did not answer; nothing was stored. Try again in a few seconds"
        case .unstorableValue:
            "the request holds a value that cannot be stored (such as a NUL character or an out-of-range number)"
        }
    }

    var headers: HTTPFields {
        self == .databaseUnavailable || self == .blobStoreUnavailable ? [.retryAfter: "\(Self.retryAfterSeconds)"] : [:]
    }
}
