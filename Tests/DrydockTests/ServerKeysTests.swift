@testable import DrydockServer
import Foundation
import Testing

@Suite("Server keys")
struct ServerKeysTests {
    @Test("the first server's key files are adopted into PostgreSQL; other servers load the same keys; after rotate-keys, tokens and secrets made with the old version still verify and open, new ones use the new version")
    func sharedAndRotated() async throws {
        try await withTemporaryDirectory { dir in
            let database = try await TestDatabase.create()
            try await ServerRunner.withDatabase(database, logger: TestDatabase.logger) { client in
                try await Migrations.apply(on: client, logger: TestDatabase.logger)
                // A single server that ran before replicas existed: its key files.
                let old = try ServerKeys.local(dataDirectory: dir.appendingPathComponent("a"))
                let caller = Caller(tokenId: "t", kind: .user, organizationId: "o", projectId: nil, userId: "u", role: .owner)
                let oldToken = try RegistryTokenSigner(keys: old).issue(caller: caller, access: ["o/app": ["pull"]], catalog: false).token
                let oldSealed = try BuildSecretBox(keys: old).seal(BuildSecrets(secrets: [.init(id: "s", value: "c2VjcmV0")]))

                let a = ServerKeys(dataDirectory: dir.appendingPathComponent("a"))
                try await a.load(from: client, logger: TestDatabase.logger)
                let b = ServerKeys(dataDirectory: dir.appendingPathComponent("b"))  // no files of its own
                try await b.load(from: client, logger: TestDatabase.logger)
                #expect(RegistryTokenSigner(keys: b).verify(oldToken) != nil, "B verifies what A's old key signed")
                #expect(try BuildSecretBox(keys: b).open(oldSealed).secrets.first?.id == "s")

                try await ServerKeys.rotate(database: client, logger: TestDatabase.logger)
                let c = ServerKeys(dataDirectory: nil)
                try await c.load(from: client, logger: TestDatabase.logger)
                #expect(c.all(.registryToken).count == 2)
                #expect(RegistryTokenSigner(keys: c).verify(oldToken) != nil, "a token from before the rotation still verifies")
                #expect(try BuildSecretBox(keys: c).open(oldSealed).secrets.first?.id == "s")
                let newToken = try RegistryTokenSigner(keys: c).issue(caller: caller, access: [:], catalog: false).token
                #expect(RegistryTokenSigner(keys: b).verify(newToken) == nil, "the new version signs: a server that has not loaded it refuses")
                #expect(RegistryTokenSigner(keys: RegistryTokenSigner(keys: c).keys).verify(newToken) != nil)
                // Forged: a token signed with a key the database never had.
                let stranger = try ServerKeys.local(dataDirectory: dir.appendingPathComponent("x"))
                let forged = try RegistryTokenSigner(keys: stranger).issue(caller: caller, access: [:], catalog: false).token
                #expect(RegistryTokenSigner(keys: c).verify(forged) == nil)
            }
        }
    }
}
