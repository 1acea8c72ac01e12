import Foundation
import PostgresNIO

/// Read models for the management API (`drydock registry …`).
extension RegistryStore {
    struct RepositorySummary: Sendable {
        let name: String
        let createdAt: Date
        let tagCount: Int
        let manifestCount: Int
        let sizeBytes: Int64
    }

    struct TagDetail: Sendable {
        let name: String
        let digest: String
        let mediaType: String
        let sizeBytes: Int64
        let updatedAt: Date
        let platforms: [String]?
    }

    func repositories(projectId: String) async throws -> [RepositorySummary] {
        let rows = try await client.query(
            """
            SELECT r.name, r.created_at,
                   (SELECT count(*) FROM registry_tags t WHERE t.repository_id = r.id),
                   (SELECT count(*) FROM registry_manifests m WHERE m.repository_id = r.id),
                   coalesce((SELECT sum(b.size) FROM registry_repository_blobs l JOIN registry_blobs b ON b.digest = l.digest
                             WHERE l.repository_id = r.id), 0)::bigint
            FROM registry_repositories r WHERE r.project_id = \(projectId)
            ORDER BY r.name COLLATE "C"
            """, logger: logger)
        var out: [RepositorySummary] = []
        for try await (name, created, tags, manifests, size) in rows.decode((String, Date, Int64, Int64, Int64).self) {
            out.append(RepositorySummary(name: name, createdAt: created, tagCount: Int(tags), manifestCount: Int(manifests), sizeBytes: size))
        }
        return out
    }

    /// Tags with sizes computed from the manifests' own descriptors; nil if no such repository.
    func tagDetails(projectId: String, repository: String) async throws -> [TagDetail]? {
        guard let id = try await repositoryId(projectId: projectId, name: repository) else { return nil }
        let rows = try await client.query(
            """
            SELECT t.name, m.digest, m.media_type, m.content, t.updated_at FROM registry_tags t
            JOIN registry_manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
            WHERE t.repository_id = \(id) ORDER BY t.name COLLATE "C"
            """, logger: logger)
        var out: [TagDetail] = []
        for try await (name, digest, mediaType, content, updated) in rows.decode((String, String, String, ByteBuffer, Date).self) {
            let bytes = Array(buffer: content)
            let document = try? JSONDecoder().decode(OCIManifestDocument.self, from: Data(bytes))
            var size = Int64(bytes.count)
            var platforms: [String]?
            if let manifests = document?.manifests {
                platforms = manifests.compactMap { $0.platform?.name }
            } else {
                size = size.addingClamped(document?.declaredImageBytes ?? 0)
            }
            out.append(TagDetail(name: name, digest: digest, mediaType: mediaType, sizeBytes: size, updatedAt: updated, platforms: platforms))
        }
        return out
    }

    func usage(projectId: String) async throws -> (repositories: Int, blobs: Int, bytes: Int64) {
        let rows = try await client.query(
            """
            SELECT (SELECT count(*) FROM registry_repositories WHERE project_id = \(projectId)),
                   count(*), coalesce(sum(size), 0)::bigint
            FROM (SELECT DISTINCT b.digest, b.size FROM registry_repositories r
                  JOIN registry_repository_blobs l ON l.repository_id = r.id
                  JOIN registry_blobs b ON b.digest = l.digest
                  WHERE r.project_id = \(projectId)) blobs
            """, logger: logger)
        for try await (repositories, blobs, bytes) in rows.decode((Int64, Int64, Int64).self) {
            return (Int(repositories), Int(blobs), bytes)
        }
        return (0, 0, 0)
    }
}
