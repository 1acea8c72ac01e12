import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The referrers API: manifests whose `subject` is a given manifest, as an image index.
extension RegistryRoutes {
    func referrers(_ request: Request, access: RepositoryAccess, digest raw: String) async throws -> Response {
        let subject = try Self.digest(raw)
        let filter = request.uri.queryParameters.get("artifactType").map { String($0) }
        var descriptors: [OCIDescriptor] = []
        for manifest in try await store.referrers(projectId: access.projectId, repository: access.repository, subject: subject) {
            // Stored manifests were decoded when pushed; their annotations are a string map.
            let document = try? JSONDecoder().decode(OCIManifestDocument.self, from: Data(manifest.content))
            // Manifests stored before the config's media type stood in for a missing artifactType.
            let artifactType = manifest.artifactType ?? document?.effectiveArtifactType
            if let filter, artifactType != filter { continue }
            descriptors.append(OCIDescriptor(mediaType: manifest.mediaType, digest: manifest.digest, size: Int64(manifest.content.count),
                                             artifactType: artifactType, annotations: document?.annotations))
        }
        var headers: HTTPFields = [.contentType: "application/vnd.oci.image.index.v1+json"]
        if filter != nil { headers[HTTPField.Name("OCI-Filters-Applied")!] = "artifactType" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(OCIIndex(manifests: descriptors)))))
    }
}
