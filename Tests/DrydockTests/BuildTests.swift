import DrydockClient
import DrydockServer
import DrydockProcess
import Foundation
import Testing

/// Real builds: the `drydock` CLI and `drydock-builder` processes against a live server, buildah
/// underneath, base images made from busybox-static.
@Suite("Builds end to end", .serialized)
struct BuildTests {
    @Test("drydock build: multi-stage --target, --build-arg, .dockerignore, cached rebuild, image pullable with skopeo")
    func buildAndRebuild() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "web")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                let context = dir.appendingPathComponent("app")
                let files = [
                    "Dockerfile": """
                        FROM \(fixture.base) AS base
                        ARG GREETING=hello
                        RUN echo "$GREETING from base" > /greeting
                        FROM base AS test
                        RUN exit 7
                        FROM base AS release
                        COPY . /app/
                        RUN test ! -e /app/secret.log && test ! -e /app/build/out.o && test -e /app/build/keep.o && cat /greeting /app/a.txt
                        """,
                    ".dockerignore": "*.log\nbuild/\n!build/keep.o\n",
                    "a.txt": "file a\n", "secret.log": "no\n", "build/out.o": "no\n", "build/keep.o": "yes\n",
                ]
                for (path, content) in files {
                    let url = context.appendingPathComponent(path)
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try content.write(to: url, atomically: true, encoding: .utf8)
                }
                let iid = dir.appendingPathComponent("iid").path
                let args = ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId,
                            "-t", "app:1", "--target", "release", "--build-arg", "GREETING=hi", "--progress", "plain", "--push",
                            "--iidfile", iid, context.path]
                let first = try await runExecutable("drydock", args, environment: ["HOME": dir.path])
                #expect(first.status == 0, "stderr: \(first.stderr)\nbuilder: \(builder.output)")
                #expect(first.stderr.contains("hi from base"), "the build arg reached RUN")
                #expect(first.stderr.contains("uploading"))
                #expect(!first.stderr.contains("exit 7"), "the unused 'test' stage was not built")
                let digest = try String(contentsOfFile: iid, encoding: .utf8)
                #expect(digest.hasPrefix("sha256:"))

                // Rebuild: nothing uploaded, every step after FROM cached, same image.
                let rootfs = dir.appendingPathComponent("rootfs")
                let metadata = dir.appendingPathComponent("metadata.json")
                let second = try await runExecutable("drydock", args + ["-o", "type=local,dest=\(rootfs.path)", "--metadata-file", metadata.path],
                                                     environment: ["HOME": dir.path])
                #expect(second.status == 0, "\(second.stderr)")
                #expect(second.stderr.contains("nothing to upload"))
                #expect(second.stderr.contains("without pushing"), "an unchanged image is tagged, not pushed again")
                #expect(second.stderr.contains("from this builder's cache"), "an unchanged context is not fetched again")
                // -o type=local: the image's filesystem; --metadata-file: its digest.
                #expect(try String(contentsOf: rootfs.appendingPathComponent("app/a.txt"), encoding: .utf8) == "file a\n")
                #expect(!FileManager.default.fileExists(atPath: rootfs.appendingPathComponent("app/secret.log").path))
                #expect(try String(contentsOf: rootfs.appendingPathComponent("greeting"), encoding: .utf8) == "hi from base\n")
                let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: metadata)) as? [String: Any]
                #expect(meta?["containerimage.digest"] as? String == digest)
                #expect(try String(contentsOfFile: iid, encoding: .utf8) == digest)
                let builds = try await fixture.client.builds(projectId: fixture.projectId)
                let latest = try await fixture.client.build(try #require(builds.items.first).id)
                let runSteps = latest.steps.filter { $0.instruction.contains("RUN") }
                #expect(runSteps.count == 2)
                #expect(runSteps.allSatisfy { $0.cached }, "\(latest.steps)")
                #expect(second.stderr.contains("CACHED"))

                // The image is in the registry under build:<id> and the pushed tag, pullable by skopeo.
                for reference in ["\(fixture.projectId)/build:\(latest.id)", "\(fixture.projectId)/app:1"] {
                    let inspect = try await runTool("skopeo", ["inspect", "--tls-verify=false", "--creds", "ci:\(server.ownerToken)",
                                                               "--format", "{{.Digest}}", "docker://\(fixture.host)/\(reference)"])
                    #expect(inspect.status == 0, "\(inspect.stderr)")
                    #expect(inspect.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == digest)
                }
            }
        }
    }

    @Test("a failing RUN fails the build: the exit code and buildah's error reach the CLI, which exits non-zero")
    func failingRun() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "fails")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                let context = dir.appendingPathComponent("ctx")
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try "FROM \(fixture.base)\nRUN echo about to fail && exit 3\nRUN echo never\n".write(
                    to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                let result = try await runExecutable("drydock", [
                    "build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId, "--progress", "plain", context.path,
                ], environment: ["HOME": dir.path])
                #expect(result.status == 1)
                #expect(result.stderr.contains("about to fail"))
                #expect(result.stderr.contains("the command exited with code 3"), "\(result.stderr)")
                #expect(result.stderr.contains("failed"))
                #expect(!result.stderr.contains("never\n#"))
                let build = try await fixture.client.build(try #require(try await fixture.client.builds(projectId: fixture.projectId).items.first).id)
                #expect(build.status == .failed)
                // The step once, and the command's exit code: not buildah's quote of the instruction again.
                #expect(build.error == "step [2/3] RUN echo about to fail && exit 3: the command exited with code 3", "\(build.error ?? "")")
                #expect(build.steps.last?.status == .failed)
                // The failing step's own output is shown again at the end, as buildx does, with where the whole log is.
                #expect(result.stderr.contains("------\n > [2/3] RUN echo about to fail && exit 3:\n#2 about to fail"), "\(result.stderr)")
                #expect(result.stderr.contains("ERROR: build \(build.id) failed: step [2/3]"), "\(result.stderr)")
                #expect(result.stderr.contains("drydock builds logs \(build.id)"), "\(result.stderr)")
            }
        }
    }

    @Test("the cache survives a worker restart, and two projects never share one")
    func cacheLifetimeAndIsolation() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let a = try await BuildFixture.make(server, project: "alpha")
                let b = try await BuildFixture.make(server, project: "beta")
                let token = try await workerToken(server)
                let cache = dir.appendingPathComponent("cache")
                func dockerfile(_ f: BuildFixture) -> [String: String] {
                    ["Dockerfile": "FROM \(f.base)\nRUN echo warm > /warm\n"]
                }
                let builder = try await BuilderProcess(server: server, token: token, cache: cache, name: "b1")
                let first = try await a.finished(try await a.queue(dockerfile(a)).id)
                #expect(first.status == .succeeded, "\(first.error ?? "")")
                #expect(first.steps.contains { $0.instruction.contains("RUN") && !$0.cached })

                await builder.stop()
                let restarted = try await BuilderProcess(server: server, token: token, cache: cache, name: "b2")
                let again = try await a.finished(try await a.queue(dockerfile(a)).id)
                #expect(again.status == .succeeded)
                #expect(again.steps.filter { $0.instruction.contains("RUN") }.allSatisfy { $0.cached }, "cache survived the restart: \(again.steps)")
                #expect(again.jobs.first?.workerName == "b2")
                _ = restarted

                let other = try await b.finished(try await b.queue(dockerfile(b)).id)
                #expect(other.status == .succeeded)
                #expect(other.steps.contains { $0.instruction.contains("RUN") && !$0.cached }, "project beta has its own cache: \(other.steps)")
                let roots = try FileManager.default.contentsOfDirectory(atPath: cache.path).filter { !$0.hasPrefix(".") }.sorted()
                #expect(roots == [a.projectId, b.projectId].sorted())
            }
        }
    }

    @Test("cancel stops a running build within seconds, leaves no containers, and the next build works")
    func cancel() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "cancel")
                let cache = dir.appendingPathComponent("cache")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: cache, name: "b1")
                let build = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo sleeping && sleep 120\n"])
                _ = try await fixture.wait(build.id) { $0.steps.contains { $0.instruction.contains("sleep") && $0.status == .running } }
                try await Task.sleep(for: .milliseconds(500))
                let asked = ContinuousClock.now
                _ = try await fixture.client.cancelBuild(build.id)
                let canceled = try await fixture.finished(build.id, timeout: .seconds(30))
                let took = ContinuousClock.now - asked
                #expect(canceled.status == .canceled)
                #expect(took < .seconds(10), "canceled in \(took)")
                let containers = try await runTool("buildah", cacheStorage(cache, fixture.projectId) + ["containers", "--quiet"])
                #expect(containers.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "left over: \(containers.stdout)")
                let next = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo fine\n"]).id)
                #expect(next.status == .succeeded, "\(next.error ?? "")")
            }
        }
    }

    @Test("SIGTERM to drydock build (a CI runner's timeout) cancels the remote build, as Ctrl-C does")
    func cliTerminated() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "term")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                defer { withExtendedLifetime(builder) {} }
                let context = dir.appendingPathComponent("app")
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try "FROM \(fixture.base)\nRUN sleep 141\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                let log = dir.appendingPathComponent("cli.log")
                FileManager.default.createFile(atPath: log.path, contents: nil)
                let cli = try await RunningProcess(
                    [packageRoot.appendingPathComponent(".build/debug/drydock").path, "build", "--api-url", server.baseURL, "--token", server.ownerToken,
                     "--project", fixture.projectId, "--progress", "plain", context.path],
                    environment: ["HOME": dir.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"],
                    log: log.path)
                var queued: Components.Schemas.Build?
                let deadline = ContinuousClock.now + .seconds(60)
                while queued == nil, ContinuousClock.now < deadline {
                    queued = try await fixture.client.builds(projectId: fixture.projectId).items.first
                    if queued == nil { try await Task.sleep(for: .milliseconds(200)) }
                }
                let build = try #require(queued, "the CLI never queued the build: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
                _ = try await fixture.wait(build.id) { $0.steps.contains { $0.instruction.contains("sleep 141") && $0.status == .running } }
                cli.signal(SIGTERM)
                let canceled = try await fixture.finished(build.id, timeout: .seconds(30))
                #expect(canceled.status == .canceled)
                _ = await cli.wait(timeout: .seconds(10))
                #expect(!cli.isRunning)
                #expect(cli.exitStatus == 130, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            }
        }
    }

    @Test("a worker killed with kill -9 mid-build: the build fails when its lease expires, the next build is fine")
    func workerKilled() async throws {
        try await withTestServer(configure: { $0.jobLease = .seconds(4); $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "killed")
                let token = try await workerToken(server)
                let cache = dir.appendingPathComponent("cache")
                let doomed = try await BuilderProcess(server: server, token: token, cache: cache, name: "doomed")
                let build = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN sleep 120\n"])
                _ = try await fixture.wait(build.id) { $0.steps.contains { $0.instruction.contains("sleep") && $0.status == .running } }
                doomed.kill9()
                let failed = try await fixture.finished(build.id, timeout: .seconds(30))
                #expect(failed.status == .failed)
                #expect(failed.error?.contains("stopped responding") == true, "\(failed.error ?? "")")
                #expect(failed.error?.contains("doomed") == true)

                let next = try await BuilderProcess(server: server, token: token, cache: cache, name: "next")
                let ok = try await fixture.finished(try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo fine\n"]).id)
                #expect(ok.status == .succeeded, "\(ok.error ?? "") \(next.output)")
                #expect(next.output.contains("cleaned up a job"), "the new worker stopped what the killed one left: \(next.output)")
            }
        }
    }

    @Test("SIGTERM to a builder finishes the job in hand and exits 0; a second signal stops at once")
    func builderGracefulShutdown() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "graceful")
                let token = try await workerToken(server)
                let cache = dir.appendingPathComponent("cache")
                let builder = try await BuilderProcess(server: server, token: token, cache: cache, name: "graceful")
                let build = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo working && sleep 3 && echo done\n"])
                _ = try await fixture.wait(build.id) { $0.steps.contains { $0.instruction.contains("sleep") && $0.status == .running } }
                builder.process.signal(SIGTERM)
                let finished = try await fixture.finished(build.id, timeout: .seconds(60))
                #expect(finished.status == .succeeded, "the job in hand was not finished: \(finished.error ?? "") \(builder.output)")
                _ = await builder.process.wait(timeout: .milliseconds(20000))
                #expect(!builder.process.isRunning, "the builder did not exit after its job")
                #expect(builder.process.exitStatus == 0, "\(builder.output)")
                // It took no new job once told to stop.
                let queued = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN echo later\n"])
                try await Task.sleep(for: .seconds(1))
                #expect(try await fixture.client.build(queued.id).status == .queued)

                // Two signals: the running build is stopped without waiting for it.
                let hasty = try await BuilderProcess(server: server, token: token, cache: cache, name: "hasty")
                let long = try await fixture.queue(["Dockerfile": "FROM \(fixture.base)\nRUN sleep 137\n"])
                _ = try await fixture.wait(long.id) { $0.steps.contains { $0.instruction.contains("sleep 137") && $0.status == .running } }
                hasty.process.signal(SIGTERM)
                try await Task.sleep(for: .milliseconds(500))
                hasty.process.signal(SIGTERM)
                _ = await hasty.process.wait(timeout: .milliseconds(10000))
                #expect(!hasty.process.isRunning, "a second signal did not stop the builder: \(hasty.output)")
                let sleeping = try await runTool("pgrep", ["-f", "sleep 137"])
                #expect(sleeping.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "the build's process survived")
            }
        }
    }

    @Test("two workers and 20 queued builds: every build runs exactly once")
    func twoWorkersTwentyBuilds() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "queue")
                let files = ["Dockerfile": "FROM \(fixture.base)\nARG N\nRUN echo build $N > /n\n"]
                var ids: [String] = []
                for n in 0..<20 {
                    ids.append(try await fixture.queue(files) { .init(contextDigest: $0, buildArgs: .init(additionalProperties: ["N": "\(n)"])) }.id)
                }
                let token = try await workerToken(server)
                let one = try await BuilderProcess(server: server, token: token, cache: dir.appendingPathComponent("cache1"), name: "w1")
                let two = try await BuilderProcess(server: server, token: token, cache: dir.appendingPathComponent("cache2"), name: "w2")
                var workers: [String: Int] = [:]
                for id in ids {
                    let build = try await fixture.finished(id, timeout: .seconds(240))
                    #expect(build.status == .succeeded, "\(id): \(build.error ?? "")")
                    #expect(build.jobs.count == 1)
                    workers[build.jobs.first?.workerName ?? "?", default: 0] += 1
                    var pickups = 0
                    for try await entry in try await fixture.client.buildLogs(id) where entry.kind == .status && entry.status == .running {
                        pickups += 1
                    }
                    #expect(pickups == 1, "build \(id) was picked up \(pickups) times")
                }
                #expect(workers.values.reduce(0, +) == 20)
                #expect(Set(workers.keys).isSubset(of: ["w1", "w2"]), "\(workers)")
                _ = (one, two)
            }
        }
    }

    @Test("secrets reach RUN --mount=type=secret, are never stored or logged; RUN steps see no Drydock token")
    func secretsAndTokens() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "secrets")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                let context = dir.appendingPathComponent("ctx")
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try """
                    FROM \(fixture.base)
                    RUN --mount=type=secret,id=tok test "$(base64 /run/secrets/tok)" = "\(Data("s3cret-value-42".utf8).base64EncodedString())" && echo secret-ok
                    RUN env > /env.txt && ! grep -E 'dd[uowpb]_' /env.txt && ! grep -q DRYDOCK /env.txt && echo env-clean
                    """.write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                let result = try await runExecutable("drydock", [
                    "build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId,
                    "--progress", "plain", "--secret", "id=tok,env=MY_SECRET", context.path,
                ], environment: ["HOME": dir.path, "MY_SECRET": "s3cret-value-42"])
                #expect(result.status == 0, "\(result.stderr)\n\(builder.output)")
                #expect(result.stderr.contains("secret-ok"))
                #expect(result.stderr.contains("env-clean"))
                #expect(!result.stderr.contains("s3cret-value-42"))
                #expect(!builder.output.contains("s3cret-value-42"))
                let stored = try await TestDatabase.count(server.database, "SELECT count(*) FROM builds WHERE sealed_secrets IS NOT NULL")
                #expect(stored == 0, "sealed secrets are erased when the build ends")
                let logged = try await TestDatabase.count(server.database, "SELECT count(*) FROM build_log WHERE entry LIKE '%s3cret-value-42%'")
                #expect(logged == 0)
                let jobDirs = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("cache/.jobs").path)) ?? []
                #expect(jobDirs.isEmpty, "the job's directory (with the secret file) is gone")
            }
        }
    }
}
