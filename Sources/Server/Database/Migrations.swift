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
        Migration(version: 3, name: "build contexts, builds, jobs, logs, workers", statements: [
            """
            CREATE TABLE build_contexts (
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                digest text NOT NULL,
                size bigint NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                last_used_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (project_id, digest)
            )
            """,
            """
            CREATE TABLE builds (
                id text PRIMARY KEY,
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
                context_digest text NOT NULL,
                spec text NOT NULL,
                sealed_secrets bytea,
                cancel_requested boolean NOT NULL DEFAULT false,
                digest text,
                error text,
                created_by_token_id text,
                next_log_position bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                started_at timestamptz,
                finished_at timestamptz,
                seq bigserial NOT NULL UNIQUE
            )
            """,
            "CREATE INDEX builds_project_seq ON builds (project_id, seq DESC)",
            """
            CREATE TABLE build_jobs (
                id text PRIMARY KEY,
                build_id text NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
                organization_id text NOT NULL,
                platform text NOT NULL,
                status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
                worker_name text,
                worker_token_id text,
                build_token_id text,
                lease_expires_at timestamptz,
                confirmed_at timestamptz,
                last_event_sequence bigint NOT NULL DEFAULT -1,
                digest text,
                error text,
                cache_bytes bigint,
                started_at timestamptz,
                finished_at timestamptz,
                seq bigserial NOT NULL UNIQUE
            )
            """,
            "CREATE INDEX build_jobs_queued ON build_jobs (platform, seq) WHERE status = 'queued'",
            "CREATE INDEX build_jobs_running ON build_jobs (lease_expires_at) WHERE status = 'running'",
            "CREATE INDEX build_jobs_build ON build_jobs (build_id)",
            """
            CREATE TABLE build_log (
                build_id text NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
                position bigint NOT NULL,
                kind text NOT NULL,
                entry text NOT NULL,
                PRIMARY KEY (build_id, position)
            )
            """,
            """
            CREATE TABLE workers (
                token_id text NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
                name text NOT NULL,
                platforms text[] NOT NULL,
                last_seen_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (token_id, name)
            )
            """,
        ]),
        Migration(version: 4, name: "plans, usage records, storage samples, usage caps", statements: [
            """
            CREATE TABLE plans (
                id text PRIMARY KEY,
                name text NOT NULL,
                monthly_cents bigint NOT NULL CHECK (monthly_cents >= 0),
                max_users integer,
                included_minutes bigint NOT NULL,
                minute_overage_millicents bigint,
                included_storage_gb bigint NOT NULL,
                storage_overage_millicents bigint,
                usage_caps boolean NOT NULL
            )
            """,
            """
            INSERT INTO plans VALUES
                ('developer', 'Developer', 2000, 1, 500, NULL, 25, NULL, false),
                ('startup', 'Startup', 20000, NULL, 5000, 4000, 250, 20000, true),
                ('business', 'Business', 20000, NULL, 5000, 4000, 250, 20000, true)
            """,
            "ALTER TABLE organizations ADD COLUMN plan_overrides text",
            "ALTER TABLE organizations ADD CONSTRAINT organizations_plan_fk FOREIGN KEY (plan) REFERENCES plans(id)",
            """
            CREATE TABLE usage_builds (
                job_id text PRIMARY KEY,
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                project_id text NOT NULL,
                platform text NOT NULL,
                start_epoch bigint NOT NULL,
                seconds bigint NOT NULL CHECK (seconds >= 0),
                recorded_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX usage_builds_org_start ON usage_builds (organization_id, start_epoch)",
            """
            CREATE TABLE usage_storage (
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                project_id text NOT NULL,
                kind text NOT NULL CHECK (kind IN ('cache', 'registry')),
                platform text NOT NULL,
                sampled_at timestamptz NOT NULL,
                bytes bigint NOT NULL CHECK (bytes >= 0),
                PRIMARY KEY (project_id, kind, platform, sampled_at)
            )
            """,
            "CREATE INDEX usage_storage_org ON usage_storage (organization_id, sampled_at)",
            """
            CREATE TABLE usage_caps (
                organization_id text PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
                minutes_per_month bigint,
                spend_cents_per_month bigint,
                soft_threshold_percent integer NOT NULL DEFAULT 80,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        Migration(version: 5, name: "plan history", statements: [
            // Which plan an organization was on, and when: a month is billed by the plans in force
            // during it, not by today's plan.
            """
            CREATE TABLE organization_plans (
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                plan text NOT NULL REFERENCES plans(id),
                plan_overrides text,
                valid_from timestamptz NOT NULL,
                valid_to timestamptz,
                CHECK (valid_to IS NULL OR valid_to >= valid_from)
            )
            """,
            "CREATE INDEX organization_plans_by_org ON organization_plans (organization_id, valid_from)",
            """
            INSERT INTO organization_plans (organization_id, plan, plan_overrides, valid_from)
            SELECT id, plan, plan_overrides, created_at FROM organizations
            """,
        ]),
        Migration(version: 6, name: "multi-platform builds", statements: [
            // Whether the job ran under emulation (qemu) rather than on a builder of its platform.
            "ALTER TABLE build_jobs ADD COLUMN emulated boolean NOT NULL DEFAULT false",
            // What a worker runs emulated, besides its native platforms.
            "ALTER TABLE workers ADD COLUMN emulated_platforms text[] NOT NULL DEFAULT '{}'",
            // When the job was queued: an emulating builder takes it only after the fallback delay.
            "ALTER TABLE build_jobs ADD COLUMN queued_at timestamptz NOT NULL DEFAULT now()",
            // Per project: whether emulating builders may take its jobs, and how long a job waits.
            "ALTER TABLE projects ADD COLUMN emulation text NOT NULL DEFAULT 'fallback' CHECK (emulation IN ('native-only', 'fallback', 'allowed'))",
            "ALTER TABLE projects ADD COLUMN emulation_fallback_seconds integer",
            "ALTER TABLE projects ADD COLUMN queue_timeout_seconds integer",
        ]),
        Migration(version: 7, name: "agents, builders on demand, cache generations", statements: [
            "ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check",
            "ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check CHECK (kind IN ('user', 'organization', 'project', 'pull', 'worker', 'build', 'agent', 'registration'))",
            // Per project: how agents start builders for it.
            "ALTER TABLE projects ADD COLUMN max_builders integer NOT NULL DEFAULT 1",
            "ALTER TABLE projects ADD COLUMN builds_per_builder integer NOT NULL DEFAULT 1",
            "ALTER TABLE projects ADD COLUMN builder_idle_seconds integer NOT NULL DEFAULT 300",
            """
            CREATE TABLE agents (
                id text PRIMARY KEY,
                token_id text NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
                name text NOT NULL,
                launcher text NOT NULL,
                platforms text[] NOT NULL,
                emulated_platforms text[] NOT NULL DEFAULT '{}',
                max_builders integer NOT NULL,
                cpus integer,
                memory_mb bigint,
                created_at timestamptz NOT NULL DEFAULT now(),
                last_seen_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (token_id, name)
            )
            """,
            // A builder an agent was told to start: one project, one platform. `state` is what the
            // server knows (starting until it registers, running, stopping, stopped); idle and busy
            // are read from its jobs.
            """
            CREATE TABLE agent_builders (
                id text PRIMARY KEY,
                seq bigserial,
                agent_id text NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
                organization_id text NOT NULL,
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                platform text NOT NULL,
                clone boolean NOT NULL DEFAULT false,
                emulated boolean NOT NULL DEFAULT false,
                state text NOT NULL CHECK (state IN ('starting', 'running', 'stopping', 'stopped')),
                registration_token_id text,
                worker_token_id text,
                created_at timestamptz NOT NULL DEFAULT now(),
                state_since timestamptz NOT NULL DEFAULT now(),
                jobs_served integer NOT NULL DEFAULT 0,
                cache_bytes bigint,
                stop_reason text
            )
            """,
            // A job whose agent-started builder vanished is queued again once.
            "ALTER TABLE build_jobs ADD COLUMN attempts integer NOT NULL DEFAULT 1",
            "CREATE INDEX agent_builders_live ON agent_builders (project_id, platform) WHERE state <> 'stopped'",
            "CREATE INDEX agent_builders_worker ON agent_builders (worker_token_id)",
            // Each project's cache per platform as builders report it; `generation` rises with each reset.
            """
            CREATE TABLE project_caches (
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                platform text NOT NULL,
                generation integer NOT NULL DEFAULT 0,
                bytes bigint NOT NULL DEFAULT 0,
                images integer NOT NULL DEFAULT 0,
                last_used_at timestamptz,
                reset_at timestamptz,
                PRIMARY KEY (project_id, platform)
            )
            """,
        ]),
        Migration(version: 8, name: "OIDC trust relationships, CI tokens, isolated builds", statements: [
            "ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check",
            "ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check CHECK (kind IN ('user', 'organization', 'project', 'pull', 'worker', 'build', 'agent', 'registration', 'ci'))",
            // A CI token from an OIDC exchange reaches the projects whose trust relationships matched.
            "ALTER TABLE tokens ADD COLUMN project_ids text[]",
            // Isolated: a CI token that may start isolated builds only, or the build token of an
            // isolated build (which may push to its own build tag only).
            "ALTER TABLE tokens ADD COLUMN isolated boolean NOT NULL DEFAULT false",
            "ALTER TABLE tokens ADD COLUMN build_tag text",
            """
            CREATE TABLE trust_relationships (
                id text PRIMARY KEY,
                seq bigserial,
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                provider text NOT NULL CHECK (provider IN ('github', 'gitlab', 'circleci', 'buildkite', 'oidc')),
                issuer text NOT NULL,
                subject text NOT NULL,
                conditions jsonb NOT NULL,
                isolate text NOT NULL DEFAULT 'never' CHECK (isolate IN ('never', 'pull-requests', 'always')),
                created_by_token_id text,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX trust_relationships_issuer ON trust_relationships (issuer)",
            "CREATE INDEX trust_relationships_project ON trust_relationships (project_id, seq)",
            "ALTER TABLE usage_builds ADD COLUMN isolated boolean NOT NULL DEFAULT false",
        ]),
        Migration(version: 9, name: "bakes: builds queued together, waiting for the builds they use as contexts", statements: [
            "ALTER TABLE builds ADD COLUMN bake_id text",
            "CREATE INDEX builds_bake ON builds (bake_id) WHERE bake_id IS NOT NULL",
            // The unfinished builds whose images this build uses as named contexts.
            "ALTER TABLE builds ADD COLUMN waiting_for text[] NOT NULL DEFAULT '{}'",
            "CREATE INDEX builds_waiting_for ON builds USING gin (waiting_for)",
            // A blocked job is queued but not claimable until its build stops waiting.
            "ALTER TABLE build_jobs ADD COLUMN blocked boolean NOT NULL DEFAULT false",
            "DROP INDEX build_jobs_queued",
            "CREATE INDEX build_jobs_queued ON build_jobs (platform, seq) WHERE status = 'queued' AND NOT blocked",
        ]),
        Migration(version: 10, name: "a queue that scales: claims ordered by an index of queued jobs only, running usage totals", statements: [
            // Claims take the oldest claimable job: in seq order among queued jobs only, so their
            // cost never grows with the jobs that ever ran (whatever the statistics say).
            "DROP INDEX build_jobs_queued",
            "CREATE INDEX build_jobs_queued ON build_jobs (seq) INCLUDE (platform, organization_id) WHERE status = 'queued' AND NOT blocked",
            // Build seconds per organization and month, kept as jobs finish: a cap or plan check
            // reads one row, not every build of the month.
            """
            CREATE TABLE usage_totals (
                organization_id text NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
                month_from bigint NOT NULL,
                build_seconds bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (organization_id, month_from)
            )
            """,
            """
            INSERT INTO usage_totals (organization_id, month_from, build_seconds)
            SELECT u.organization_id, m.month_from,
                   sum(greatest(0, least(u.start_epoch + u.seconds, m.month_to) - greatest(u.start_epoch, m.month_from)))::bigint
            FROM usage_builds u
            CROSS JOIN LATERAL (
                SELECT extract(epoch FROM d)::bigint AS month_from, extract(epoch FROM d + interval '1 month')::bigint AS month_to
                FROM generate_series(date_trunc('month', to_timestamp(u.start_epoch) AT TIME ZONE 'UTC'),
                                     date_trunc('month', to_timestamp(u.start_epoch + u.seconds) AT TIME ZONE 'UTC'),
                                     interval '1 month') d
            ) m
            GROUP BY 1, 2
            """,
            // Every build second recorded, however it is inserted, lands in its months' totals.
            """
            CREATE FUNCTION usage_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                m timestamp;
                m_from bigint;
                m_to bigint;
            BEGIN
                IF NEW.seconds <= 0 THEN RETURN NULL; END IF;
                FOR m IN SELECT generate_series(date_trunc('month', to_timestamp(NEW.start_epoch) AT TIME ZONE 'UTC'),
                                                date_trunc('month', to_timestamp(NEW.start_epoch + NEW.seconds - 1) AT TIME ZONE 'UTC'),
                                                interval '1 month') LOOP
                    m_from := extract(epoch FROM m)::bigint;
                    m_to := extract(epoch FROM m + interval '1 month')::bigint;
                    INSERT INTO usage_totals (organization_id, month_from, build_seconds)
                    VALUES (NEW.organization_id, m_from, least(NEW.start_epoch + NEW.seconds, m_to) - greatest(NEW.start_epoch, m_from))
                    ON CONFLICT (organization_id, month_from) DO UPDATE SET build_seconds = usage_totals.build_seconds + EXCLUDED.build_seconds;
                END LOOP;
                RETURN NULL;
            END
            $$
            """,
            "CREATE TRIGGER usage_builds_totals AFTER INSERT ON usage_builds FOR EACH ROW EXECUTE FUNCTION usage_totals_add()",
        ]),
        Migration(version: 11, name: "keys every replica shares", statements: [
            """
            CREATE TABLE server_keys (
                name text NOT NULL,
                version integer NOT NULL,
                key bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (name, version)
            )
            """,
            // Background work every replica runs, taken in turns: one of them per interval.
            "CREATE TABLE housekeeping_turns (name text PRIMARY KEY, last_run timestamptz NOT NULL)",
        ]),
        Migration(version: 12, name: "registry retention policies", statements: [
            """
            CREATE TABLE registry_retention (
                project_id text PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
                policy text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
        ]),
        Migration(version: 13, name: "dashboard sessions, and the last uncached duration of each step for the cache's saved time", statements: [
            // A signed-in browser: the session id's hash (the id itself is only in the cookie), the
            // token it acts as, and when it ends. Revoking the token ends its sessions.
            """
            CREATE TABLE dashboard_sessions (
                id_hash bytea PRIMARY KEY,
                token_id text NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at)",
            // The dashboard's "running now": unfinished builds without reading the finished ones.
            "CREATE INDEX builds_unfinished ON builds (organization_id, seq DESC) WHERE status IN ('queued', 'running')",
            // Per project, platform and step (its stage and instruction, hashed): how long it took
            // the last time it ran without the cache. A cached step saved that much.
            """
            CREATE TABLE step_timings (
                project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
                platform text NOT NULL,
                step_key bytea NOT NULL,
                duration_ms bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (project_id, platform, step_key)
            )
            """,
        ]),
        Migration(version: 14, name: "running usage totals in stripes: finishing jobs of one organization do not wait for each other", statements: [
            // One row per organization and month made every finishing job of an organization wait
            // for the previous one's commit (its row lock). Sixty-four rows per month, chosen by the
            // job's id, spread those writers; a check sums the 64 (constant cost still).
            "ALTER TABLE usage_totals ADD COLUMN stripe smallint NOT NULL DEFAULT 0",
            "ALTER TABLE usage_totals DROP CONSTRAINT usage_totals_pkey",
            "ALTER TABLE usage_totals ADD PRIMARY KEY (organization_id, month_from, stripe)",
            """
            CREATE OR REPLACE FUNCTION usage_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                m timestamp;
                m_from bigint;
                m_to bigint;
            BEGIN
                IF NEW.seconds <= 0 THEN RETURN NULL; END IF;
                FOR m IN SELECT generate_series(date_trunc('month', to_timestamp(NEW.start_epoch) AT TIME ZONE 'UTC'),
                                                date_trunc('month', to_timestamp(NEW.start_epoch + NEW.seconds - 1) AT TIME ZONE 'UTC'),
                                                interval '1 month') LOOP
                    m_from := extract(epoch FROM m)::bigint;
                    m_to := extract(epoch FROM m + interval '1 month')::bigint;
                    INSERT INTO usage_totals (organization_id, month_from, stripe, build_seconds)
                    VALUES (NEW.organization_id, m_from, hashtext(NEW.job_id) & 63,
                            least(NEW.start_epoch + NEW.seconds, m_to) - greatest(NEW.start_epoch, m_from))
                    ON CONFLICT (organization_id, month_from, stripe) DO UPDATE SET build_seconds = usage_totals.build_seconds + EXCLUDED.build_seconds;
                END LOOP;
                RETURN NULL;
            END
            $$
            """,
        ]),
        Migration(version: 15, name: "the index of builds waiting for others holds only those", statements: [
            // Every finishing build looks for builds waiting for it. The index held every build
            // (almost all with nothing to wait for) and, with GIN's pending list, each insert made
            // the next lookups scan a longer list until a vacuum; the planner also chose the index
            // of unfinished builds instead, whose cost grows with the queue. Now it holds only the
            // builds that wait, written at once, and the lookup names its predicate.
            "DROP INDEX builds_waiting_for",
            "CREATE INDEX builds_waiting_for ON builds USING gin (waiting_for) WITH (fastupdate = off) WHERE waiting_for <> '{}'",
        ]),
        Migration(version: 16, name: "a multi-platform build's index is assembled by one server at a time", statements: [
            // Set by the server assembling the index (the last job's finish, or the lease reaper's
            // sweep after a server stopped mid-way) and renewed while it runs: the sweep of every
            // replica passes over a build whose assembly another one holds.
            "ALTER TABLE builds ADD COLUMN index_claimed_at timestamptz",
        ]),
    ]

    /// Applies every migration not yet recorded. Returns the versions applied by this call.
    @discardableResult
    public static func apply(on database: Database, logger: Logger) async throws -> [Int] {
        try await apply(on: database.client, logger: logger)
    }

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
