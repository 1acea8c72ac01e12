import DrydockClient
import DrydockServer
import Foundation
import Testing

/// Multi-platform builds with real parts: Debian's busybox-static of each architecture as the base
/// image, buildah per job, qemu-user-static for the emulated platforms, two builder processes.
@Suite("Multi-platform builds", .serialized)
struct MultiPlatformTests {
    /// A project with a five-platform busybox index as `busybox:multi` in its registry.
    static func fixture(_ server: TestServer, project: String) async throws -> BuildFixture {
        let fixture = try await BuildFixture.make(server, project: project)
        let layout = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-busybox-arches-\(getpid())").path
        try await BuildFixture.makeOnce(layout) { scratch in
            let made = try await runTool("bash", [packageRoot.appendingPathComponent("Tests/Fixtures/busybox-arches.sh").path, scratch])
            try #require(made.status == 0, "making the per-architecture busybox images: \(made.stderr)")
        }
        let copy = try await runTool("skopeo", ["copy", "--quiet", "--all", "--dest-tls-verify=false", "--dest-creds", "ci:\(server.ownerToken)",
                                                "oci:\(layout):latest", "docker://\(fixture.host)/\(fixture.projectId)/busybox:multi"])
        try #require(copy.status == 0, "pushing the multi-platform busybox: \(copy.stderr)")
        return fixture
    }

    /// Builder A runs amd64 and 386 natively; B runs nothing natively and emulates arm64 and arm/v7.
    static func builders(_ server: TestServer, _ dir: URL) async throws -> (BuilderProcess, BuilderProcess) {
        let token = try await workerToken(server)
        let a = try await BuilderProcess(server: server, token: token, cache: dir.appendingPathComponent("cacheA"), name: "native-a",
                                         environment: ["DRYDOCK_BUILDER_PLATFORMS": "linux/amd64,linux/386"])
        let b = try await BuilderProcess(server: server, token: token, cache: dir.appendingPathComponent("cacheB"), name: "emulating-b",
                                         environment: ["DRYDOCK_BUILDER_PLATFORMS": "none", "DRYDOCK_BUILDER_EMULATE": "linux/arm64,linux/arm/v7"])
        return (a, b)
    }

    /// The bytes of one file of an image of the index, for one platform: its layers unpacked in order.
    static func file(_ path: String, of image: String, platform: Platform, token: String, in dir: URL) async throws -> Data {
        let out = dir.appendingPathComponent("image-\(platform.pathComponent)-\(UUID().uuidString)")
        // The platform to pick from the index: skopeo's global options, before the command.
        var arguments = ["--override-os", platform.os, "--override-arch", platform.architecture]
        if let variant = platform.variant { arguments += ["--override-variant", variant] }
        arguments += ["copy", "--quiet", "--src-tls-verify=false", "--src-creds", "ci:\(token)"]
        let copied = try await runTool("skopeo", arguments + ["docker://\(image)", "oci:\(out.path):x"])
        try #require(copied.status == 0, "\(copied.stderr)")
        let rootfs = out.appendingPathComponent("rootfs")
        try FileManager.default.createDirectory(at: rootfs, withIntermediateDirectories: true)
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("index.json"))) as? NSDictionary
        let manifestDigest = try #require(((index?["manifests"] as? NSArray)?.firstObject as? NSDictionary)?["digest"] as? String)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("blobs/sha256/" + manifestDigest.dropFirst(7)))) as? NSDictionary
        for case let layer as NSDictionary in (manifest?["layers"] as? NSArray) ?? [] {
            let digest = try #require(layer["digest"] as? String)
            let unpacked = try await runTool("tar", ["-xf", out.appendingPathComponent("blobs/sha256/" + digest.dropFirst(7)).path, "-C", rootfs.path])
            try #require(unpacked.status == 0, "\(unpacked.stderr)")
        }
        let target = rootfs.appendingPathComponent(path)
        let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: target.path)).map { rootfs.appendingPathComponent(path).deletingLastPathComponent().appendingPathComponent($0) } ?? target
        return try Data(contentsOf: resolved)
    }

    static func dockerfile(_ base: String) -> String {
        """
        FROM --platform=$BUILDPLATFORM \(base) AS cross
        ARG TARGETPLATFORM
        ARG BUILDPLATFORM
        RUN echo "built on $BUILDPLATFORM for $TARGETPLATFORM: $(uname -m)" > /cross
        FROM \(base)
        COPY --from=cross /cross /cross
        RUN uname -m > /arch
        """
    }

    @Test("four platforms in one build: one index with each platform's image, native where a builder has it, emulated where allowed, cached on rebuild")
    func fourPlatforms() async throws {
        try await withTestServer(configure: { $0.emulationFallback = .seconds(0) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await Self.fixture(server, project: "multi")
                let (a, b) = try await Self.builders(server, dir)
                defer { withExtendedLifetime((a, b)) {} }
                let context = dir.appendingPathComponent("ctx")
                try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                try Self.dockerfile("\(fixture.host)/\(fixture.projectId)/busybox:multi")
                    .write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                let metadata = dir.appendingPathComponent("meta.json")
                let arguments = ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", "multi", "--progress", "plain",
                                 "--platform", "linux/amd64,arm64,armhf,linux/386", "-t", "app:1", "--metadata-file", metadata.path, context.path]
                let result = try await runExecutable("drydock", arguments, environment: ["HOME": dir.path])
                #expect(result.status == 0, "\(result.stderr)\n--- A\n\(a.output)\n--- B\n\(b.output)")
                #expect(result.stderr.contains("[linux/arm64 stage-1 3/3] RUN uname -m > /arch"), "steps carry their platform: \(result.stderr)")

                // One index, tagged app:1 and the build's own tag, with each platform's fields.
                let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: metadata)) as? NSDictionary
                let indexDigest = try #require(meta?["containerimage.digest"] as? String)
                #expect(result.stderr.contains("index \(fixture.host)/\(fixture.projectId)/build:"))
                let raw = try await server.registry(.get, "/v2/\(fixture.projectId)/app/manifests/1", token: server.ownerToken,
                                                    headers: [.accept: "application/vnd.oci.image.index.v1+json"])
                #expect(raw.status == .ok)
                #expect(Digest.of(raw.body, algorithm: .sha256).description == indexDigest)
                let index = try JSONDecoder().decode(OCIManifestDocument.self, from: Data(raw.body))
                let platforms = (index.manifests ?? []).compactMap { $0.platform?.name }
                #expect(platforms == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386"])
                // Provenance (on by default) for each platform: a referrer of that platform's
                // manifest in the tag's repository, whose statement names that platform.
                for entry in index.manifests ?? [] {
                    let digest = try #require(entry.digest)
                    let referrers = try await ImageOutputTests.referrers(server, "\(fixture.projectId)/app", digest)
                    #expect(referrers.count == 1, "\(entry.platform?.name ?? "?"): \(referrers)")
                    if let referrer = referrers.first?["digest"] as? String {
                        let statement = try await ImageOutputTests.statement(server, "\(fixture.projectId)/app", referrer).text
                        #expect(statement.contains("\"platform\":\"\(entry.platform?.name ?? "?")\""), "\(statement.prefix(600))")
                        #expect(statement.contains(String(digest.dropFirst(7))), "the statement's subject is the platform manifest")
                    }
                }

                // Which builder ran what, and how.
                let builds = try await fixture.client.builds(projectId: fixture.projectId).items
                let build = try await fixture.client.build(try #require(builds.first).id)
                #expect(build.digest == indexDigest)
                let jobs = Dictionary(uniqueKeysWithValues: build.jobs.map { ($0.platform, $0) })
                #expect(jobs["linux/amd64"]?.workerName == "native-a" && jobs["linux/amd64"]?.emulated == false)
                #expect(jobs["linux/386"]?.workerName == "native-a" && jobs["linux/386"]?.emulated == false)
                #expect(jobs["linux/arm64"]?.workerName == "emulating-b" && jobs["linux/arm64"]?.emulated == true)
                #expect(jobs["linux/arm/v7"]?.workerName == "emulating-b" && jobs["linux/arm/v7"]?.emulated == true)
                let got = try await runExecutable("drydock", ["builds", "get", build.id, "--api-url", server.baseURL, "--token", server.ownerToken,
                                                              "--format", "json"], environment: ["HOME": dir.path])
                #expect(try APIJSON.decode(Schemas.Build.self, got.stdout).jobs.count == 4)

                // Each platform's own binary ran: read /arch back from its layers; the cross stage ran natively.
                let image = "\(fixture.host)/\(fixture.projectId)/app:1"
                for (platform, machine) in [("linux/arm64", "aarch64"), ("linux/arm/v7", "armv7l"), ("linux/amd64", "x86_64")] {
                    let arch = try await Self.file("arch", of: image, platform: try #require(Platform(platform)), token: server.ownerToken, in: dir)
                    #expect(String(decoding: arch, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == machine, "\(platform)")
                    let cross = try await Self.file("cross", of: image, platform: try #require(Platform(platform)), token: server.ownerToken, in: dir)
                    #expect(String(decoding: cross, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                            == "built on \(Platform.host) for \(platform): x86_64", "\(platform)")
                }
                let busybox386 = try await Self.file("bin/busybox", of: image, platform: try #require(Platform("linux/386")), token: server.ownerToken, in: dir)
                #expect(busybox386.prefix(5) == Data([0x7f, 0x45, 0x4c, 0x46, 0x01]), "the 386 image's busybox is a 32-bit ELF")

                // The same four platforms again: every step cached, on each platform's own cache.
                let again = try await runExecutable("drydock", arguments, environment: ["HOME": dir.path])
                #expect(again.status == 0, "\(again.stderr)")
                let rebuilt = try await fixture.client.build(try #require(try await fixture.client.builds(projectId: fixture.projectId).items.first).id)
                let runs = rebuilt.steps.filter { $0.instruction.hasPrefix("RUN") }
                #expect(runs.count == 8 && runs.allSatisfy(\.cached), "\(rebuilt.steps.map { "\($0.platform) \($0.instruction) \($0.cached)" })")

                // Usage breaks build time down by platform.
                let usage = try await server.request(.get, "/api/v1/orgs/\(server.organizationId)/usage", token: server.ownerToken)
                #expect(Set(try usage.decoded(Schemas.Usage.self).byPlatform?.map(\.platform) ?? [])
                        == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386"], "\(usage.text)")

                let builders = try await runExecutable("drydock", ["builders", "list", "--api-url", server.baseURL, "--token", server.ownerToken,
                                                                   "--format", "json"], environment: ["HOME": dir.path])
                let listed = try APIJSON.decode(Schemas.BuilderList.self, builders.stdout).items
                #expect(listed.first { $0.name == "emulating-b" }?.emulatedPlatforms == ["linux/arm64", "linux/arm/v7"], "\(builders.stdout)")
                #expect(listed.first { $0.name == "native-a" }?.platforms == ["linux/amd64", "linux/386"])
            }
        }
    }

    @Test("a failing platform fails the build naming it, with no index tagged; native-only keeps emulating builders away until the queue timeout")
    func failureAndNativeOnly() async throws {
        try await withTestServer(configure: { $0.emulationFallback = .seconds(0); $0.leaseCheckInterval = .milliseconds(500) }) { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await Self.fixture(server, project: "fails")
                let (a, b) = try await Self.builders(server, dir)
                defer { withExtendedLifetime((a, b)) {} }
                let base = "\(fixture.host)/\(fixture.projectId)/busybox:multi"
                let failing = try await fixture.queue(["Dockerfile": "FROM \(base)\nRUN [ \"$(uname -m)\" != aarch64 ] || (echo no arm64 here; exit 4)\n"]) {
                    .init(contextDigest: $0, platforms: ["linux/amd64", "linux/arm64"], tags: ["broken:1"])
                }
                let failed = try await fixture.finished(failing.id)
                #expect(failed.status == .failed)
                #expect(failed.error?.hasPrefix("linux/arm64: step [2/2]") == true, "\(failed.error ?? "")")
                #expect(failed.digest == nil)
                let tag = try await server.registry(.get, "/v2/\(fixture.projectId)/broken/manifests/1", token: server.ownerToken)
                #expect(tag.status == .notFound, "no index was tagged")

                // native-only: the arm64 job is not given to the emulating builder and fails after the queue timeout.
                let strict = try await runExecutable("drydock", ["projects", "update", "fails", "--emulation", "native-only", "--queue-timeout", "10s",
                                                                 "--api-url", server.baseURL, "--token", server.ownerToken], environment: ["HOME": dir.path])
                #expect(strict.status == 0, "\(strict.stderr)")
                let waiting = try await fixture.queue(["Dockerfile": "FROM \(base)\nRUN true\n"]) { .init(contextDigest: $0, platforms: ["linux/arm64"]) }
                let timedOut = try await fixture.finished(waiting.id, timeout: .seconds(60))
                #expect(timedOut.status == .failed)
                #expect(timedOut.jobs.first?.workerName == nil, "never given to the emulating builder")
                #expect(timedOut.error?.contains("no online builder serves linux/arm64") == true, "\(timedOut.error ?? "")")
            }
        }
    }

    @Test("--push of a multi-platform image to another registry sends each platform's image and the index there, with the user's docker login")
    func pushElsewhere() async throws {
        try await withTestServer { server in
            // This server's first request before the second one starts (see PushTests).
            let fixture = try await Self.fixture(server, project: "pushes")
            try await withTestServer { outside in
                try await withTemporaryDirectory { dir in
                    let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"),
                                                           name: "native", environment: ["DRYDOCK_BUILDER_PLATFORMS": "linux/amd64,linux/386"])
                    defer { withExtendedLifetime(builder) {} }
                    let mirror = try await outside.createProject("mirror")
                    let config = dir.appendingPathComponent("docker")
                    try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
                    let auth = Data("mirror:\(outside.ownerToken)".utf8).base64EncodedString()
                    try #"{"auths":{"127.0.0.1:\#(outside.port)":{"auth":"\#(auth)"}}}"#
                        .write(to: config.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
                    let context = dir.appendingPathComponent("ctx")
                    try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
                    try "FROM \(fixture.host)/\(fixture.projectId)/busybox:multi\nRUN uname -m > /arch\n"
                        .write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
                    let remote = "127.0.0.1:\(outside.port)/\(mirror)/app:multi"
                    let result = try await runExecutable("drydock", [
                        "build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", "pushes", "--progress", "plain",
                        "--platform", "linux/amd64,linux/386", "-t", remote, "--push", context.path,
                    ], environment: ["HOME": dir.path, "DOCKER_CONFIG": config.path])
                    #expect(result.status == 0, "\(result.stderr)\n\(builder.output)")
                    #expect(result.stderr.contains("pushed \(remote)"), "\(result.stderr)")
                    let index = try await outside.registry(.get, "/v2/\(mirror)/app/manifests/multi", token: outside.ownerToken,
                                                           headers: [.accept: "application/vnd.oci.image.index.v1+json"])
                    #expect(index.status == .ok)
                    let document = try JSONDecoder().decode(OCIManifestDocument.self, from: Data(index.body))
                    #expect((document.manifests ?? []).compactMap { $0.platform?.name } == ["linux/amd64", "linux/386"])
                    for manifest in document.manifests ?? [] {
                        let digest = try #require(manifest.digest)
                        let image = try await outside.registry(.get, "/v2/\(mirror)/app/manifests/\(digest)", token: outside.ownerToken,
                                                               headers: [.accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"])
                        #expect(image.status == .ok, "the \(manifest.platform?.name ?? "?") image is there too")
                    }
                }
            }
        }
    }
}
