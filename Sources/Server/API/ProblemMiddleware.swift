import DrydockAPITypes
import Foundation
import Hummingbird
import HTTPTypes
import Logging
import OpenAPIRuntime

/// Renders every failure of an `/api/v1` operation as `application/problem+json`, in one place:
/// domain errors (`APIError`), malformed or mistyped JSON (naming the field), request bodies over
/// the limit (413), and anything unexpected (500, logged, with no internals in the answer).
struct ProblemMiddleware: ServerMiddleware {
    let logger: Logger

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        do {
            return try await next(request, body, metadata)
        } catch {
            let problem = Self.problem(for: error, operationID: operationID, logger: logger)
            return Self.response(problem, path: request.path)
        }
    }

    static func problem(for error: any Error, operationID: String, logger: Logger) -> APIError {
        var underlying: any Error = error
        var cause: String?
        var status: HTTPResponse.Status?
        // Unwrap the runtime's wrappers down to what actually went wrong.
        for _ in 0..<4 {
            if let serverError = underlying as? ServerError {
                cause = cause ?? serverError.causeDescription
                status = status ?? serverError.httpStatus
                underlying = serverError.underlyingError
            } else if let clientSide = underlying as? (any HTTPResponseConvertible), !(underlying is APIError), !(underlying is DomainError) {
                status = clientSide.httpStatus
                break
            } else {
                break
            }
        }
        if let apiError = underlying as? APIError { return apiError }
        if let domain = underlying as? DomainError {
            if domain.kind == .internal {
                logger.error("operation failed", metadata: ["operation": "\(operationID)", "error": "\(domain.message)", "cause": "\(domain.cause ?? "-")"])
                return APIError(status: .internalServerError, code: "internal",
                                detail: "the server failed to handle this request; the error is in the server log")
            }
            return APIError(domain)
        }
        if let decoding = underlying as? DecodingError { return Self.problem(decoding) }
        if let fault = ServiceFault(underlying) {
            if fault != .unstorableValue {
                logger.warning("operation failed", metadata: ["operation": "\(operationID)", "error": "\(String(reflecting: underlying))"])
            }
            let code = switch fault {
            case .databaseUnavailable: "database_unavailable"
            case .blobStoreUnavailable: "storage_unavailable"
            case .storageFull: "storage_full"
            case .unstorableValue: "invalid_value"
            }
            return APIError(status: fault.status, code: code, detail: fault.message)
        }
        if let status, (400..<500).contains(status.code) {
            let detail = (cause.map { $0 == "Unknown" ? nil : $0 } ?? nil) ?? "the request is malformed"
            return APIError(status: status, code: status == .unsupportedMediaType ? "unsupported_media_type" : "bad_request",
                            detail: detail)
        }
        logger.error("operation failed", metadata: ["operation": "\(operationID)", "error": "\(String(reflecting: underlying))"])
        return APIError(status: .internalServerError, code: "internal",
                        detail: "the server failed to handle this request; the error is in the server log")
    }

    /// Names the field a JSON body got wrong, as a dotted path.
    static func problem(_ error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> String {
            let parts = codingPath.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }
            let joined = parts.reduce("") { acc, part in
                part.hasPrefix("[") || acc.isEmpty ? acc + part : acc + "." + part
            }
            return joined.isEmpty ? "body" : joined
        }
        switch error {
        case .typeMismatch(let type, let context):
            return .invalidField(path(context.codingPath), "has the wrong type (expected \(Self.jsonType(type)))")
        case .valueNotFound(let type, let context):
            return .invalidField(path(context.codingPath), "must not be null (expected \(Self.jsonType(type)))")
        case .keyNotFound(let key, let context):
            return .invalidField(path(context.codingPath + [key]), "is required")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return APIError(status: .badRequest, code: "malformed_json", detail: "the body is not valid JSON")
            }
            let description = context.debugDescription
            if description.contains("Unknown keys") || description.contains("additional") {
                return .invalidField(path(context.codingPath), "has unknown properties: \(description)")
            }
            if description.contains("Cannot initialize") {
                return .invalidField(path(context.codingPath), "has a value that is not one of the allowed values")
            }
            return .invalidField(path(context.codingPath), description)
        @unknown default:
            return APIError(status: .badRequest, code: "malformed_json", detail: "the body could not be decoded")
        }
    }

    static func jsonType(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "a boolean"
        case is Date.Type: "an RFC 3339 date-time string"
        default:
            String(describing: type).contains("Array") ? "an array" : "an object"
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// The same answer for routes outside the generated handlers.
    static func hummingbirdResponse(_ error: APIError, path: String?) -> Response {
        let (head, _) = response(error, path: path)
        return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: ByteBuffer(bytes: problemBody(error, path: path))))
    }

    static func problemBody(_ error: APIError, path: String?) -> Data {
        let problem = Components.Schemas.Problem(
            _type: "urn:drydock:problem:\(error.code)",
            title: error.status.reasonPhrase,
            status: error.status.code,
            code: error.code,
            detail: error.detail,
            instance: path.map { String($0.split(separator: "?", maxSplits: 1).first ?? "") },
            errors: error.fieldErrors.isEmpty ? nil : error.fieldErrors.map { .init(field: $0.field, message: $0.message) })
        return (try? encoder.encode(problem)) ?? Data()
    }

    static func response(_ error: APIError, path: String?) -> (HTTPResponse, HTTPBody?) {
        let data = problemBody(error, path: path)
        var fields = HTTPFields()
        fields[.contentType] = "application/problem+json"
        if error.status == .unauthorized {
            fields[.wwwAuthenticate] = #"Bearer realm="drydock""#
        }
        if error.status == .serviceUnavailable {
            fields[.retryAfter] = "\(ServiceFault.retryAfterSeconds)"
        }
        return (HTTPResponse(status: error.status, headerFields: fields), HTTPBody(data))
    }
}

/// Limits request bodies before anything decodes them: over the limit is 413, without reading
/// the whole body first.
/// Holds requests to the contract before the generated code sees them: JSON bodies over the limit
/// are refused (413), and query parameters and JSON bodies are checked against `openapi.yaml`'s
/// rules by `Contract`, naming the parameter or field at fault.
struct BodyLimitMiddleware: ServerMiddleware {
    let maxBodyBytes: Int
    let contract: Contract?
    static let streamed: Set<String> = ["uploadBuildContext"]

    func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        if let contract, let path = request.path, let mark = path.firstIndex(of: "?") {
            let items = parseFormURLEncoded(path[path.index(after: mark)...]) ?? []
            if let violation = contract.checkQuery(operation: operationID, items.map { ($0.name, $0.value) }) {
                throw APIError.invalidField(violation.field, violation.message)
            }
        }
        // Build contexts stream to disk with their own limit.
        guard let body, !Self.streamed.contains(operationID) else { return try await next(request, body, metadata) }
        if case .known(let length) = body.length, length > maxBodyBytes {
            throw APIError.payloadTooLarge(limit: maxBodyBytes)
        }
        let bytes: [UInt8]
        do {
            bytes = try await [UInt8](collecting: body, upTo: maxBodyBytes)
        } catch {
            throw APIError.payloadTooLarge(limit: maxBodyBytes)
        }
        if let contract, !bytes.isEmpty, request.headerFields[.contentType].map({ parseMediaType($0) == "application/json" }) ?? false,
           let violation = contract.checkBody(operation: operationID, bytes) {
            throw APIError.invalidField(violation.field, violation.message)
        }
        return try await next(request, bytes.isEmpty ? nil : HTTPBody(bytes), metadata)
    }
}
