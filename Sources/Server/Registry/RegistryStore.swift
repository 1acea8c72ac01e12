import Foundation
import Logging
import PostgresNIO

/// A stored manifest, byte-exact.
public struct StoredManifest: Sendable {
    public let digest: String
    public let mediaType: String
    public let content: [UInt8]
    public let artifactType: String?
}

/// What a manifest PUT brings besides its bytes, parsed by the route.
public struct ManifestPut: Sendable {
    let projectId: String
    let repository: String
    let digest: Digest
    let mediaType: String
    let content: [UInt8]
    let subject: String?
    let artifactType: String?
    let tag: String?
    let blobs: [String]
    let manifests: [String]
}

/// Registry metadata in PostgreSQL: repositories, blob links, manifests, tags, upload sessions.
/// A repository exists once something is pushed to it; a blob is readable only through a
/// repository that links it.
public struct RegistryStore: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    func repositoryId(projectId: String, name: String) async throws -> Int64? {
        let rows = try await client.query(
            "SELECT id FROM registry_repositories WHERE project_id = \(projectId) AND name = \(name)", logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        return nil
    }

    private static func ensureRepository(projectId: String, name: String, on tx: PostgresConnection, logger: Logger) async throws -> Int64 {
        let rows = try await tx.query(
            """
            INSERT INTO registry_repositories (project_id, name) VALUES (\(projectId), \(name))
            ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw RegistryError.unknown("repository insert returned nothing")
    }

    /// The size of a blob if this repository links it.
    func linkedBlobSize(projectId: String, repository: String, digest: Digest) async throws -> Int64? {
        // Prepared once per connection: every blob HEAD and GET asks this.
        let rows = try await client.execute(LinkedBlobSize(projectId: projectId, repository: repository, digest: digest.description),
                                            logger: logger)
        for try await size in rows { return size }
        return nil
    }

    struct LinkedBlobSize: Int64Lookup {
        static let sql = """
            SELECT b.size FROM registry_repository_blobs l
            JOIN registry_repositories r ON r.id = l.repository_id
            JOIN registry_blobs b ON b.digest = l.digest
            WHERE r.project_id = $1 AND r.name = $2 AND l.digest = $3
            """
        var projectId: String
        var repository: String
        var digest: String
        var arguments: [String] { [projectId, repository, digest] }
    }

    /// Links a stored blob into a repository. Under the blob's advisory lock it first checks the
    /// file is still there, so a garbage collection that removed it in the meantime turns into an
    /// error the client retries, never into a link to nothing.
    func linkBlob(projectId: String, repository: String, digest: Digest, size: Int64, closingUpload uploadId: String? = nil,
                  stillStored: @Sendable () async throws -> Bool) async throws {
        try await client.transaction(logger: logger, idempotent: true) { tx in
            try await tx.query("SELECT pg_advisory_xact_lock(hashtext(\(digest.description)))", logger: logger)
            guard try await stillStored() else {
                throw RegistryError.blobUnknown(digest.description)
            }
            // One round trip: the repository, the blob, the link, and the finished upload session.
            try await tx.query(
                """
                WITH repository AS (
                    INSERT INTO registry_repositories (project_id, name) VALUES (\(projectId), \(repository))
                    ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name
                    RETURNING id
                ), blob AS (
                    INSERT INTO registry_blobs (digest, size) VALUES (\(digest.description), \(size)) ON CONFLICT (digest) DO NOTHING
                ), finished AS (
                    DELETE FROM registry_uploads WHERE id = \(uploadId)
                )
                INSERT INTO registry_repository_blobs (repository_id, digest)
                SELECT id, \(digest.description) FROM repository
                ON CONFLICT DO NOTHING
                """, logger: logger)
        }
    }

    /// Cross-repository mount in one statement: links `digest` into the repository if the source
    /// repository links it, and says whether it did. The blob's row is locked `FOR SHARE` while the
    /// link is made, so a garbage collection deleting it either finished first (then there is
    /// nothing to mount and the client uploads) or cannot delete it until the link exists (the
    /// link's foreign key then keeps the row, and the collector leaves the file alone).
    func mountBlob(projectId: String, repository: String, from source: (projectId: String, repository: String),
                   digest: Digest) async throws -> Bool {
        let rows = try await client.execute(
            MountBlob(projectId: projectId, repository: repository, fromProjectId: source.projectId,
                      fromRepository: source.repository, digest: digest.description),
            logger: logger)
        for try await count in rows { return count > 0 }
        return false
    }

    struct MountBlob: Int64Lookup {
        static let sql = """
            WITH source AS (
                SELECT b.digest FROM registry_repository_blobs l
                JOIN registry_repositories r ON r.id = l.repository_id
                JOIN registry_blobs b ON b.digest = l.digest
                WHERE r.project_id = $3 AND r.name = $4 AND l.digest = $5
                FOR SHARE OF b
            ), repository AS (
                INSERT INTO registry_repositories (project_id, name)
                SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM source)
                ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name
                RETURNING id
            ), link AS (
                INSERT INTO registry_repository_blobs (repository_id, digest)
                SELECT repository.id, source.digest FROM repository, source
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) FROM source
            """
        var projectId: String
        var repository: String
        var fromProjectId: String
        var fromRepository: String
        var digest: String
        var arguments: [String] { [projectId, repository, fromProjectId, fromRepository, digest] }
    }

    /// Removes blobs no repository links, unused for `grace`, one at a time under the same lock
    /// `linkBlob` takes; `remove` deletes the file before the row's deletion commits.
    func collectGarbage(grace: Duration, remove: @Sendable (Digest) async throws -> Void) async throws -> Int {
        let seconds = Double(grace.components.seconds)
        let rows = try await client.query(
            """
            SELECT b.digest FROM registry_blobs b
            WHERE b.created_at < now() - make_interval(secs => \(seconds))
              AND NOT EXISTS (SELECT 1 FROM registry_repository_blobs l WHERE l.digest = b.digest)
            LIMIT 1000
            """, logger: logger)
        var candidates: [String] = []
        for try await digest in rows.decode(String.self) { candidates.append(digest) }
        var removed = 0
        for candidate in candidates {
            guard let digest = Digest(candidate) else { continue }
            let deleted: Bool
            do {
                deleted = try await client.transaction(logger: logger) { tx -> Bool in
                    try await tx.query("SELECT pg_advisory_xact_lock(hashtext(\(candidate)))", logger: logger)
                    let gone = try await tx.query(
                        """
                        DELETE FROM registry_blobs b WHERE b.digest = \(candidate)
                          AND NOT EXISTS (SELECT 1 FROM registry_repository_blobs l WHERE l.digest = b.digest)
                        RETURNING digest
                        """, logger: logger)
                    var found = false
                    for try await _ in gone { found = true }
                    if found { try await remove(digest) }
                    return found
                }
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23503" {
                // A mount linked it after this sweep looked (foreign_key_violation): it is in use.
                continue
            }
            if deleted { removed += 1 }
        }
        return removed
    }

    /// Removes, from the store, the listed blobs no database row knows (a crash between storing a
    /// blob and recording it leaves one); the caller lists only blobs older than the grace period,
    /// so an upload finishing now is never touched. Returns how many went.
    func removeOrphans(_ digests: [Digest], remove: @Sendable (Digest) async throws -> Void) async throws -> Int {
        guard !digests.isEmpty else { return 0 }
        let texts = digests.map(\.description)
        let rows = try await client.query(
            "SELECT d FROM unnest(\(texts)::text[]) AS d WHERE NOT EXISTS (SELECT 1 FROM registry_blobs b WHERE b.digest = d)",
            logger: logger)
        var orphans: [String] = []
        for try await digest in rows.decode(String.self) { orphans.append(digest) }
        var removed = 0
        for orphan in orphans {
            guard let digest = Digest(orphan) else { continue }
            let gone = try await client.transaction(logger: logger) { tx -> Bool in
                // The lock a link takes: a blob being recorded right now is seen as known.
                try await tx.query("SELECT pg_advisory_xact_lock(hashtext(\(orphan)))", logger: logger)
                let known = try await tx.query("SELECT 1 FROM registry_blobs WHERE digest = \(orphan)", logger: logger)
                for try await _ in known { return false }
                try await remove(digest)
                return true
            }
            if gone { removed += 1 }
        }
        return removed
    }

    /// Upload sessions untouched for `age`; their rows are deleted, their ids returned.
    func expireUploads(olderThan age: Duration) async throws -> [String] {
        let seconds = Double(age.components.seconds)
        let rows = try await client.query(
            "DELETE FROM registry_uploads WHERE updated_at < now() - make_interval(secs => \(seconds)) RETURNING id", logger: logger)
        var ids: [String] = []
        for try await id in rows.decode(String.self) { ids.append(id) }
        return ids
    }

    /// Runs a statement that returns a row for each thing it changed; true if there was one.
    private func changedAny(_ query: PostgresQuery) async throws -> Bool {
        for try await _ in try await client.query(query, logger: logger) { return true }
        return false
    }

    func unlinkBlob(projectId: String, repository: String, digest: Digest) async throws -> Bool {
        try await changedAny(
            """
            DELETE FROM registry_repository_blobs
            WHERE repository_id = (SELECT id FROM registry_repositories WHERE project_id = \(projectId) AND name = \(repository)) AND digest = \(digest.description) RETURNING 1
            """)
    }

    func manifest(projectId: String, repository: String, reference: String) async throws -> StoredManifest? {
        // One round trip: the repository is resolved inside the statement.
        let query: PostgresQuery = Digest(reference) != nil
            ? """
              SELECT m.digest, m.media_type, m.content, m.artifact_type FROM registry_manifests m
              JOIN registry_repositories r ON r.id = m.repository_id
              WHERE r.project_id = \(projectId) AND r.name = \(repository) AND m.digest = \(reference)
              """
            : """
              SELECT m.digest, m.media_type, m.content, m.artifact_type FROM registry_tags t
              JOIN registry_repositories r ON r.id = t.repository_id
              JOIN registry_manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
              WHERE r.project_id = \(projectId) AND r.name = \(repository) AND t.name = \(reference)
              """
        let rows = try await client.query(query, logger: logger)
        for try await (digest, mediaType, content, artifactType) in rows.decode((String, String, ByteBuffer, String?).self) {
            return StoredManifest(digest: digest, mediaType: mediaType, content: Array(buffer: content), artifactType: artifactType)
        }
        return nil
    }

    /// Stores a manifest (and its tag) once everything it references is in the repository;
    /// otherwise throws MANIFEST_BLOB_UNKNOWN naming the first missing digest.
    func putManifest(_ put: ManifestPut) async throws {
        try await client.transaction(logger: logger, idempotent: true) { tx in
            let id = try await Self.ensureRepository(projectId: put.projectId, name: put.repository, on: tx, logger: logger)
            let missing = try await tx.query(
                """
                SELECT d FROM unnest(\(put.blobs)::text[]) d
                WHERE NOT EXISTS (SELECT 1 FROM registry_repository_blobs WHERE repository_id = \(id) AND digest = d)
                UNION ALL
                SELECT d FROM unnest(\(put.manifests)::text[]) d
                WHERE NOT EXISTS (SELECT 1 FROM registry_manifests WHERE repository_id = \(id) AND digest = d)
                LIMIT 1
                """, logger: logger)
            for try await digest in missing.decode(String.self) { throw RegistryError.manifestBlobUnknown(digest) }
            try await tx.query(
                """
                INSERT INTO registry_manifests (repository_id, digest, media_type, content, size, subject, artifact_type)
                VALUES (\(id), \(put.digest.description), \(put.mediaType), \(ByteBuffer(bytes: put.content)),
                        \(Int64(put.content.count)), \(put.subject), \(put.artifactType))
                ON CONFLICT (repository_id, digest) DO NOTHING
                """, logger: logger)
            if let tag = put.tag {
                try await tx.query(
                    """
                    INSERT INTO registry_tags (repository_id, name, digest) VALUES (\(id), \(tag), \(put.digest.description))
                    ON CONFLICT (repository_id, name) DO UPDATE SET digest = EXCLUDED.digest, updated_at = now()
                    """, logger: logger)
            }
        }
    }

    /// Makes a manifest of one repository of a project also a manifest of another (its blobs
    /// linked there too), as a cross-repository mount does for blobs. True when it was found.
    func copyManifest(projectId: String, from source: String, to destination: String, digest: String) async throws -> Bool {
        try await client.transaction(logger: logger) { tx -> Bool in
            let target = try await Self.ensureRepository(projectId: projectId, name: destination, on: tx, logger: logger)
            var found: (mediaType: String, content: ByteBuffer, artifactType: String?, subject: String?)?
            for try await row in try await tx.query(
                """
                SELECT m.media_type, m.content, m.artifact_type, m.subject FROM registry_manifests m
                JOIN registry_repositories r ON r.id = m.repository_id
                WHERE r.project_id = \(projectId) AND r.name = \(source) AND m.digest = \(digest)
                """, logger: logger).decode((String, ByteBuffer, String?, String?).self) { found = row }
            guard let found else { return false }
            let bytes = Array(buffer: found.content)
            let document = try? JSONDecoder().decode(OCIManifestDocument.self, from: Data(bytes))
            try await tx.query(
                """
                INSERT INTO registry_repository_blobs (repository_id, digest)
                SELECT \(target), d FROM unnest(\(document?.referencedBlobs ?? [])::text[]) d
                WHERE EXISTS (SELECT 1 FROM registry_blobs b WHERE b.digest = d)
                ON CONFLICT DO NOTHING
                """, logger: logger)
            try await tx.query(
                """
                INSERT INTO registry_manifests (repository_id, digest, media_type, content, size, subject, artifact_type)
                VALUES (\(target), \(digest), \(found.mediaType), \(found.content), \(Int64(bytes.count)), \(found.subject), \(found.artifactType))
                ON CONFLICT (repository_id, digest) DO NOTHING
                """, logger: logger)
            return true
        }
    }

    /// The digests of the manifests in `repository` whose `subject` is `digest` (its attestations).
    func referrerDigests(projectId: String, repository: String, subject digest: String) async throws -> [String] {
        var digests: [String] = []
        for try await found in try await client.query(
            """
            SELECT m.digest FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id
            WHERE r.project_id = \(projectId) AND r.name = \(repository) AND m.subject = \(digest)
            """, logger: logger).decode(String.self) { digests.append(found) }
        return digests
    }

    func deleteManifest(projectId: String, repository: String, digest: Digest) async throws -> Bool {
        try await changedAny(
            """
            DELETE FROM registry_manifests
            WHERE repository_id = (SELECT id FROM registry_repositories WHERE project_id = \(projectId) AND name = \(repository)) AND digest = \(digest.description) RETURNING 1
            """)
    }

    func deleteTag(projectId: String, repository: String, tag: String) async throws -> Bool {
        try await changedAny(
            "DELETE FROM registry_tags WHERE repository_id = (SELECT id FROM registry_repositories WHERE project_id = \(projectId) AND name = \(repository)) AND name = \(tag) RETURNING 1")
    }

    /// Tags in lexical order after `last`, at most `limit`; nil when the repository does not exist.
    func tags(projectId: String, repository: String, after last: String?, limit: Int) async throws -> [String]? {
        guard let id = try await repositoryId(projectId: projectId, name: repository) else { return nil }
        let rows = try await client.query(
            """
            SELECT name FROM registry_tags WHERE repository_id = \(id) AND (\(last)::text IS NULL OR name COLLATE "C" > \(last))
            ORDER BY name COLLATE "C" LIMIT \(limit)
            """, logger: logger)
        var out: [String] = []
        for try await name in rows.decode(String.self) { out.append(name) }
        return out
    }

    /// `<project>/<name>` of the organization's repositories (or one project's), in lexical order.
    func catalog(organizationId: String, onlyProjectIds: [String]?, after last: String?, limit: Int) async throws -> [String] {
        let rows = try await client.query(
            """
            SELECT r.project_id || '/' || r.name AS full FROM registry_repositories r
            JOIN projects p ON p.id = r.project_id
            WHERE p.organization_id = \(organizationId)
              AND (\(onlyProjectIds)::text[] IS NULL OR r.project_id = ANY(\(onlyProjectIds)))
              AND (\(last)::text IS NULL OR (r.project_id || '/' || r.name) COLLATE "C" > \(last))
              AND EXISTS (SELECT 1 FROM registry_manifests m WHERE m.repository_id = r.id)
            ORDER BY (r.project_id || '/' || r.name) COLLATE "C" LIMIT \(limit)
            """, logger: logger)
        var out: [String] = []
        for try await name in rows.decode(String.self) { out.append(name) }
        return out
    }

    /// Manifests whose subject is `digest`, for the referrers API.
    func referrers(projectId: String, repository: String, subject: Digest) async throws -> [StoredManifest] {
        guard let id = try await repositoryId(projectId: projectId, name: repository) else { return [] }
        let rows = try await client.query(
            """
            SELECT digest, media_type, content, artifact_type FROM registry_manifests
            WHERE repository_id = \(id) AND subject = \(subject.description) ORDER BY created_at
            """, logger: logger)
        var out: [StoredManifest] = []
        for try await (digest, mediaType, content, artifactType) in rows.decode((String, String, ByteBuffer, String?).self) {
            out.append(StoredManifest(digest: digest, mediaType: mediaType, content: Array(buffer: content), artifactType: artifactType))
        }
        return out
    }

    // MARK: upload sessions

    func createUpload(id: String, projectId: String, repository: String) async throws {
        try await client.query(
            "INSERT INTO registry_uploads (id, project_id, repository) VALUES (\(id), \(projectId), \(repository))", logger: logger)
    }

    func upload(id: String) async throws -> (projectId: String, repository: String, idleSeconds: Double)? {
        let rows = try await client.query(
            "SELECT project_id, repository, extract(epoch FROM now() - updated_at)::float8 FROM registry_uploads WHERE id = \(id)",
            logger: logger)
        for try await (project, repository, idle) in rows.decode((String, String, Double).self) { return (project, repository, idle) }
        return nil
    }

    func touchUpload(id: String) async throws {
        try await client.query("UPDATE registry_uploads SET updated_at = now() WHERE id = \(id)", logger: logger)
    }

    func deleteUpload(id: String) async throws {
        try await client.query("DELETE FROM registry_uploads WHERE id = \(id)", logger: logger)
    }
}

/// A prepared statement whose parameters are all text, in order, and whose rows are one bigint:
/// the shape of the registry's hot lookups.
protocol Int64Lookup: PostgresPreparedStatement where Row == Int64 {
    var arguments: [String] { get }
}

extension Int64Lookup {
    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: arguments.count)
        for argument in arguments { bindings.append(argument) }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
}
