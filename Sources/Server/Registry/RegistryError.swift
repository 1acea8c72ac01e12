import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An error in the OCI distribution format: `{"errors":[{"code","message","detail"}]}`.
public struct RegistryError: Error, HTTPResponseError {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(RegistryErrorBody(errors: [.init(code: code, message: message)]))
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = nil
        if request.method == .head {
            return Response(status: status, headers: fields, body: .init())
        }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func unknown(_ message: String) -> RegistryError { RegistryError(.internalServerError, "UNKNOWN", message) }
    static func blobUnknown(_ digest: String) -> RegistryError { RegistryError(.notFound, "BLOB_UNKNOWN", "blob unknown to registry: \(digest)") }
    static let uploadUnknown = RegistryError(.notFound, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    static func digestInvalid(_ message: String) -> RegistryError { RegistryError(.badRequest, "DIGEST_INVALID", message) }
    static func manifestUnknown(_ reference: String) -> RegistryError { RegistryError(.notFound, "MANIFEST_UNKNOWN", "manifest unknown: \(reference)") }
    static func manifestInvalid(_ message: String) -> RegistryError { RegistryError(.badRequest, "MANIFEST_INVALID", message) }
    static func manifestBlobUnknown(_ digest: String) -> RegistryError { RegistryError(.badRequest, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to this repository: \(digest)") }
    static func nameInvalid(_ name: String) -> RegistryError { RegistryError(.badRequest, "NAME_INVALID", "invalid repository name '\(name)': use <project-id>/<name>") }
    static func nameUnknown(_ name: String) -> RegistryError { RegistryError(.notFound, "NAME_UNKNOWN", "repository name not known to registry: \(name)") }
    static func denied(_ message: String) -> RegistryError { RegistryError(.forbidden, "DENIED", message) }
    static func sizeInvalid(_ message: String) -> RegistryError { RegistryError(.badRequest, "SIZE_INVALID", message) }
    static func unsupported(_ message: String) -> RegistryError { RegistryError(.methodNotAllowed, "UNSUPPORTED", message) }
}

struct RegistryErrorBody: Encodable {
    struct Entry: Encodable {
        let code: String
        let message: String
    }

    let errors: [Entry]
}
