import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// The OCI Distribution API under `/v2/`, namespaced by project: `<project-id>/<name>`.
struct RegistryRoutes: Sendable {
    let store: RegistryStore
    let blobs: any BlobStore
    let projects: any ProjectRepository
    let authenticator: TokenAuthenticator
    let signer: RegistryTokenSigner
    let publicURL: String?
    let fileIO = FileIO()
    /// Largest blob accepted, and largest manifest (as distribution's 4 MiB).
    let maxBlobBytes: Int64 = 64 << 30
    let maxManifestBytes = 4 << 20

    static let service = "drydock"

    func register(on router: Router<BasicRequestContext>) {
        let apiVersion: HTTPFields = [HTTPField.Name("Docker-Distribution-API-Version")!: "registry/2.0", .contentType: "application/json"]
        // Hummingbird matches "/v2/" to this route too.
        router.get("/v2") { request, context -> Response in
            try await self.guarded(request, context) {
                _ = try await self.authenticate(request, scope: nil)
                return Response(status: .ok, headers: apiVersion, body: .init(byteBuffer: ByteBuffer(string: "{}")))
            }
        }
        router.get("/v2/token") { request, context in
            try await self.guarded(request, context) { try await self.token(request, form: nil) }
        }
        router.post("/v2/token") { request, context in
            try await self.guarded(request, context) {
                let body = try await request.body.collect(upTo: 64 * 1024)
                return try await self.token(request, form: String(decoding: body.readableBytesView, as: UTF8.self))
            }
        }
        for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] {
            router.on("/v2/**", method: method) { request, context in
                try await self.guarded(request, context) { try await self.dispatch(request, context: context) }
            }
        }
    }

    /// Every registry answer, good or bad, is in the OCI format: known failures map to their
    /// status, anything else is logged and answered 500 without internals.
    func guarded(_ request: Request, _ context: BasicRequestContext, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as RegistryError {
            throw error
        } catch let error as HTTPError {
            throw error
        } catch {
            if let fault = ServiceFault(error) {
                if fault != .unstorableValue {
                    context.logger.warning("registry request failed", metadata: [
                        "path": "\(request.uri.path)", "method": "\(request.method)", "error": "\(String(reflecting: error))",
                    ])
                }
                let code = switch fault {
                case .databaseUnavailable: "UNAVAILABLE"
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

    // MARK: routing

    enum Endpoint {
        case catalog
        case blob(name: String, digest: String)
        case uploads(name: String)
        case upload(name: String, id: String)
        case manifest(name: String, reference: String)
        case tags(name: String)
        case referrers(name: String, digest: String)
    }

    static func parse(_ path: String) -> Endpoint? {
        guard path.hasPrefix("/v2/") else { return nil }
        let rest = String(path.dropFirst(4))
        if rest == "_catalog" { return .catalog }
        var parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.last == "" { parts.removeLast() }
        let n = parts.count
        func name(dropping count: Int) -> String? {
            n > count ? parts[0..<(n - count)].joined(separator: "/") : nil
        }
        if n >= 3, parts[n - 2] == "blobs", parts[n - 1] == "uploads", let name = name(dropping: 2) { return .uploads(name: name) }
        if n >= 4, parts[n - 3] == "blobs", parts[n - 2] == "uploads", let name = name(dropping: 3) { return .upload(name: name, id: parts[n - 1]) }
        if n >= 3, parts[n - 2] == "blobs", let name = name(dropping: 2) { return .blob(name: name, digest: parts[n - 1]) }
        if n >= 3, parts[n - 2] == "manifests", let name = name(dropping: 2) { return .manifest(name: name, reference: parts[n - 1]) }
        if n >= 3, parts[n - 2] == "tags", parts[n - 1] == "list", let name = name(dropping: 2) { return .tags(name: name) }
        if n >= 3, parts[n - 2] == "referrers", let name = name(dropping: 2) { return .referrers(name: name, digest: parts[n - 1]) }
        return nil
    }

    /// Splits `<project-id>/<name>` and checks the spec's name grammar.
    static func split(_ name: String) throws -> (projectId: String, repository: String) {
        guard let parsed = RepositoryName(name) else { throw RegistryError.nameInvalid(name) }
        return (parsed.projectId, parsed.repository)
    }

    func dispatch(_ request: Request, context: BasicRequestContext) async throws -> Response {
        guard let endpoint = Self.parse(request.uri.path) else {
            throw RegistryError(.notFound, "NAME_UNKNOWN", "no such registry endpoint: \(request.uri.path)")
        }
        switch (endpoint, request.method) {
        case (.catalog, .get):
            return try await catalog(request)
        case (.blob(let name, let digest), .get), (.blob(let name, let digest), .head):
            return try await getBlob(request, context: context, name: name, digest: digest)
        case (.blob(let name, let digest), .delete):
            return try await deleteBlob(request, name: name, digest: digest)
        case (.uploads(let name), .post):
            return try await startUpload(request, name: name)
        case (.upload(let name, let id), .patch):
            return try await patchUpload(request, name: name, id: id)
        case (.upload(let name, let id), .put):
            return try await finishUpload(request, name: name, id: id)
        case (.upload(let name, let id), .get):
            return try await uploadStatus(request, name: name, id: id)
        case (.upload(let name, let id), .delete):
            return try await cancelUpload(request, name: name, id: id)
        case (.manifest(let name, let reference), .get), (.manifest(let name, let reference), .head):
            return try await getManifest(request, name: name, reference: reference)
        case (.manifest(let name, let reference), .put):
            return try await putManifest(request, name: name, reference: reference)
        case (.manifest(let name, let reference), .delete):
            return try await deleteManifest(request, name: name, reference: reference)
        case (.tags(let name), .get):
            return try await listTags(request, name: name)
        case (.referrers(let name, let digest), .get):
            return try await referrers(request, name: name, digest: digest)
        default:
            throw RegistryError.unsupported("\(request.method) is not supported on \(request.uri.path)")
        }
    }

    // MARK: authentication

    func challenge(_ request: Request, scope: String?, error: String? = nil) -> HTTPFields {
        let base = publicURL ?? "http://\(request.head.authority ?? "127.0.0.1")"
        var value = #"Bearer realm="\#(base)/v2/token",service="\#(Self.service)""#
        if let scope { value += #",scope="\#(scope)""# }
        if let error { value += #",error="\#(error)""# }
        return [.wwwAuthenticate: value]
    }

    /// Resolves Basic (token as password) or Bearer (registry token, or a Drydock token) credentials.
    func authenticate(_ request: Request, scope: String?) async throws -> RegistryGrant {
        guard let header = request.headers[.authorization], let (scheme, value) = parseAuthorization(header) else {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "authentication required", headers: challenge(request, scope: scope))
        }
        do {
            if scheme == "basic" {
                guard let (_, password) = parseBasicCredentials(value) else { throw APIError.invalidToken }
                let caller = try await authenticator.authenticate(secret: password)
                return RegistryGrant(caller: caller, access: nil, catalog: true)
            }
            if scheme == "bearer" {
                if value.hasPrefix("ddreg.") {
                    guard let grant = signer.verify(value), try await authenticator.stillActive(tokenId: grant.caller.tokenId)
                    else { throw APIError.invalidToken }
                    return grant
                }
                let caller = try await authenticator.authenticate(secret: value)
                return RegistryGrant(caller: caller, access: nil, catalog: true)
            }
            throw APIError.invalidToken
        } catch let error as APIError where error.status == .unauthorized {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "invalid credentials: \(error.detail)", headers: challenge(request, scope: scope))
        } catch let error as APIError {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", error.detail, headers: challenge(request, scope: scope))
        }
    }

    /// Whether the caller may see the project at all; anything else looks like a missing repository.
    func visibleProject(_ caller: Caller, _ projectId: String) async throws -> Bool {
        guard let project = try await projects.project(id: projectId) else { return false }
        return caller.canSee(project: project)
    }

    /// Authenticates and authorises one action on one repository.
    @discardableResult
    func authorize(_ request: Request, name: String, action: RegistryAction) async throws -> (String, String, RegistryGrant) {
        let (projectId, repository) = try Self.split(name)
        // Challenges ask for pull and push together: clients that keep one token per repository
        // (oras) then hold a token good for a whole push; the token endpoint still grants only
        // what the credential may do.
        let scope = "repository:\(name):\(action == .delete ? "delete" : "pull,push")"
        let grant = try await authenticate(request, scope: scope)
        let allowed: Bool
        if let access = grant.access {
            allowed = access[name]?.contains(action.rawValue) ?? false
        } else {
            allowed = grant.caller.registryActions.contains(action)
        }
        guard try await visibleProject(grant.caller, projectId) else {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "repository \(name) does not exist or is not visible to these credentials",
                                headers: challenge(request, scope: scope, error: "insufficient_scope"))
        }
        guard allowed else {
            if grant.access != nil, grant.caller.registryActions.contains(action) {
                // The bearer token lacks this scope but the credential has it. 403 with a challenge
                // makes clients that cache one token (oras) fetch a new one for this scope.
                throw RegistryError(.forbidden, "DENIED", "token lacks scope \(scope); request a token for it",
                                    headers: challenge(request, scope: scope, error: "insufficient_scope"))
            }
            throw RegistryError.denied("a \(grant.caller.kind.rawValue) token may not \(action.rawValue) \(name)")
        }
        return (projectId, repository, grant)
    }

    /// The docker token endpoint: grants the intersection of the scopes asked for and what the
    /// credential may do. GET with Basic auth, or the OAuth2 POST form (password grant).
    func token(_ request: Request, form: String?) async throws -> Response {
        var scopes: [String] = []
        var formFields: [String: String] = [:]
        if let form {
            guard let pairs = parseFormURLEncoded(form) else {
                throw RegistryError(.badRequest, "UNSUPPORTED", "the token request's form is malformed (a bad percent escape, a NUL byte or invalid UTF-8)")
            }
            for (key, value) in pairs {
                if key == "scope" { scopes += value.split(separator: " ").map(String.init) } else { formFields[key] = value }
            }
        }
        for item in request.uri.queryParameters.getAll("scope") { scopes += item.split(separator: " ").map(String.init) }

        let caller: Caller
        do {
            if let password = formFields["password"] ?? formFields["refresh_token"] {
                caller = try await authenticator.authenticate(secret: password)
            } else {
                let grant = try await authenticate(request, scope: nil)
                guard grant.access == nil else { throw APIError.invalidToken }
                caller = grant.caller
            }
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "invalid credentials", headers: challenge(request, scope: nil))
        }

        var access: [String: Set<String>] = [:]
        var catalog = false
        for scope in scopes.compactMap(RegistryScope.init) {
            let name = scope.name
            if scope.type == "registry", name == "catalog" {
                catalog = true
                continue
            }
            guard scope.type == "repository", let repository = RepositoryName(name),
                  try await visibleProject(caller, repository.projectId)
            else { continue }
            var granted = Set<String>()
            for action in scope.actions {
                let wanted = action == "*" ? ["pull", "push", "delete"] : [action]
                for name in wanted {
                    if let action = RegistryAction(rawValue: name), caller.registryActions.contains(action) { granted.insert(name) }
                }
            }
            if !granted.isEmpty { access[name, default: []].formUnion(granted) }
        }
        let (token, expiresIn) = try signer.issue(caller: caller, access: access, catalog: catalog)
        struct Answer: Encodable {
            let token: String
            let access_token: String
            let expires_in: Int
            let issued_at: String
            let refresh_token: String?
        }
        let answer = Answer(token: token, access_token: token, expires_in: expiresIn,
                            issued_at: ISO8601DateFormatter().string(from: Date()),
                            refresh_token: form != nil && formFields["grant_type"] == "password" ? formFields["password"] : nil)
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(answer))))
    }

    // MARK: blobs

    static func digest(_ raw: String) throws -> Digest {
        guard let digest = Digest(raw) else { throw RegistryError.digestInvalid("invalid digest '\(raw)': use sha256:<64 hex> or sha512:<128 hex>") }
        return digest
    }

    func getBlob(_ request: Request, context: BasicRequestContext, name: String, digest raw: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .pull)
        let digest = try Self.digest(raw)
        guard let size = try await store.linkedBlobSize(projectId: projectId, repository: repository, digest: digest),
              let path = blobs.path(of: digest), try await blobs.size(of: digest) != nil
        else { throw RegistryError.blobUnknown(digest.description) }
        var headers: HTTPFields = [
            .contentType: "application/octet-stream",
            HTTPField.Name("Docker-Content-Digest")!: digest.description,
            .acceptRanges: "bytes",
            .eTag: "\"\(digest)\"",
        ]
        var status = HTTPResponse.Status.ok
        var range = 0...Int(max(size - 1, 0))
        if let header = request.headers[.range], size > 0 {
            guard let requested = parseByteRange(header, size: Int(size)) else {
                throw RegistryError(.rangeNotSatisfiable, "BLOB_UNKNOWN", "range \(header) not satisfiable for \(size) bytes",
                                    headers: [.contentRange: "bytes */\(size)"])
            }
            range = requested
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
        }
        let length = size == 0 ? 0 : range.count
        headers[.contentLength] = "\(length)"
        if request.method == .head || size == 0 {
            return Response(status: status, headers: headers, body: .init())
        }
        let body = try await fileIO.loadFile(path: path, range: range, context: context, chunkLength: 1 << 20)
        return Response(status: status, headers: headers, body: body)
    }

    func deleteBlob(_ request: Request, name: String, digest raw: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .delete)
        let digest = try Self.digest(raw)
        guard try await store.unlinkBlob(projectId: projectId, repository: repository, digest: digest) else {
            throw RegistryError.blobUnknown(digest.description)
        }
        return Response(status: .accepted, headers: [.contentLength: "0"])
    }

    // MARK: uploads

    func uploadHeaders(name: String, id: String, size: Int64) -> HTTPFields {
        [
            .location: "/v2/\(name)/blobs/uploads/\(id)",
            .range: "0-\(max(size - 1, 0))",
            HTTPField.Name("Docker-Upload-UUID")!: id,
            .contentLength: "0",
        ]
    }

    func blobCreated(name: String, digest: Digest) -> Response {
        Response(status: .created, headers: [
            .location: "/v2/\(name)/blobs/\(digest)",
            HTTPField.Name("Docker-Content-Digest")!: digest.description,
            .contentLength: "0",
        ])
    }

    func startUpload(_ request: Request, name: String) async throws -> Response {
        let (projectId, repository, grant) = try await authorize(request, name: name, action: .push)
        let query = request.uri.queryParameters
        // Cross-repository mount: only from a repository these credentials can pull.
        if let mount = query.get("mount"), let from = query.get("from") {
            let digest = try Self.digest(mount)
            if let (fromProject, fromRepository) = try? Self.split(from), try await canPull(grant, name: from, projectId: fromProject),
               try await blobs.size(of: digest) != nil,
               try await store.mountBlob(projectId: projectId, repository: repository, from: (fromProject, fromRepository), digest: digest)
            {
                return blobCreated(name: name, digest: digest)
            }
        }
        let id = UUID().uuidString.lowercased()
        try await blobs.createUpload(id: id)
        try await store.createUpload(id: id, projectId: projectId, repository: repository)
        if let raw = query.get("digest") {
            // Monolithic upload in a single POST.
            let digest = try Self.digest(raw)
            return try await complete(request, name: name, projectId: projectId, repository: repository, id: id, digest: digest)
        }
        return Response(status: .accepted, headers: uploadHeaders(name: name, id: id, size: 0))
    }

    func canPull(_ grant: RegistryGrant, name: String, projectId: String) async throws -> Bool {
        let allowed = grant.access.map { $0[name]?.contains("pull") ?? false } ?? grant.caller.registryActions.contains(.pull)
        guard allowed else { return false }
        return try await visibleProject(grant.caller, projectId)
    }

    /// Checks that the upload belongs to this repository (unknown otherwise); returns its size
    /// so far and how long it has been idle.
    @discardableResult
    func session(_ id: String, projectId: String, repository: String) async throws -> (size: Int64, idleSeconds: Double) {
        guard let upload = try await store.upload(id: id), upload.projectId == projectId, upload.repository == repository,
              let size = try await blobs.uploadSize(id: id)
        else { throw RegistryError.uploadUnknown }
        return (size, upload.idleSeconds)
    }

    func patchUpload(_ request: Request, name: String, id: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .push)
        let (current, idle) = try await session(id, projectId: projectId, repository: repository)
        if let range = request.headers[.contentRange] {
            guard let start = parseContentRangeStart(range) else {
                for try await _ in request.body {}
                throw RegistryError(.badRequest, "BLOB_UPLOAD_INVALID",
                                    "malformed Content-Range '\(range)': send '<start>-<end>' with the chunk's first and last byte offsets",
                                    headers: uploadHeaders(name: name, id: id, size: current))
            }
            guard start == current else {
                // Read the refused chunk so the connection stays usable for the next request.
                for try await _ in request.body {}
                throw RegistryError(.rangeNotSatisfiable, "BLOB_UPLOAD_INVALID",
                                    "chunk starts at \(range) but the upload has \(current) bytes; send chunks in order",
                                    headers: uploadHeaders(name: name, id: id, size: current))
            }
        }
        let size = try await append(request, id: id)
        // Activity keeps a session from expiring; once a minute is precise enough for a 24-hour expiry.
        if idle > 60 { try await store.touchUpload(id: id) }
        return Response(status: .accepted, headers: uploadHeaders(name: name, id: id, size: size))
    }

    func append(_ request: Request, id: String) async throws -> Int64 {
        do {
            return try await blobs.append(to: id, request.body, limit: maxBlobBytes)
        } catch BlobStoreError.tooLarge {
            throw RegistryError(.contentTooLarge, "SIZE_INVALID", "blob larger than \(maxBlobBytes) bytes")
        } catch BlobStoreError.uploadUnknown {
            throw RegistryError.uploadUnknown
        } catch BlobStoreError.storageFull {
            // A partial upload on a full disk only keeps it full: drop it and its session now.
            try? await blobs.cancelUpload(id: id)
            try? await store.deleteUpload(id: id)
            throw BlobStoreError.storageFull
        }
    }

    func finishUpload(_ request: Request, name: String, id: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .push)
        try await session(id, projectId: projectId, repository: repository)
        guard let raw = request.uri.queryParameters.get("digest") else {
            throw RegistryError.digestInvalid("the closing PUT needs ?digest=")
        }
        return try await complete(request, name: name, projectId: projectId, repository: repository, id: id, digest: try Self.digest(raw))
    }

    /// Appends the request's body, verifies the digest, stores the blob and links it.
    func complete(_ request: Request, name: String, projectId: String, repository: String, id: String, digest: Digest) async throws -> Response {
        _ = try await append(request, id: id)
        let size: Int64
        do {
            size = try await blobs.commit(upload: id, as: digest)
        } catch BlobStoreError.digestMismatch(let actual) {
            try await store.deleteUpload(id: id)
            throw RegistryError.digestInvalid("the uploaded content has digest \(actual), not \(digest)")
        } catch BlobStoreError.storageFull {
            try? await blobs.cancelUpload(id: id)
            try? await store.deleteUpload(id: id)
            throw BlobStoreError.storageFull
        }
        try await store.linkBlob(projectId: projectId, repository: repository, digest: digest, size: size, closingUpload: id) {
            try await blobs.size(of: digest) != nil
        }
        return blobCreated(name: name, digest: digest)
    }

    func uploadStatus(_ request: Request, name: String, id: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .push)
        let size = try await session(id, projectId: projectId, repository: repository).size
        return Response(status: .noContent, headers: uploadHeaders(name: name, id: id, size: size))
    }

    func cancelUpload(_ request: Request, name: String, id: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .push)
        try await session(id, projectId: projectId, repository: repository)
        try await blobs.cancelUpload(id: id)
        try await store.deleteUpload(id: id)
        return Response(status: .noContent, headers: [.contentLength: "0"])
    }

    // MARK: manifests

    func getManifest(_ request: Request, name: String, reference: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .pull)
        guard let manifest = try await store.manifest(projectId: projectId, repository: repository, reference: reference) else {
            throw RegistryError.manifestUnknown(reference)
        }
        let headers: HTTPFields = [
            .contentType: manifest.mediaType,
            HTTPField.Name("Docker-Content-Digest")!: manifest.digest,
            .contentLength: "\(manifest.content.count)",
            .eTag: "\"\(manifest.digest)\"",
        ]
        if request.method == .head { return Response(status: .ok, headers: headers, body: .init()) }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: manifest.content)))
    }

    func putManifest(_ request: Request, name: String, reference: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .push)
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxManifestBytes)
        } catch {
            throw RegistryError(.contentTooLarge, "SIZE_INVALID", "manifests are limited to \(maxManifestBytes) bytes")
        }
        let content = Array(buffer: body)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(content))) as? [String: Any] else {
            throw RegistryError.manifestInvalid("the manifest is not a JSON object")
        }
        let referenceDigest = Digest(reference)
        let digest = Digest.of(content, algorithm: referenceDigest?.algorithm ?? .sha256)
        if let referenceDigest, referenceDigest != digest {
            throw RegistryError.digestInvalid("the manifest's digest is \(digest), not \(referenceDigest)")
        }
        var tag: String? = referenceDigest == nil ? reference : nil
        if let tag, !isValidTag(tag) {
            throw RegistryError(.badRequest, "TAG_INVALID", "invalid tag '\(tag)'")
        }
        if tag == nil, let queryTag = request.uri.queryParameters.get("tag") {
            guard isValidTag(queryTag) else {
                throw RegistryError(.badRequest, "TAG_INVALID", "invalid tag '\(queryTag)'")
            }
            tag = queryTag
        }
        let declared = object["mediaType"] as? String
        let mediaType: String
        if let header = request.headers[.contentType] {
            guard let parsed = parseMediaType(header) else {
                throw RegistryError.manifestInvalid("malformed Content-Type '\(header)': send the manifest's media type, such as application/vnd.oci.image.manifest.v1+json")
            }
            mediaType = parsed
        } else {
            mediaType = declared ?? "application/vnd.oci.image.manifest.v1+json"
        }
        func digests(_ key: String) -> [String] {
            ((object[key] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }
        }
        let config = (object["config"] as? [String: Any])?["digest"] as? String
        let blobsReferenced = (config.map { [$0] } ?? []) + digests("layers") + digests("blobs")
        let manifestsReferenced = digests("manifests")
        for reference in blobsReferenced + manifestsReferenced where Digest(reference) == nil {
            throw RegistryError.manifestInvalid("invalid digest '\(reference)' in manifest")
        }
        let subject = (object["subject"] as? [String: Any])?["digest"] as? String
        let artifactType = object["artifactType"] as? String
            ?? ((object["config"] as? [String: Any])?["mediaType"] as? String).flatMap {
                $0 == "application/vnd.oci.image.config.v1+json" || $0.contains("docker") ? nil : $0
            }
        try await store.putManifest(ManifestPut(
            projectId: projectId, repository: repository, digest: digest, mediaType: mediaType, content: content,
            subject: subject, artifactType: artifactType, tag: tag, blobs: Array(Set(blobsReferenced)),
            manifests: Array(Set(manifestsReferenced))))
        var headers: HTTPFields = [
            .location: "/v2/\(name)/manifests/\(digest)",
            HTTPField.Name("Docker-Content-Digest")!: digest.description,
            .contentLength: "0",
        ]
        if let subject { headers[HTTPField.Name("OCI-Subject")!] = subject }
        return Response(status: .created, headers: headers)
    }

    func deleteManifest(_ request: Request, name: String, reference: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .delete)
        let deleted = if let digest = Digest(reference) {
            try await store.deleteManifest(projectId: projectId, repository: repository, digest: digest)
        } else {
            try await store.deleteTag(projectId: projectId, repository: repository, tag: reference)
        }
        guard deleted else { throw RegistryError.manifestUnknown(reference) }
        return Response(status: .accepted, headers: [.contentLength: "0"])
    }

    // MARK: listing

    static func page(_ request: Request) -> (limit: Int, last: String?) {
        let n = request.uri.queryParameters.get("n").flatMap { parseDecimal($0) } ?? 1000
        return (min(max(n, 0), 1000), request.uri.queryParameters.get("last").map { String($0) })
    }

    static func json(_ value: some Encodable, link: String? = nil, extra: HTTPFields = [:]) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let link { headers[HTTPField.Name("Link")!] = link }
        for field in extra { headers[field.name] = field.value }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(value))))
    }

    func listTags(_ request: Request, name: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .pull)
        let (limit, last) = Self.page(request)
        guard let tags = try await store.tags(projectId: projectId, repository: repository, after: last, limit: limit) else {
            throw RegistryError.nameUnknown(name)
        }
        struct Tags: Encodable { let name: String; let tags: [String] }
        let link = tags.last.flatMap { last in
            tags.count == limit ? "</v2/\(name)/tags/list?n=\(limit)&last=\(last)>; rel=\"next\"" : nil
        }
        return try Self.json(Tags(name: name, tags: tags), link: link)
    }

    func catalog(_ request: Request) async throws -> Response {
        let grant = try await authenticate(request, scope: "registry:catalog:*")
        guard grant.catalog, grant.caller.registryActions.contains(.pull) else {
            throw RegistryError(.unauthorized, "UNAUTHORIZED", "catalog access needs scope registry:catalog:*",
                                headers: challenge(request, scope: "registry:catalog:*", error: "insufficient_scope"))
        }
        let (limit, last) = Self.page(request)
        let names = try await store.catalog(organizationId: grant.caller.organizationId, onlyProjectId: grant.caller.projectId,
                                            after: last, limit: limit)
        struct Catalog: Encodable { let repositories: [String] }
        let link = names.last.flatMap { last in
            names.count == limit ? "</v2/_catalog?n=\(limit)&last=\(last)>; rel=\"next\"" : nil
        }
        return try Self.json(Catalog(repositories: names), link: link)
    }

    func referrers(_ request: Request, name: String, digest raw: String) async throws -> Response {
        let (projectId, repository, _) = try await authorize(request, name: name, action: .pull)
        let subject = try Self.digest(raw)
        let filter = request.uri.queryParameters.get("artifactType").map { String($0) }
        var descriptors: [[String: Any]] = []
        for manifest in try await store.referrers(projectId: projectId, repository: repository, subject: subject) {
            if let filter, manifest.artifactType != filter { continue }
            var descriptor: [String: Any] = ["mediaType": manifest.mediaType, "digest": manifest.digest, "size": manifest.content.count]
            if let artifactType = manifest.artifactType { descriptor["artifactType"] = artifactType }
            if let object = (try? JSONSerialization.jsonObject(with: Data(manifest.content))) as? [String: Any],
               let annotations = object["annotations"] as? [String: Any] { descriptor["annotations"] = annotations }
            descriptors.append(descriptor)
        }
        let index: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descriptors]
        var headers: HTTPFields = [.contentType: "application/vnd.oci.image.index.v1+json"]
        if filter != nil { headers[HTTPField.Name("OCI-Filters-Applied")!] = "artifactType" }
        let data = try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
