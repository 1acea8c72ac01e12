import Logging
import PostgresNIO

/// Numbered schema migrations, applied in order at start-up, each in its own transaction and
/// recorded in `schema_migrations`. An advisory lock keeps two servers from migrating at once.
public enum Migrations {
    public struct Migration: Sendable {
        public let version: Int
        public let name: String
        public let statements: [PostgresQuery]
    }

    public static let all: [Migration] = [
        Migration(version: 1, name: "organizations, users, projects, tokens", statements: [
            """
            CREATE TABLE organizations (
                id text PRIMARY KEY,
                name text NOT NULL UNIQUE,
                plan text NOT NULL DEFAULT 'developer',
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE users (
                id text PRIMARY KEY,
                email text NOT NULL UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE memberships (
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
                seq bigserial NOT NULL UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (organization_id, user_id)
            )
            """,
            """
            CREATE TABLE projects (
                id text PRIMARY KEY,
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                name text NOT NULL,
                cache_keep_gb integer NOT NULL DEFAULT 50 CHECK (cache_keep_gb BETWEEN 1 AND 500),
                cache_keep_days integer NOT NULL DEFAULT 14 CHECK (cache_keep_days BETWEEN 1 AND 365),
                seq bigserial NOT NULL UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (organization_id, name)
            )
            """,
            "CREATE INDEX projects_org_seq ON projects (organization_id, seq DESC)",
            """
            CREATE TABLE tokens (
                id text PRIMARY KEY,
                organization_id text REFERENCES organizations(id) ON DELETE CASCADE,
                kind text NOT NULL CHECK (kind IN ('user', 'organization', 'project', 'pull', 'worker', 'build')),
                name text NOT NULL,
                secret_hash bytea NOT NULL UNIQUE,
                prefix text NOT NULL,
                user_id text REFERENCES users(id) ON DELETE CASCADE,
                project_id text REFERENCES projects(id) ON DELETE CASCADE,
                created_by_user_id text REFERENCES users(id) ON DELETE SET NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz,
                last_used_at timestamptz,
                revoked_at timestamptz,
                seq bigserial NOT NULL UNIQUE
            )
            """,
            "CREATE INDEX tokens_org_seq ON tokens (organization_id, seq DESC)",
        ]),
        Migration(version: 2, name: "registry metadata", statements: [
            """
            CREATE TABLE registry_repositories (
                id bigserial PRIMARY KEY,
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                name text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (project_id, name)
            )
            """,
            """
            CREATE TABLE registry_blobs (
                digest text PRIMARY KEY,
                size bigint NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE registry_repository_blobs (
                repository_id bigint NOT NULL REFERENCES registry_repositories(id) ON DELETE CASCADE,
                digest text NOT NULL REFERENCES registry_blobs(digest),
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (repository_id, digest)
            )
            """,
            """
            CREATE TABLE registry_manifests (
                repository_id bigint NOT NULL REFERENCES registry_repositories(id) ON DELETE CASCADE,
                digest text NOT NULL,
                media_type text NOT NULL,
                content bytea NOT NULL,
                size bigint NOT NULL,
                subject text,
                artifact_type text,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (repository_id, digest)
            )
            """,
            "CREATE INDEX registry_manifests_subject ON registry_manifests (repository_id, subject) WHERE subject IS NOT NULL",
            """
            CREATE TABLE registry_tags (
                repository_id bigint NOT NULL,
                name text NOT NULL,
                digest text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (repository_id, name),
                FOREIGN KEY (repository_id, digest) REFERENCES registry_manifests (repository_id, digest) ON DELETE CASCADE
            )
            """,
            """
            CREATE TABLE registry_uploads (
                id text PRIMARY KEY,
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                repository text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
    ]

    /// Applies every migration not yet recorded. Returns the versions applied by this call.
    @discardableResult
    public static func apply(on client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in
            // A session-level lock serialises servers starting at once, including the creation
            // of the bookkeeping table itself.
            try await connection.query("SELECT pg_advisory_lock(7411953)", logger: logger)
            do {
                let applied = try await applyLocked(on: connection, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(7411953)", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(7411953)", logger: logger)
                throw error
            }
        }
    }

    private static func applyLocked(on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        var done: Set<Int> = []
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
            done.insert(version)
        }
        var applied: [Int] = []
        for migration in all where !done.contains(migration.version) {
            try await connection.withTransaction(logger: logger) { tx in
                for statement in migration.statements {
                    try await tx.query(statement, logger: logger)
                }
                try await tx.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
            }
            logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }
}
