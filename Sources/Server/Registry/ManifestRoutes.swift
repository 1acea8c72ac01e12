import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Manifests and indexes, stored byte-exact once everything they reference is in the repository.
extension RegistryRoutes {
    func getManifest(_ request: Request, access: RepositoryAccess, reference: String) async throws -> Response {
        let (projectId, repository) = (access.projectId, access.repository)
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

    func putManifest(_ request: Request, access: RepositoryAccess, reference: String) async throws -> Response {
        let (name, projectId, repository) = (access.name, access.projectId, access.repository)
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxManifestBytes)
        } catch {
            throw RegistryError(.contentTooLarge, "SIZE_INVALID", "manifests are limited to \(maxManifestBytes) bytes")
        }
        let content = Array(buffer: body)
        let document: OCIManifestDocument
        do {
            document = try JSONDecoder().decode(OCIManifestDocument.self, from: Data(content))
        } catch {
            throw RegistryError.manifestInvalid("the manifest is not a well-formed manifest or index (a JSON object whose descriptors have string digests and integer sizes)")
        }
        let referenceDigest = Digest(reference)
        let digest = Digest.of(content, algorithm: referenceDigest?.algorithm ?? .sha256)
        if let referenceDigest, referenceDigest != digest {
            throw RegistryError.digestInvalid("the manifest's digest is \(digest), not \(referenceDigest)")
        }
        var tag: String? = referenceDigest == nil ? reference : nil
        let caller = access.grant.caller
        if caller.isolated, let wanted = tag, wanted != caller.buildTag {
            throw RegistryError.denied("an isolated build pushes only to its own build tag \(access.projectId)/build:\(caller.buildTag ?? "<build id>"), not to :\(wanted)")
        }
        if let tag, !isValidTag(tag) {
            throw RegistryError(.badRequest, "TAG_INVALID", "invalid tag '\(tag)'")
        }
        if tag == nil, let queryTag = request.uri.queryParameters.get("tag") {
            guard isValidTag(queryTag) else {
                throw RegistryError(.badRequest, "TAG_INVALID", "invalid tag '\(queryTag)'")
            }
            tag = queryTag
        }
        let mediaType: String
        if let header = request.headers[.contentType] {
            guard let parsed = parseMediaType(header) else {
                throw RegistryError.manifestInvalid("malformed Content-Type '\(header)': send the manifest's media type, such as application/vnd.oci.image.manifest.v1+json")
            }
            mediaType = parsed
        } else {
            mediaType = document.mediaType ?? "application/vnd.oci.image.manifest.v1+json"
        }
        let blobsReferenced = document.referencedBlobs
        let manifestsReferenced = document.referencedManifests
        for reference in blobsReferenced + manifestsReferenced where Digest(reference) == nil {
            throw RegistryError.manifestInvalid("invalid digest '\(reference)' in manifest")
        }
        let subject = document.subject?.digest
        // An immutable tag (the project's retention policy) never moves to another manifest.
        if let tag, try await store.retention(projectId: projectId).isImmutable(repository: repository, tag: tag),
           let current = try await store.tagDigest(projectId: projectId, repository: repository, tag: tag), current != digest.description {
            throw RegistryError.denied("tag '\(tag)' is immutable in this project (its retention policy) and points at \(current); push under a new tag")
        }
        try await store.putManifest(ManifestPut(
            projectId: projectId, repository: repository, digest: digest, mediaType: mediaType, content: content,
            subject: subject, artifactType: document.effectiveArtifactType, tag: tag, blobs: Array(Set(document.requiredBlobs)),
            manifests: Array(Set(manifestsReferenced))))
        var headers: HTTPFields = [
            .location: "/v2/\(name)/manifests/\(digest)",
            HTTPField.Name("Docker-Content-Digest")!: digest.description,
            .contentLength: "0",
        ]
        if let subject { headers[HTTPField.Name("OCI-Subject")!] = subject }
        return Response(status: .created, headers: headers)
    }

    func deleteManifest(access: RepositoryAccess, reference: String) async throws -> Response {
        let (projectId, repository) = (access.projectId, access.repository)
        let deleted = if let digest = Digest(reference) {
            try await store.deleteManifest(projectId: projectId, repository: repository, digest: digest)
        } else {
            try await store.deleteTag(projectId: projectId, repository: repository, tag: reference)
        }
        guard deleted else { throw RegistryError.manifestUnknown(reference) }
        return Response(status: .accepted, headers: [.contentLength: "0"])
    }
}
