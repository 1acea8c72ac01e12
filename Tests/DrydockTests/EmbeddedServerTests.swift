import DrydockClient
import Foundation
import Testing

/// The embedded default, as a user runs it: `drydock-server` with no database URL runs its own
/// PostgreSQL in the data directory; `bootstrap` works with the server running or not.
@Suite("drydock-server with its private PostgreSQL")
struct EmbeddedServerTests {
    @Test("serve, bootstrap while running and while stopped, stop the cluster on SIGTERM, keep data across restarts")
    func embeddedLifecycle() async throws {
        try await withTemporaryDirectory { dir in
            let dataDir = dir.appendingPathComponent("data")
            // The kernel picks the port (the server logs the one it bound).
            let env = ["DRYDOCK_DATA_DIR": dataDir.path, "DRYDOCK_PORT": "0", "HOME": dir.path]

            // Bootstrap with no server running: initialises the cluster, then stops it again.
            let first = try await runExecutable("drydock-server", ["bootstrap", "--org", "solo"], environment: env)
            #expect(first.status == 0, "\(first.stderr)")
            let firstToken = try #require(first.stdout.split(separator: "\n").last.map(String.init))
            #expect(firstToken.hasPrefix("ddu_"))
            #expect(!FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("postgres/postmaster.pid").path))

            for round in 0..<2 {
                let server = try await ServerProcess(environment: env, logFile: dir.appendingPathComponent("server-\(round).log"))
                let baseURL = server.baseURL
                try await waitUntilReady(baseURL, server: server)

                let caller = try await DrydockClient(baseURL: baseURL, token: firstToken).whoami()
                #expect(caller.organization.name == "solo")

                if round == 0 {
                    let second = try await runExecutable("drydock-server", ["bootstrap", "--org", "second", "--email", "boss@second.test"], environment: env)
                    #expect(second.status == 0, "\(second.stderr)")
                    let token = try #require(second.stdout.split(separator: "\n").last.map(String.init))
                    let other = try await DrydockClient(baseURL: baseURL, token: token).whoami()
                    #expect(other.organization.name == "second")
                    #expect(other.user?.email == "boss@second.test")

                    let duplicate = try await runExecutable("drydock-server", ["bootstrap", "--org", "second"], environment: env)
                    #expect(duplicate.status != 0)
                    #expect(duplicate.stderr.contains("already exists"))
                    #expect(!duplicate.stdout.contains("dd"), "no token printed on failure")
                }

                server.signal(SIGTERM)
                #expect(try await server.waitForExit() == 0, "\(server.lastOutput)")
                #expect(!FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("postgres/postmaster.pid").path),
                        "the private cluster stops with the server")
            }
        }
    }

    @Test("a bad configuration is one clear line, not a crash")
    func badConfiguration() async throws {
        let result = try await runExecutable("drydock-server", [], environment: ["DRYDOCK_PORT": "eighty"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("DRYDOCK_PORT"))
        let url = try await runExecutable("drydock-server", [], environment: ["DRYDOCK_DATABASE_URL": "mysql://nope"])
        #expect(url.status != 0)
        #expect(url.stderr.contains("postgres://"))
    }

    func waitUntilReady(_ baseURL: URL, server: ServerProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            do {
                _ = try await DrydockClient(baseURL: baseURL, token: nil, timeout: .seconds(2)).whoami()
            } catch let error as DrydockClientError {
                if error.status == 401 { return }
            } catch {}
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CLITestError("server at \(baseURL) did not become ready in 60 s:\n\(server.lastOutput)")
    }
}
