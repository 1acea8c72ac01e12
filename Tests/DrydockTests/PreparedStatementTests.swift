@testable import DrydockServer
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite("Prepared statements")
struct PreparedStatementTests {
    enum Echo: StatementShape {}
    enum Twice: StatementShape {}

    /// A pool of one connection, so what a test runs and what it then reads of the session
    /// (`pg_prepared_statements` is per connection) meet on the same connection.
    static func withOneConnection<T: Sendable>(_ url: DatabaseURL, _ body: @escaping @Sendable (Database) async throws -> T) async throws -> T {
        try await ServerRunner.withDatabase(url, logger: TestDatabase.logger, waitLimit: TestDatabase.setupWaitLimit, connections: 1, body)
    }

    static func preparedStatements(_ db: Database) async throws -> [(name: String, sql: String, generic: Int64, custom: Int64)] {
        var out: [(String, String, Int64, Int64)] = []
        for try await row in try await db.query(
            "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements", logger: TestDatabase.logger
        ).decode((String, String, Int64, Int64).self) { out.append(row) }
        return out
    }

    @Test("a statement runs prepared: parsed once per connection, each call with its own values; a shape used with a second text is refused")
    func preparedOnce() async throws {
        let database = try await TestDatabase.create()
        try await Self.withOneConnection(database) { db in
            let logger = TestDatabase.logger
            for i in 0..<7 {
                let word: String? = i % 3 == 0 ? nil : "w\(i)"
                var answers: [(Int64, String?)] = []
                for try await row in try await db.prepared(Echo.self, "SELECT \(Int64(i)) * 2, \(word)::text", logger: logger) {
                    answers.append(try row.decode((Int64, String?).self))
                }
                #expect(answers.count == 1)
                #expect(answers.first?.0 == Int64(i) * 2)
                #expect(answers.first?.1 == word)
            }
            let prepared = try await Self.preparedStatements(db).filter { $0.sql.contains("* 2") }
            #expect(prepared.count == 1, "one statement on the connection for seven calls: \(prepared)")
            #expect((prepared.first?.name.utf8.count ?? 99) <= 63, "PostgreSQL keeps 63 bytes of a name")

            _ = try await db.prepared(Twice.self, "SELECT \(Int64(1))", logger: logger)
            await #expect(throws: DomainError.self) {
                _ = try await db.prepared(Twice.self, "SELECT \(Int64(1)) + 1", logger: logger)
            }
        }
    }

    @Test("a claim's statements are parsed once per connection; starting jobs runs with the plan PostgreSQL kept after the first claims")
    func claimsKeepTheirPlan() async throws {
        try await withTestServer { server in
            let project = try await QueueLoadTests.queueBuilds(server, "planned", count: 12)
            let (_, _) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            // A history of finished builds, as a server has after a while: with tables of a few
            // rows any plan is cheap, and PostgreSQL keeps a generic one whatever it assumes.
            try await TestDatabase.execute(server.database, """
                WITH b AS (
                    INSERT INTO builds (id, project_id, organization_id, status, context_digest, spec, created_at, finished_at)
                    SELECT 'history' || i, \(project), \(server.organizationId), 'succeeded', 'sha256:00', '{}', now(), now()
                    FROM generate_series(1, 3000) i RETURNING id
                )
                INSERT INTO build_jobs (id, build_id, organization_id, platform, status, finished_at)
                SELECT 'j' || id, id, \(server.organizationId), 'linux/amd64', 'succeeded', now() FROM b
                """)
            // Statistics as autovacuum would gather them (it may, mid-test, on a slow machine).
            try await TestDatabase.execute(server.database, "ANALYZE builds, build_jobs, tokens, projects")
            try await Self.withOneConnection(server.database) { db in
                let logger = TestDatabase.logger
                var workerTokenId: String?
                for try await id in try await db.query("SELECT id FROM tokens WHERE kind = 'worker'", logger: logger).decode(String.self) {
                    workerTokenId = id
                }
                let keys = ServerKeys(dataDirectory: nil)
                try await keys.load(from: db, logger: logger)
                let queue = JobQueue(client: db, logger: logger, secretBox: BuildSecretBox(keys: keys), lease: .seconds(60))
                for i in 0..<12 {
                    let job = try await queue.claim(organizationId: nil, platforms: [try #require(Platform("linux/amd64"))], workerName: "w",
                                                    workerTokenId: try #require(workerTokenId))
                    #expect(job != nil, "claim \(i) found no job")
                }
                let prepared = try await Self.preparedStatements(db)
                let start = prepared.filter { $0.sql.contains("WITH input AS") }
                let candidates = prepared.filter { $0.sql.contains("picked AS MATERIALIZED") }
                #expect(start.count == 1 && candidates.count == 1, "\(prepared.map(\.name))")
                // PostgreSQL makes five plans for the values, then keeps a generic one if it costs
                // no more: twelve claims made at most six plans each.
                #expect((start.first?.custom ?? 99) <= 6 && (start.first?.generic ?? 0) >= 6, "starting jobs: \(start.map { ($0.name, $0.generic, $0.custom) })")
                // Picking jobs stays prepared (parsed once) but, with fresh statistics, PostgreSQL
                // finds plans made for each claim's values cheaper and makes one per claim: all
                // twelve runs used a plan of their own, none came from another parse.
                #expect(candidates.first.map { $0.custom + $0.generic } == 12, "picking jobs: \(candidates.map { ($0.name, $0.generic, $0.custom) })")
            }
        }
    }
}
