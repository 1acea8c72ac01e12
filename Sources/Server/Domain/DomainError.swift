/// What went wrong, in the domain's words: a kind (what a client can do about it), a stable
/// code, a message naming what the user gave, and the cause when another error led to it.
/// Stores, repositories, the authenticator and validation throw these; the API renders them as
/// problem+json (`APIError.init(_:)`), the registry as OCI errors, and the operator commands as
/// one line.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The input is wrong (400); `field` names it when there is one.
        case invalid
        /// No credentials were presented, or they are unknown, revoked or expired (401).
        case unauthenticated
        /// The credentials do not allow it (403).
        case forbidden
        /// It does not exist, or the caller may not know that it does (404).
        case notFound
        /// It clashes with what exists (409).
        case conflict
        /// A usage cap or the plan refuses it (402).
        case limit
        /// An invariant of the server broke (500).
        case `internal`
    }

    public let kind: Kind
    public let code: String
    public let message: String
    public var field: String?
    public var cause: String?

    public init(_ kind: Kind, code: String, _ message: String, field: String? = nil, cause: (any Error)? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field
        self.cause = cause.map { String(describing: $0) }
    }

    public var description: String { message }

    public static func invalidField(_ field: String, _ message: String) -> DomainError {
        DomainError(.invalid, code: "invalid_field", "\(field): \(message)", field: field)
    }

    public static func badRequest(_ message: String, code: String = "bad_request") -> DomainError {
        DomainError(.invalid, code: code, message)
    }

    public static let unauthenticated = DomainError(
        .unauthenticated, code: "unauthenticated",
        "this request needs a Drydock token: send 'Authorization: Bearer <token>' (drydock login, or DRYDOCK_TOKEN)")

    public static let invalidToken = DomainError(
        .unauthenticated, code: "invalid_token", "the token is unknown, revoked or expired; create a new one with 'drydock tokens create'")

    public static func forbidden(_ message: String) -> DomainError { DomainError(.forbidden, code: "forbidden", message) }

    public static func notFound(_ what: String, _ id: String) -> DomainError {
        DomainError(.notFound, code: "not_found", "\(what) '\(id)' does not exist or is not visible to this token")
    }

    public static func conflict(_ message: String) -> DomainError { DomainError(.conflict, code: "conflict", message) }

    public static func limit(_ code: String, _ message: String) -> DomainError { DomainError(.limit, code: code, message) }

    public static func `internal`(_ message: String) -> DomainError { DomainError(.internal, code: "internal", message) }
}
