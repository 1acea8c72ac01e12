import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Blob uploads: monolithic, chunked and cross-repository mounts; verified against their digest
/// before the blob exists.
extension RegistryRoutes {
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

    func startUpload(_ request: Request, access: RepositoryAccess) async throws -> Response {
        let (name, projectId, repository) = (access.name, access.projectId, access.repository)
        let grant = access.grant
        let query = request.uri.queryParameters
        // Cross-repository mount: only from a repository these credentials can pull.
        if let mount = query.get("mount"), let from = query.get("from") {
            let digest = try Self.digest(mount)
            if let source = RepositoryName(from), try await canPull(grant, name: from, projectId: source.projectId),
               try await blobs.size(of: digest) != nil,
               try await store.mountBlob(projectId: projectId, repository: repository, from: (source.projectId, source.repository), digest: digest)
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

    /// Checks that the upload belongs to this repository (unknown otherwise); returns its size
    /// so far and how long it has been idle.
    @discardableResult
    func session(_ id: String, projectId: String, repository: String) async throws -> (size: Int64, idleSeconds: Double) {
        guard let upload = try await store.upload(id: id), upload.projectId == projectId, upload.repository == repository,
              let size = try await blobs.uploadSize(id: id)
        else { throw RegistryError.uploadUnknown }
        return (size, upload.idleSeconds)
    }

    func patchUpload(_ request: Request, access: RepositoryAccess, id: String) async throws -> Response {
        let (name, projectId, repository) = (access.name, access.projectId, access.repository)
        let (current, idle) = try await session(id, projectId: projectId, repository: repository)
        try await checkChunkOrder(request, name: name, id: id, current: current)
        let size = try await append(request, id: id)
        // Activity keeps a session from expiring; once a minute is precise enough for a 24-hour expiry.
        if idle > 60 { try await store.touchUpload(id: id) }
        return Response(status: .accepted, headers: uploadHeaders(name: name, id: id, size: size))
    }

    /// A chunk (PATCH, or the closing PUT's body) must start where the upload ends: a
    /// `Content-Range` that says otherwise is 416 with the upload's `Range`, malformed is 400.
    func checkChunkOrder(_ request: Request, name: String, id: String, current: Int64) async throws {
        guard let range = request.headers[.contentRange] else { return }
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

    func finishUpload(_ request: Request, access: RepositoryAccess, id: String) async throws -> Response {
        let (name, projectId, repository) = (access.name, access.projectId, access.repository)
        let current = try await session(id, projectId: projectId, repository: repository).size
        try await checkChunkOrder(request, name: name, id: id, current: current)
        guard let raw = request.uri.queryParameters.get("digest") else {
            throw RegistryError.digestInvalid("the closing PUT needs ?digest=")
        }
        return try await complete(request, name: name, projectId: projectId, repository: repository, id: id, digest: try Self.digest(raw))
    }

    /// Appends the request's body, verifies the digest, stores the blob and links it.
    func complete(_ request: Request, name: String, projectId: String, repository: String, id: String, digest: Digest) async throws -> Response {
        let size: Int64
        do {
            size = try await blobs.commit(upload: id, appending: request.body, limit: maxBlobBytes, as: digest)
        } catch BlobStoreError.tooLarge {
            try? await blobs.cancelUpload(id: id)
            try? await store.deleteUpload(id: id)
            throw RegistryError(.contentTooLarge, "SIZE_INVALID", "blob larger than \(maxBlobBytes) bytes")
        } catch BlobStoreError.uploadUnknown {
            throw RegistryError.uploadUnknown
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

    func uploadStatus(access: RepositoryAccess, id: String) async throws -> Response {
        let (name, projectId, repository) = (access.name, access.projectId, access.repository)
        let size = try await session(id, projectId: projectId, repository: repository).size
        return Response(status: .noContent, headers: uploadHeaders(name: name, id: id, size: size))
    }

    func cancelUpload(access: RepositoryAccess, id: String) async throws -> Response {
        let (projectId, repository) = (access.projectId, access.repository)
        try await session(id, projectId: projectId, repository: repository)
        try await blobs.cancelUpload(id: id)
        try await store.deleteUpload(id: id)
        return Response(status: .noContent, headers: [.contentLength: "0"])
    }
}
