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
          annotations = ["org.example.stage=base"]
          attest = ["type=provenance,disabled=true"]
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
          # Another platform, so another cache of the builder: it runs beside "broken", not after it.
          platforms = ["linux/386"]
        }
        target "refused" {
          dockerfile-inline = "FROM ${BASE}\n"
          platforms = ["linux/s390x"]
        }
        target "extras" {
          contexts = { docs = "./docs", img = "docker-image://${BASE}" }
          dockerfile-inline = "FROM img\nCOPY --from=docs note.txt /note.txt\nRUN cat /note.txt\n"
          output = ["type=oci,dest=extras.tar"]
        }
        target "after-broken" {
          contexts = { b = "target:broken" }
          dockerfile-inline = "FROM b\nRUN echo never\n"
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
                // One request queued all four; app waited on the server for base.
                let queuedLine = first.stderr.split(separator: "\n").first { $0.hasPrefix("bake ") && $0.contains("4 targets queued") }
                #expect(queuedLine != nil, "\(first.stderr)")
                #expect(first.stderr.contains(/\[app\] build [a-z0-9]{16} queued, after base/), "\(first.stderr)")
                let bakeId = String(queuedLine?.dropFirst("bake ".count).prefix { $0 != ":" } ?? "")
                let listed = try await runExecutable("drydock", ["builds", "list", "--bake", bakeId, "--format", "json"], environment: env, directory: work)
                #expect(listed.status == 0, "\(listed.stderr)")
                let listedItems = (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
                #expect(Set(listedItems.compactMap { ($0["bake"] as? [String: Any])?["target"] as? String }) == ["base", "app", "variant-one", "variant-two"],
                        "\(listed.stdout)")
                #expect(first.stderr.contains("TARGET") && first.stderr.contains("succeeded"))
                for (repository, tag) in [("bake-base", "1"), ("bake-app", "1"), ("bake-variant", "one"), ("bake-variant", "two")] {
                    let tags = try await server.registry(.get, "/v2/\(fixture.projectId)/\(repository)/tags/list", token: server.ownerToken)
                    #expect(String(decoding: tags.body, as: UTF8.self).contains("\"\(tag)\""), "\(repository):\(tag) is in the project registry")
                }
                // A target's annotations and attest entries apply: base has its annotation and no
                // provenance (disabled); app has the default provenance.
                let base = try await ImageOutputTests.manifestDigest(server, "\(fixture.projectId)/bake-base", "1")
                #expect((base.json["annotations"] as? [String: String])?["org.example.stage"] == "base", "\(base.json)")
                #expect(try await ImageOutputTests.referrers(server, "\(fixture.projectId)/bake-base", base.digest).isEmpty)
                let app = try await ImageOutputTests.manifestDigest(server, "\(fixture.projectId)/bake-app", "1")
                #expect(try await ImageOutputTests.referrers(server, "\(fixture.projectId)/bake-app", app.digest).count == 1)
                let builds = try await fixture.client.builds(projectId: fixture.projectId).items
                #expect(builds.prefix(4).allSatisfy { $0.bake != nil } && Set(builds.prefix(4).compactMap { $0.bake?.id }).count == 1, "one bake's builds are labelled with it")
                // Two slots of one builder, one cache: a job that waits for the cache keeps its
                // lease, so none is taken back and run twice.
                for build in builds.prefix(4) {
                    var lines: [String] = []
                    for try await entry in try await fixture.client.buildLogs(build.id) { if let line = entry.line { lines.append(line) } }
                    #expect(!lines.contains { $0.contains("queued again") }, "\(build.bake?.target ?? build.id) was taken back: \(lines)")
                }

                // The same bake again: every RUN step from the cache.
                let second = try await runExecutable("drydock", ["bake", "--progress", "plain"], environment: env, directory: work)
                #expect(second.status == 0, "\(second.stderr)")
                let again = try await fixture.client.builds(projectId: fixture.projectId).items.prefix(4)
                for build in again {
                    let detail = try await fixture.client.build(build.id)
                    let runs = detail.steps.filter { $0.instruction.contains("RUN") }
                    #expect(!runs.isEmpty && runs.allSatisfy(\.cached), "\(build.bake?.target ?? build.id): \(detail.steps)")
                }

                // Named contexts that are a local directory and an image elsewhere; a file output.
                try FileManager.default.createDirectory(at: work.appendingPathComponent("docs"), withIntermediateDirectories: true)
                try "note-from-docs\n".write(to: work.appendingPathComponent("docs/note.txt"), atomically: true, encoding: .utf8)
                let extras = try await runExecutable("drydock", ["bake", "extras", "--progress", "plain"], environment: env, directory: work)
                #expect(extras.status == 0, "\(extras.stderr)\nbuilder: \(builder.output)")
                #expect(extras.stderr.contains("[extras] note-from-docs"), "COPY --from=docs read the local directory: \(extras.stderr)")
                #expect(extras.stderr.contains("uploading named context 'docs'"), "\(extras.stderr)")
                let exported = try await runTool("tar", ["-tf", work.appendingPathComponent("extras.tar").path])
                #expect(exported.status == 0 && exported.stdout.contains("index.json"), "the oci output was written: \(exported.stdout)")

                // A failing build fails the bake.
                let failed = try await runExecutable("drydock", ["bake", "broken", "--progress", "plain"], environment: env, directory: work)
                #expect(failed.status != 0)
                #expect(failed.stderr.contains("[broken] failed: step [2/2] RUN exit 3"), "\(failed.stderr)")
                // A target the server refuses stops the whole bake before anything is queued.
                let countBefore = try await fixture.client.builds(projectId: fixture.projectId).items.count
                let refused = try await runExecutable("drydock", ["bake", "refused", "slow", "--progress", "plain"], environment: env, directory: work)
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("platforms[0]") && refused.stderr.contains("(target 'refused')"), "\(refused.stderr)")
                #expect(try await fixture.client.builds(projectId: fixture.projectId).items.count == countBefore, "nothing was queued")
                // A failing target cancels the others; the target waiting for it never starts.
                let stopped = try await runExecutable("drydock", ["bake", "broken", "after-broken", "slow", "--progress", "plain"], environment: env, directory: work)
                #expect(stopped.status != 0)
                let recent = try await fixture.client.builds(projectId: fixture.projectId).items.prefix(3)
                let slow = try #require(recent.first { $0.bake?.target == "slow" })
                let slowFinal = try await fixture.finished(slow.id, timeout: .seconds(60))
                #expect(slowFinal.status == .canceled, "the slow target was canceled: \(slowFinal.status)\n\(stopped.stderr)")
                let waiter = try #require(recent.first { $0.bake?.target == "after-broken" })
                let waiterFinal = try await fixture.finished(waiter.id, timeout: .seconds(60))
                #expect(waiterFinal.status == .canceled && waiterFinal.startedAt == nil, "\(waiterFinal)")
                #expect(waiterFinal.error?.contains("its named context 'b', failed") == true, "\(waiterFinal.error ?? "")")
                #expect(stopped.stderr.contains(/after-broken +canceled/), "the summary shows it: \(stopped.stderr)")

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

    @Test("a bake is one request: all or nothing, target: contexts wait on the server (blocked jobs are not claimable), a dependency's image becomes the named context, its failure cancels the waiters, cycles and unknown targets are refused")
    func serverSide() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("bakes")
            let digest = try await server.uploadZeroContext(project)
            let (_, worker) = try await server.createToken(#"{"name":"w","kind":"worker"}"#)
            func target(_ name: String, _ contexts: [String: String] = [:]) -> String {
                let named = contexts.map { #""\#($0.key)":"\#($0.value)""# }.joined(separator: ",")
                return #"{"name":"\#(name)","build":{"contextDigest":"\#(digest)","contexts":{\#(named)}}}"#
            }
            func bake(_ targets: [String]) async throws -> JSONResponse {
                try await server.request(.post, "/api/v1/projects/\(project)/bakes", token: server.ownerToken,
                                         json: #"{"targets":[\#(targets.joined(separator: ","))]}"#)
            }
            func builds() async throws -> [Schemas.Build] {
                try await server.request(.get, "/api/v1/projects/\(project)/builds", token: server.ownerToken).decoded(Schemas.BuildPage.self).items
            }
            func claim() async throws -> Schemas.JobAssignment? {
                let response = try await server.request(.post, "/api/v1/workers/claim", token: worker,
                                                        json: #"{"name":"w","platforms":["\#(Platform.host)"],"waitSeconds":0}"#)
                return response.status == .ok ? try response.decoded(Schemas.JobAssignment.self) : nil
            }

            // Refused as a whole: a cycle, an unknown target, a bad field in one target.
            let cycle = try await bake([target("p", ["q": "target:r"]), target("r", ["s": "target:p"])])
            #expect(cycle.status == .badRequest && cycle.text.contains("cycle: p → r → p"), "\(cycle.text)")
            let unknown = try await bake([target("p", ["q": "target:nope"])])
            #expect(unknown.status == .badRequest && unknown.text.contains("target:nope is not a target of this bake"), "\(unknown.text)")
            let bad = try await bake([target("ok"), #"{"name":"bad","build":{"contextDigest":"\#(digest)","platforms":["linux/s390x"]}}"#])
            #expect(bad.status == .badRequest && bad.text.contains("targets[1].build.platforms[0]") && bad.text.contains("(target 'bad')"), "\(bad.text)")
            #expect(try await builds().isEmpty, "nothing was queued by a refused bake")

            // a ← b ← c: all three queued by one request; b and c wait.
            let created = try await bake([target("a"), target("b", ["x": "target:a"]), target("c", ["y": "target:b"])])
            #expect(created.status == .created, "\(created.text)")
            let made = try created.decoded(Schemas.Bake.self)
            let (a, b, c) = (made.builds[0], made.builds[1], made.builds[2])
            #expect(made.status == .queued && made.builds.map { $0.bake?.target } == ["a", "b", "c"])
            #expect(a.waitingFor == nil && b.waitingFor == [a.id] && c.waitingFor == [b.id])
            let first = try #require(try await claim())
            #expect(first.buildId == a.id)
            #expect(try await claim() == nil, "a build waiting for another is not handed out")
            let imageA = "sha256:" + String(repeating: "a", count: 64)
            #expect(try await server.request(.post, "/api/v1/jobs/\(first.jobId)/finish", token: first.buildToken,
                                             json: #"{"status":"succeeded","digest":"\#(imageA)"}"#).status == .noContent)
            let second = try #require(try await claim(), "b is released once a succeeded")
            #expect(second.buildId == b.id)
            #expect(second.namedImages?.additionalProperties["x"] == "\(project)/build:\(a.id)@\(imageA)")
            let running = try await server.request(.get, "/api/v1/bakes/\(made.id)", token: server.ownerToken).decoded(Schemas.Bake.self)
            #expect(running.status == .running && running.builds[2].waitingFor == [b.id])
            #expect(try await server.request(.post, "/api/v1/jobs/\(second.jobId)/finish", token: second.buildToken,
                                             json: #"{"status":"failed","error":"boom"}"#).status == .noContent)
            let after = try await server.request(.get, "/api/v1/bakes/\(made.id)", token: server.ownerToken).decoded(Schemas.Bake.self)
            #expect(after.status == .failed)
            #expect(after.builds[2].status == .canceled && after.builds[2].startedAt == nil)
            #expect(after.builds[2].error?.contains("not started: build \(b.id), its named context 'y', failed") == true, "\(after.builds[2].error ?? "")")
            #expect(try await claim() == nil)

            // build:<id> of an unfinished build waits too; canceling the bake cancels everything.
            let pending = try await bake([target("d"), target("e", ["z": "target:d"])])
            let pendingBake = try pending.decoded(Schemas.Bake.self)
            let waiting = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                   json: #"{"contextDigest":"\#(digest)","contexts":{"w":"build:\#(pendingBake.builds[0].id)"}}"#)
            #expect(try waiting.decoded(Schemas.Build.self).waitingFor == [pendingBake.builds[0].id])
            let failedDependency = try await server.request(.post, "/api/v1/projects/\(project)/builds", token: server.ownerToken,
                                                            json: #"{"contextDigest":"\#(digest)","contexts":{"w":"build:\#(b.id)"}}"#)
            #expect(failedDependency.status == .badRequest && failedDependency.text.contains("build \(b.id) failed"), "\(failedDependency.text)")
            let canceled = try await server.request(.post, "/api/v1/bakes/\(pendingBake.id)/cancel", token: server.ownerToken).decoded(Schemas.Bake.self)
            #expect(canceled.status == .canceled && canceled.builds.allSatisfy { $0.status == .canceled })
            let waitingFinal = try await server.request(.get, "/api/v1/builds/\(try waiting.decoded(Schemas.Build.self).id)", token: server.ownerToken)
            #expect(try waitingFinal.decoded(Schemas.Build.self).status == .canceled, "a build waiting on a canceled one is canceled")
        }
    }
}
