import DrydockClient
import Foundation
import Testing

/// `drydock bake` against a live server and a real builder.
@Suite("drydock bake end to end", .serialized)
struct BakeTests {
    static let bakeFile = #"""
        variable "BASE" {}
        group "default" {
          targets = ["base", "app", "variants"]
        }
        target "base" {
          dockerfile-inline = "FROM ${BASE}\nRUN echo from-base > /base.txt\n"
          tags = ["bake-base:1"]
        }
        target "app" {
          contexts = { base = "target:base" }
          dockerfile-inline = "FROM base\nRUN cat /base.txt && echo app > /app.txt\n"
          tags = ["bake-app:1"]
        }
        target "variants" {
          name = "variant-${v}"
          matrix = { v = ["one", "two"] }
          dockerfile-inline = "FROM ${BASE}\nARG V\nRUN echo variant-$V | tee /v.txt\n"
          args = { V = v }
          tags = ["bake-variant:${v}"]
        }
        target "broken" {
          dockerfile-inline = "FROM ${BASE}\nRUN exit 3\n"
        }
        target "slow" {
          dockerfile-inline = "FROM ${BASE}\nRUN sleep 600\n"
        }
        target "refused" {
          dockerfile-inline = "FROM ${BASE}\n"
          platforms = ["linux/s390x"]
        }
        """#

    @Test("three targets (one FROM another's result through target:, one a two-entry matrix) build remotely, tagged in the project registry; a rebuild is all cached; a failing target fails the bake and cancels the rest")
    func bake() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "bakery")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"),
                                                       name: "baker", concurrency: 2)
                defer { withExtendedLifetime(builder) {} }
                let work = dir.appendingPathComponent("repo")
                try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
                try Self.bakeFile.write(to: work.appendingPathComponent("docker-bake.hcl"), atomically: true, encoding: .utf8)
                let env = ["HOME": dir.path, "DRYDOCK_API_URL": server.baseURL, "DRYDOCK_TOKEN": server.ownerToken,
                           "DRYDOCK_PROJECT": fixture.projectId, "BASE": fixture.base]

                let printed = try await runExecutable("drydock", ["bake", "--print"], environment: env, directory: work)
                #expect(printed.status == 0, "\(printed.stderr)")
                let json = try JSONSerialization.jsonObject(with: Data(printed.stdout.utf8)) as? [String: Any]
                let targets = json?["target"] as? [String: Any]
                #expect(Set(targets?.keys.map { $0 } ?? []) == ["base", "app", "variant-one", "variant-two"])

                let first = try await runExecutable("drydock", ["bake", "--progress", "plain"], environment: env, directory: work)
                #expect(first.status == 0, "\(first.stderr)\nbuilder: \(builder.output)")
                #expect(first.stderr.contains("[app] from-base"), "app ran FROM base's image: \(first.stderr)")
                #expect(first.stderr.contains("[variant-two] variant-two"))
                #expect(first.stderr.contains("TARGET") && first.stderr.contains("succeeded"))
                for (repository, tag) in [("bake-base", "1"), ("bake-app", "1"), ("bake-variant", "one"), ("bake-variant", "two")] {
                    let tags = try await server.registry(.get, "/v2/\(fixture.projectId)/\(repository)/tags/list", token: server.ownerToken)
                    #expect(String(decoding: tags.body, as: UTF8.self).contains("\"\(tag)\""), "\(repository):\(tag) is in the project registry")
                }
                let builds = try await fixture.client.builds(projectId: fixture.projectId).items
                #expect(builds.prefix(4).allSatisfy { $0.bake != nil } && Set(builds.prefix(4).compactMap { $0.bake?.id }).count == 1, "one bake's builds are labelled with it")

                // The same bake again: every RUN step from the cache.
                let second = try await runExecutable("drydock", ["bake", "--progress", "plain"], environment: env, directory: work)
                #expect(second.status == 0, "\(second.stderr)")
                let again = try await fixture.client.builds(projectId: fixture.projectId).items.prefix(4)
                for build in again {
                    let detail = try await fixture.client.build(build.id)
                    let runs = detail.steps.filter { $0.instruction.contains("RUN") }
                    #expect(!runs.isEmpty && runs.allSatisfy(\.cached), "\(build.bake?.target ?? build.id): \(detail.steps)")
                }

                // A failing build fails the bake.
                let failed = try await runExecutable("drydock", ["bake", "broken", "--progress", "plain"], environment: env, directory: work)
                #expect(failed.status != 0)
                #expect(failed.stderr.contains("[broken] failed: step [2/2] RUN exit 3"), "\(failed.stderr)")
                // A failing target cancels the others (a refused one fails at once, so the slow one is surely still going).
                let stopped = try await runExecutable("drydock", ["bake", "refused", "slow", "--progress", "plain"], environment: env, directory: work)
                #expect(stopped.status != 0)
                #expect(stopped.stderr.contains("[refused] error:"), "\(stopped.stderr)")
                let slow = try #require(try await fixture.client.builds(projectId: fixture.projectId).items.first { $0.bake?.target == "slow" })
                let slowFinal = try await fixture.finished(slow.id, timeout: .seconds(60))
                #expect(slowFinal.status == .canceled, "the slow target was canceled: \(slowFinal.status)\n\(stopped.stderr)")

                // A mistake names its file, line and column, and nothing is queued.
                try "target \"x\" {\n  tags = [\"a\"\n}\n".write(to: work.appendingPathComponent("bad.hcl"), atomically: true, encoding: .utf8)
                let before = try await fixture.client.builds(projectId: fixture.projectId).items.count
                let bad = try await runExecutable("drydock", ["bake", "-f", "bad.hcl"], environment: env, directory: work)
                #expect(bad.status != 0 && bad.stderr.contains("bad.hcl:3:1:"), "\(bad.stderr)")
                #expect(try await fixture.client.builds(projectId: fixture.projectId).items.count == before)
                await builder.stop()
            }
        }
    }
}
