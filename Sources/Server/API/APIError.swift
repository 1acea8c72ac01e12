import HTTPTypes

/// An error with everything needed to answer with `application/problem+json`: the API's
/// rendering of a `DomainError`, and what the HTTP layer itself refuses (bodies, media types).
/// `ProblemMiddleware` turns these, domain errors and decoding failures into responses.
public struct APIError: Error, Sendable, Equatable {
    public struct FieldError: Sendable, Equatable {
        public let field: String
        public let message: String
    }

    public let status: HTTPResponse.Status
    public let code: String
    public let detail: String
    public var fieldErrors: [FieldError] = []

    public static func invalidField(_ field: String, _ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalid_field", detail: "\(field): \(message)",
                 fieldErrors: [.init(field: field, message: message)])
    }

    public static func badRequest(_ detail: String, code: String = "bad_request") -> APIError {
        APIError(status: .badRequest, code: code, detail: detail)
    }

    public static let unauthenticated = APIError(
        status: .unauthorized, code: "unauthenticated",
        detail: "this request needs a Drydock token: send 'Authorization: Bearer <token>' (drydock login, or DRYDOCK_TOKEN)")

    public static let invalidToken = APIError(
        status: .unauthorized, code: "invalid_token",
        detail: "the token is unknown, revoked or expired; create a new one with 'drydock tokens create'")

    public static func forbidden(_ detail: String) -> APIError {
        APIError(status: .forbidden, code: "forbidden", detail: detail)
    }

    public static func notFound(_ what: String, _ id: String) -> APIError {
        APIError(status: .notFound, code: "not_found", detail: "\(what) '\(id)' does not exist or is not visible to this token")
    }

    public static func conflict(_ detail: String) -> APIError {
        APIError(status: .conflict, code: "conflict", detail: detail)
    }

    public static func payloadTooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, code: "payload_too_large",
                 detail: "the request body is larger than \(limit) bytes")
    }
}

extension APIError {
    /// The one mapping from the domain's errors to HTTP statuses.
    public init(_ error: DomainError) {
        let status: HTTPResponse.Status = switch error.kind {
        case .invalid: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .limit: .paymentRequired
        case .internal: .internalServerError
        }
        self.init(status: status, code: error.code, detail: error.message,
                  fieldErrors: error.field.map { [FieldError(field: $0, message: String(error.message.dropFirst($0.count + 2)))] } ?? [])
    }
}

extension HTTPResponse.Status {
    /// 402: a usage cap or plan limit (HTTPTypes has no name for it).
    static let paymentRequired = HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required")
}
