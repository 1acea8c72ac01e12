import DrydockClient
import DrydockServer
import Foundation
import Testing

@Suite("Waiting for a builder")
struct QueueTests {
    @Test("a build no online builder can take says so at once and fails after the queue timeout with that reason; one a builder serves waits quietly")
    func noBuilderForPlatform() async throws {
        try await withTestServer(configure: {
            $0.queueTimeout = .seconds(4)
            $0.leaseCheckInterval = .milliseconds(300)
        }) { server in
            let project = try await server.createProject("arm")
            let context = try await server.uploadZeroContext(project)
            // An amd64 builder is online (it asked for work), none serves arm64.
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            let claim = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                 json: #"{"name":"amd","platforms":["linux/amd64"],"waitSeconds":0}"#)
            #expect(claim.status == .noContent)
            let arm = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                               json: #"{"contextDigest":"\#(context)","platforms":["arm64"]}"#).decoded(Schemas.Build.self).id
            let amd = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                               json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64"]}"#).decoded(Schemas.Build.self).id
            let client = DrydockClient(baseURL: URL(string: server.baseURL)!, token: server.ownerToken)
            func log(_ id: String) async throws -> String {
                var lines: [String] = []
                for try await entry in try await client.buildLogs(id) { if let line = entry.line { lines.append(line) } }
                return lines.joined(separator: "\n")
            }
            // Said at once (within a couple of checks), not after the timeout.
            var said = false
            let soon = ContinuousClock.now + .seconds(3)
            while !said, ContinuousClock.now < soon {
                said = try await log(arm).contains("no online builder serves linux/arm64")
                if !said { try await Task.sleep(for: .milliseconds(200)) }
            }
            let armLog = try await log(arm)
            #expect(said, "no word on the missing builder: \(armLog)")
            var build = try await client.build(arm)
            let deadline = ContinuousClock.now + .seconds(15)
            while build.status == .queued, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(300))
                build = try await client.build(arm)
            }
            #expect(build.status == .failed)
            #expect(build.error?.contains("no online builder serves linux/arm64") == true, "\(build.error ?? "")")
            // The amd64 build has a builder: still queued, and nothing said about it.
            #expect(try await client.build(amd).status == .queued)
            #expect(!(try await log(amd)).contains("no online builder"))
        }
    }

    @Test("a worker that goes away while its claim waits is handed nothing: the job stays queued for the next worker")
    func abandonedClaim() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("ghosts")
            let context = try await server.uploadZeroContext(project)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            // A long-poll whose client gives up after 1 s (curl closes the connection).
            let gaveUp = try await runTool("curl", ["-s", "-m", "1", "-o", "/dev/null", "-X", "POST", "-H", "Authorization: Bearer \(worker)",
                                                    "-H", "Content-Type: application/json", "--data", #"{"name":"ghost","platforms":["linux/amd64"],"waitSeconds":30}"#,
                                                    "\(server.baseURL)/api/v1/workers/claim"])
            #expect(gaveUp.status == 28, "curl should have timed out: \(gaveUp.status)")
            try await Task.sleep(for: .milliseconds(300))
            let build = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                 json: #"{"contextDigest":"\#(context)","platforms":["linux/amd64"]}"#).decoded(Schemas.Build.self)
            try await Task.sleep(for: .seconds(1))
            let still = try await server.request(.get, "/api/v1/builds/\(build.id)", token: server.ownerToken).decoded(Schemas.Build.self)
            #expect(still.status == .queued, "the abandoned claim took the job: \(still.jobs)")
            let claim = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                 json: #"{"name":"present","platforms":["linux/amd64"],"waitSeconds":0}"#)
            #expect(claim.status == .ok)
            #expect(try claim.decoded(Schemas.JobAssignment.self).buildId == build.id)
        }
    }

    @Test("drydock build takes the project from drydock.json found from the current directory, not from the context")
    func projectFromCurrentDirectory() async throws {
        try await withTestServer(configure: {
            $0.queueTimeout = .seconds(2)
            $0.leaseCheckInterval = .milliseconds(300)
        }) { server in
            let here = try await server.createProject("here")
            let elsewhere = try await server.createProject("elsewhere")
            try await withTemporaryDirectory { dir in
                let repo = dir.appendingPathComponent("repo"), context = dir.appendingPathComponent("other/app")
                try FileManager.default.createDirectory(at: repo.appendingPathComponent("sub"), withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try #"{"id":"\#(here)"}"#.write(to: repo.appendingPathComponent("drydock.json"), atomically: true, encoding: .utf8)
                try #"{"id":"\#(elsewhere)"}"#.write(to: context.appendingPathComponent("drydock.json"), atomically: true, encoding: .utf8)
                try "FROM scratch\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                // No builder: the build is queued in the project, then fails on the queue timeout.
                let result = try await runExecutable(
                    "drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--progress", "plain", context.path],
                    environment: ["HOME": dir.path], directory: repo.appendingPathComponent("sub"))
                #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
                #expect((result.stdout + result.stderr).contains("project \(here)"), "\(result.stdout)\(result.stderr)")
                let inHere = try await server.request(.get, "/api/v1/projects/\(here)/builds", token: server.ownerToken)
                let inElsewhere = try await server.request(.get, "/api/v1/projects/\(elsewhere)/builds", token: server.ownerToken)
                #expect(try inHere.decoded(Schemas.BuildPage.self).items.count == 1)
                #expect(try inElsewhere.decoded(Schemas.BuildPage.self).items.isEmpty)
            }
        }
    }
}
