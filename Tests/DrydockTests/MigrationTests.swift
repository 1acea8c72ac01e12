import DrydockServer
import Foundation
import PostgresNIO
import Testing

@Suite("Schema migrations")
struct MigrationTests {
    @Test("apply on an empty database, record each version, and do nothing the second time")
    func appliesOnceOnEmptyDatabase() async throws {
        let database = try await TestDatabase.create()
        let logger = TestDatabase.logger
        let (first, second, recorded, tables) = try await ServerRunner.withDatabase(database, logger: logger) { client in
            let first = try await Migrations.apply(on: client, logger: logger)
            let second = try await Migrations.apply(on: client, logger: logger)
            var recorded: [Int] = []
            for try await version in try await client.query("SELECT version FROM schema_migrations ORDER BY version", logger: logger).decode(Int.self) {
                recorded.append(version)
            }
            var tables: Set<String> = []
            for try await name in try await client.query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", logger: logger
            ).decode(String.self) {
                tables.insert(name)
            }
            return (first, second, recorded, tables)
        }
        #expect(first == Migrations.all.map(\.version))
        #expect(second.isEmpty)
        #expect(recorded == Migrations.all.map(\.version))
        #expect(tables.isSuperset(of: ["organizations", "users", "memberships", "projects", "tokens", "schema_migrations"]))
    }

    @Test("concurrent servers migrating the same database apply each migration exactly once")
    func concurrentApply() async throws {
        let database = try await TestDatabase.create()
        let logger = TestDatabase.logger
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    try await ServerRunner.withDatabase(database, logger: logger) { client in
                        try await Migrations.apply(on: client, logger: logger)
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        #expect(results.sorted() == Migrations.all.map(\.version))
    }
}
