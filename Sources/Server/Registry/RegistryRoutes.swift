import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The OCI Distribution API under `/v2/`, namespaced by project: `<project-id>/<name>`.
struct RegistryRoutes: Sendable {
    let store: RegistryStore
    let blobs: any BlobStore
    let projects: any ProjectStore
    let authenticator: TokenAuthenticator
    let signer: RegistryTokenSigner
    let publicURL: String?
    /// Filesystem blobs sent with `sendfile` (see `ZeroCopyFiles`); off only to measure the difference.
    var zeroCopy = true
    let fileIO = FileIO()
    /// Largest blob accepted, and largest manifest (as distribution's 4 MiB).
    let maxBlobBytes: Int64 = 64 << 30
    let maxManifestBytes = 4 << 20

    static let service = "drydock"

    /// Routes `/v2` on a group whose context carries the caller: `RegistryErrorMiddleware` puts
    /// every failure in the OCI format, `RegistryAuthMiddleware` resolves the credentials once,
    /// and the routes authorise what they address.
    func register(on router: Router<BasicRequestContext>) {
        let v2 = router.group("/v2", context: RegistryRequestContext.self)
            .add(middleware: RegistryErrorMiddleware())
            .add(middleware: RegistryAuthMiddleware(authenticator: authenticator, signer: signer))
        let apiVersion: HTTPFields = [HTTPField.Name("Docker-Distribution-API-Version")!: "registry/2.0", .contentType: "application/json"]
        // Hummingbird matches "/v2/" to this route too.
        v2.get { request, context -> Response in
            _ = try self.requireGrant(request, context, scope: nil)
            return Response(status: .ok, headers: apiVersion, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        v2.get("token") { request, context in try await self.token(request, context: context, form: nil) }
        v2.post("token") { request, context in
            let body = try await request.body.collect(upTo: 64 * 1024)
            return try await self.token(request, context: context, form: String(decoding: body.readableBytesView, as: UTF8.self))
        }
        for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] {
            v2.on("**", method: method) { request, context in try await self.dispatch(request, context: context) }
        }
    }

    static func digest(_ raw: String) throws -> Digest {
        guard let digest = Digest(raw) else { throw RegistryError.digestInvalid("invalid digest '\(raw)': use sha256:<64 hex> or sha512:<128 hex>") }
        return digest
    }

    /// The route table: what each method does on each endpoint, and the action it needs.
    func dispatch(_ request: Request, context: RegistryRequestContext) async throws -> Response {
        guard let endpoint = RegistryEndpoint(path: request.uri.path) else {
            throw RegistryError(.notFound, "NAME_UNKNOWN", "no such registry endpoint: \(request.uri.path)")
        }
        func access(_ name: String, _ action: RegistryAction) async throws -> RepositoryAccess {
            try await authorize(request, context, name: name, action: action)
        }
        switch (endpoint, request.method) {
        case (.catalog, .get):
            return try await catalog(request, context: context)
        case (.blob(let name, let digest), .get), (.blob(let name, let digest), .head):
            return try await getBlob(request, context: context, access: access(name, .pull), digest: digest)
        case (.blob(let name, let digest), .delete):
            return try await deleteBlob(access: access(name, .delete), digest: digest)
        case (.uploads(let name), .post):
            return try await startUpload(request, access: access(name, .push))
        case (.upload(let name, let id), .patch):
            return try await patchUpload(request, access: access(name, .push), id: id)
        case (.upload(let name, let id), .put):
            return try await finishUpload(request, access: access(name, .push), id: id)
        case (.upload(let name, let id), .get):
            return try await uploadStatus(access: access(name, .push), id: id)
        case (.upload(let name, let id), .delete):
            return try await cancelUpload(access: access(name, .push), id: id)
        case (.manifest(let name, let reference), .get), (.manifest(let name, let reference), .head):
            return try await getManifest(request, access: access(name, .pull), reference: reference)
        case (.manifest(let name, let reference), .put):
            return try await putManifest(request, access: access(name, .push), reference: reference)
        case (.manifest(let name, let reference), .delete):
            return try await deleteManifest(access: access(name, .delete), reference: reference)
        case (.tags(let name), .get):
            return try await listTags(request, access: access(name, .pull))
        case (.referrers(let name, let digest), .get):
            return try await referrers(request, access: access(name, .pull), digest: digest)
        default:
            throw RegistryError.unsupported("\(request.method) is not supported on \(request.uri.path)")
        }
    }
}

/// Every registry answer, good or bad, is in the OCI format: known failures map to their
/// status, anything else is logged and answered 500 without internals.
struct RegistryErrorMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RegistryError {
            throw error
        } catch let error as HTTPError {
            throw error
        } catch let error as DomainError where error.kind != .internal {
            // The one mapping from domain errors to the registry's error format.
            switch error.kind {
            case .invalid: throw RegistryError(.badRequest, "UNSUPPORTED", error.message)
            case .unauthenticated: throw RegistryError(.unauthorized, "UNAUTHORIZED", error.message)
            case .forbidden, .limit: throw RegistryError.denied(error.message)
            case .notFound: throw RegistryError(.notFound, "NAME_UNKNOWN", error.message)
            case .conflict: throw RegistryError(.conflict, "UNSUPPORTED", error.message)
            case .internal: throw RegistryError.unknown(error.message)
            }
        } catch {
            if let fault = ServiceFault(error) {
                if fault != .unstorableValue {
                    context.logger.warning("registry request failed", metadata: [
                        "path": "\(request.uri.path)", "method": "\(request.method)", "error": "\(String(reflecting: error))",
                    ])
                }
                let code = switch fault {
                case .databaseUnavailable, .blobStoreUnavailable: "UNAVAILABLE"
                case .storageFull: "UNKNOWN"  // the spec has no code for it; the status and message say it
                case .unstorableValue: "UNSUPPORTED"
                }
                throw RegistryError(fault.status, code, fault.message, headers: fault.headers)
            }
            context.logger.error("registry request failed", metadata: [
                "path": "\(request.uri.path)", "method": "\(request.method)", "error": "\(String(reflecting: error))",
            ])
            throw RegistryError.unknown("the registry failed to handle this request; the error is in the server log")
        }
    }
}
