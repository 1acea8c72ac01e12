import DrydockBuilder
import DrydockClient
import DrydockProcess
import DrydockServer
import Foundation
import Testing

/// What an image carries (issue 18): provenance and SBOM referrers, zstd layers, annotations,
/// the Dockerfile lint, and the refusals of what cannot be served.
@Suite("Image outputs and attestations", .serialized)
struct ImageOutputTests {
    /// The referrers of `digest` in `repository` (the OCI referrers API).
    static func referrers(_ server: TestServer, _ repository: String, _ digest: String) async throws -> [[String: Any]] {
        let response = try await server.registry(.get, "/v2/\(repository)/referrers/\(digest)", token: server.ownerToken)
        try #require(response.status == .ok, "\(response.status) \(String(decoding: response.body, as: UTF8.self))")
        let index = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return index?["manifests"] as? [[String: Any]] ?? []
    }

    /// The in-toto statement a referrer carries (its one layer).
    static func statement(_ server: TestServer, _ repository: String, _ referrer: String) async throws -> (text: String, json: [String: Any]) {
        let manifest = try await server.registry(.get, "/v2/\(repository)/manifests/\(referrer)", token: server.ownerToken,
                                                 headers: [.accept: "application/vnd.oci.image.manifest.v1+json"])
        let document = try #require(try JSONSerialization.jsonObject(with: Data(manifest.body)) as? [String: Any])
        let subject = document["subject"] as? [String: Any]
        #expect(subject?["digest"] != nil)
        let layer = try #require((document["layers"] as? [[String: Any]])?.first)
        #expect(layer["mediaType"] as? String == "application/vnd.in-toto+json")
        let blob = try await server.registry(.get, "/v2/\(repository)/blobs/\(layer["digest"] as? String ?? "")", token: server.ownerToken)
        let text = String(decoding: blob.body, as: UTF8.self)
        return (text, try #require(try JSONSerialization.jsonObject(with: Data(blob.body)) as? [String: Any]))
    }

    static func manifestDigest(_ server: TestServer, _ repository: String, _ reference: String) async throws -> (digest: String, json: [String: Any]) {
        let response = try await server.registry(.get, "/v2/\(repository)/manifests/\(reference)", token: server.ownerToken,
                                                 headers: [.accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"])
        try #require(response.status == .ok, "\(reference): \(response.status)")
        let digest = try #require(response.headers[.init("Docker-Content-Digest")!])
        return (digest, try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]))
    }

    static func write(_ files: [String: String], to directory: URL) throws {
        for (path, content) in files {
            let url = directory.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try content.write(to: url, atomically: true, encoding: .utf8)
        }
    }

    /// A few real paragraphs of this machine's dpkg database (Debian's own metadata), as an image
    /// built from Debian packages has it.
    static func debianStatus() throws -> (text: String, packages: [(String, String)]) {
        let status = try String(contentsOfFile: "/var/lib/dpkg/status", encoding: .utf8)
        var chosen: [String] = []
        var packages: [(String, String)] = []
        for paragraph in status.components(separatedBy: "\n\n") {
            let lines = paragraph.split(separator: "\n")
            guard let name = lines.first(where: { $0.hasPrefix("Package: ") })?.dropFirst(9),
                  let version = lines.first(where: { $0.hasPrefix("Version: ") })?.dropFirst(9),
                  ["libc6", "busybox-static", "skopeo", "haproxy"].contains(String(name)) else { continue }
            chosen.append(paragraph)
            packages.append((String(name), String(version)))
        }
        return (chosen.joined(separator: "\n\n") + "\n", packages)
    }

    @Test("provenance by default: a referrer of the platform manifest naming the context and the base image by digest, no secret value; a cached rebuild of the same image adds no second one; --provenance=false: none; --sbom=true: dpkg, apk and Python packages; annotations on the manifest")
    func attestations() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "attest")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                defer { builder.kill9() }
                let (status, debian) = try Self.debianStatus()
                try #require(debian.count >= 2, "this machine's dpkg database lacks the packages the test reads")
                let context = dir.appendingPathComponent("app")
                try Self.write([
                    "Dockerfile": """
                        FROM \(fixture.base)
                        ARG FLAVOUR=plain
                        COPY status /var/lib/dpkg/status
                        COPY installed /lib/apk/db/installed
                        COPY METADATA /usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA
                        RUN --mount=type=secret,id=token test -s /run/secrets/token && echo "$FLAVOUR" > /flavour
                        """,
                    "status": status,
                    "installed": "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nC:Q1def=\nP:zlib\nV:1.3-r0\nA:x86_64\n",
                    "METADATA": "Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\n\nlong description\n",
                ], to: context)
                let secretValue = "s3cr3t-\(UUID().uuidString)"
                let secretFile = dir.appendingPathComponent("token")
                try secretValue.write(to: secretFile, atomically: true, encoding: .utf8)
                func build(_ extra: [String], tag: String) async throws -> CommandResult {
                    try await runExecutable("drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId,
                                                        "-t", "app:\(tag)", "--build-arg", "FLAVOUR=\(tag)", "--secret", "id=token,src=\(secretFile.path)",
                                                        "--progress", "plain"] + extra + [context.path], environment: ["HOME": dir.path])
                }
                let repository = "\(fixture.projectId)/app"
                let baseDigest = try await Self.manifestDigest(server, "\(fixture.projectId)/busybox", "latest").digest

                // Default: provenance (min) attached to the platform manifest.
                let plain = try await build(["--annotation", "org.opencontainers.image.description=<b>built</b>",
                                             "--annotation", "manifest:org.example.team=web"], tag: "min")
                try #require(plain.status == 0, "\(plain.stderr)\n\(builder.output.suffix(3000))")
                let image = try await Self.manifestDigest(server, repository, "min")
                let annotations = image.json["annotations"] as? [String: String] ?? [:]
                #expect(annotations["org.opencontainers.image.description"] == "<b>built</b>" && annotations["org.example.team"] == "web", "\(image.json)")
                let listed = try await Self.referrers(server, repository, image.digest)
                #expect(listed.count == 1, "\(listed)")
                let provenance = try #require(listed.first)
                #expect(provenance["artifactType"] as? String == "application/vnd.in-toto+json")
                #expect((provenance["annotations"] as? [String: String])?["in-toto.io/predicate-type"] == "https://slsa.dev/provenance/v1")
                let (text, statement) = try await Self.statement(server, repository, provenance["digest"] as? String ?? "")
                #expect(statement["predicateType"] as? String == "https://slsa.dev/provenance/v1")
                let subjects = statement["subject"] as? [[String: Any]] ?? []
                #expect((subjects.first?["digest"] as? [String: String])?["sha256"] == String(image.digest.dropFirst(7)))
                let predicate = statement["predicate"] as? [String: Any] ?? [:]
                let definition = predicate["buildDefinition"] as? [String: Any] ?? [:]
                let dependencies = definition["resolvedDependencies"] as? [[String: Any]] ?? []
                let dependencyDigests = dependencies.compactMap { ($0["digest"] as? [String: String])?["sha256"] }
                let contextDigest = try #require(text.range(of: #"contexts/[0-9a-f]{64}"#, options: .regularExpression).map { String(text[$0].suffix(64)) })
                #expect(dependencyDigests.contains(contextDigest), "the context is a material: \(dependencies)")
                #expect(dependencyDigests.contains(String(baseDigest.dropFirst(7))), "the base image \(baseDigest) is a material: \(dependencies)")
                let request = (definition["externalParameters"] as? [String: Any])?["request"] as? [String: Any] ?? [:]
                #expect((request["args"] as? [String: String])?["FLAVOUR"] == "min")
                #expect(request["platform"] as? String != nil)
                #expect(!text.contains(secretValue), "a secret's value is in the provenance")
                #expect(!text.contains("dockerfileSource"), "min mode carries no Dockerfile")
                let metadata = (predicate["runDetails"] as? [String: Any])?["metadata"] as? [String: String] ?? [:]
                #expect(metadata["startedOn"] != nil && metadata["finishedOn"] != nil)

                // A rebuild that makes the same image (every step cached) adds no second provenance:
                // the image keeps the one it has, and the build's log says so.
                let again = try await build(["--annotation", "org.opencontainers.image.description=<b>built</b>",
                                             "--annotation", "manifest:org.example.team=web"], tag: "min")
                try #require(again.status == 0, "\(again.stderr)\n\(builder.output.suffix(3000))")
                #expect(try await Self.manifestDigest(server, repository, "min").digest == image.digest, "the cached rebuild made another image")
                #expect(try await Self.referrers(server, repository, image.digest).map { $0["digest"] as? String } == [provenance["digest"] as? String])
                #expect((again.stdout + again.stderr).contains("carries one from an earlier build already"), "\(again.stderr.suffix(2000))")

                // mode=max: the Dockerfile and the steps too. --provenance=false: nothing attached.
                let max = try await build(["--provenance=mode=max"], tag: "max")
                try #require(max.status == 0, "\(max.stderr)")
                let maxDigest = try await Self.manifestDigest(server, repository, "max").digest
                let maxReferrer = try #require(try await Self.referrers(server, repository, maxDigest).first)
                let maxText = try await Self.statement(server, repository, maxReferrer["digest"] as? String ?? "").text
                #expect(maxText.contains("dockerfileSource") && maxText.contains("byproducts"), "\(maxText.prefix(2000))")
                let none = try await build(["--provenance=false"], tag: "none")
                try #require(none.status == 0, "\(none.stderr)")
                let noneDigest = try await Self.manifestDigest(server, repository, "none").digest
                #expect(try await Self.referrers(server, repository, noneDigest).isEmpty)

                // --sbom=true (and --attest type=provenance,disabled=true): only the SBOM.
                let withSBOM = try await build(["--sbom=true", "--attest", "type=provenance,disabled=true"], tag: "sbom")
                try #require(withSBOM.status == 0, "\(withSBOM.stderr)\n\(builder.output.suffix(3000))")
                let sbomDigest = try await Self.manifestDigest(server, repository, "sbom").digest
                let sbomReferrers = try await Self.referrers(server, repository, sbomDigest)
                #expect(sbomReferrers.count == 1)
                let sbomReferrer = try #require(sbomReferrers.first)
                #expect((sbomReferrer["annotations"] as? [String: String])?["in-toto.io/predicate-type"] == "https://spdx.dev/Document")
                let sbom = try await Self.statement(server, repository, sbomReferrer["digest"] as? String ?? "").json
                let document = sbom["predicate"] as? [String: Any] ?? [:]
                #expect(document["spdxVersion"] as? String == "SPDX-2.3")
                let packages = (document["packages"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", $0["versionInfo"] as? String ?? "") }
                for (name, version) in debian {
                    #expect(packages.contains { $0 == (name, version) }, "\(name) \(version) is missing from \(packages)")
                }
                #expect(packages.contains { $0 == ("musl", "1.2.4-r2") } && packages.contains { $0 == ("zlib", "1.3-r0") }, "apk: \(packages)")
                #expect(packages.contains { $0 == ("requests", "2.28.1") }, "python: \(packages)")
                let purls = (document["packages"] as? [[String: Any]] ?? []).flatMap { ($0["externalRefs"] as? [[String: Any]] ?? []).compactMap { $0["referenceLocator"] as? String } }
                #expect(purls.contains { $0.hasPrefix("pkg:deb/") } && purls.contains { $0.hasPrefix("pkg:apk/") } && purls.contains("pkg:pypi/requests@2.28.1"))
            }
        }
    }

    @Test("--output compression=zstd: every layer is tar+zstd and the image runs under buildah; the level changes the size; compression=estargz: every layer carries its TOC digest, reads back and runs under a plain client; refused combinations each say why")
    func zstd() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "zstd")
                let builder = try await BuilderProcess(server: server, token: try await workerToken(server), cache: dir.appendingPathComponent("cache"), name: "b1")
                defer { builder.kill9() }
                let context = dir.appendingPathComponent("app")
                // Compressible data, so the level shows in the size.
                try Self.write(["Dockerfile": "FROM \(fixture.base)\nRUN seq 1 200000 > /numbers && echo ok > /ok\n"], to: context)
                func build(_ output: String, tag: String) async throws -> CommandResult {
                    try await runExecutable("drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId,
                                                        "--provenance=false", "--progress", "plain",
                                                        "--output", "type=image,name=app:\(tag),\(output)", context.path], environment: ["HOME": dir.path])
                }
                let repository = "\(fixture.projectId)/app"
                var sizes: [Int] = []
                for level in [1, 19] {
                    let built = try await build("compression=zstd,compression-level=\(level),force-compression=true,oci-mediatypes=true", tag: "zstd\(level)")
                    try #require(built.status == 0, "\(built.stderr)\n\(builder.output.suffix(3000))")
                    let manifest = try await Self.manifestDigest(server, repository, "zstd\(level)").json
                    let layers = manifest["layers"] as? [[String: Any]] ?? []
                    #expect(!layers.isEmpty && layers.allSatisfy { $0["mediaType"] as? String == "application/vnd.oci.image.layer.v1.tar+zstd" }, "\(layers)")
                    sizes.append(layers.last?["size"] as? Int ?? 0)
                }
                #expect(sizes[0] > sizes[1], "level 19 is smaller than level 1: \(sizes)")

                // eStargz: every layer converted (the TOC annotation on each), read back here with
                // the same checker: footer, TOC digest, every chunk; the config's diff_ids follow.
                let converted = try await build("compression=estargz,oci-mediatypes=true", tag: "estargz")
                try #require(converted.status == 0, "\(converted.stderr)\n\(builder.output.suffix(3000))")
                let estargz = try await Self.manifestDigest(server, repository, "estargz").json
                let estargzLayers = estargz["layers"] as? [[String: Any]] ?? []
                let checker = dir.appendingPathComponent("estargz.py")
                try EStargz.script.write(to: checker, atomically: true, encoding: .utf8)
                let configDigest = (estargz["config"] as? [String: Any])?["digest"] as? String ?? ""
                let config = try await server.registry(.get, "/v2/\(repository)/blobs/\(configDigest)", token: server.ownerToken)
                let diffIDs = ((try JSONSerialization.jsonObject(with: Data(config.body)) as? [String: Any])?["rootfs"] as? [String: Any])?["diff_ids"] as? [String] ?? []
                #expect(diffIDs.count == estargzLayers.count && !estargzLayers.isEmpty)
                for (i, layer) in estargzLayers.enumerated() {
                    #expect(layer["mediaType"] as? String == "application/vnd.oci.image.layer.v1.tar+gzip")
                    let toc = (layer["annotations"] as? [String: String])?[EStargz.tocAnnotation]
                    #expect(toc?.hasPrefix("sha256:") == true, "layer \(i) has no TOC annotation: \(layer)")
                    let blob = try await server.registry(.get, "/v2/\(repository)/blobs/\(layer["digest"] as? String ?? "")", token: server.ownerToken)
                    let file = dir.appendingPathComponent("layer-\(i).gz")
                    try Data(blob.body).write(to: file)
                    let verified = try await runTool("python3", [checker.path, "verify", file.path])
                    #expect(verified.status == 0 && verified.stdout.contains(toc ?? "-"), "\(verified.stdout) \(verified.stderr)")
                    let unpacked = try await runTool("sh", ["-c", "zcat \(file.path) | sha256sum"])
                    #expect(i < diffIDs.count && unpacked.stdout.hasPrefix(String(diffIDs[i].dropFirst(7))), "diff_id \(i)")
                }

                // It runs under buildah (which decompresses zstd) as pulled from the registry.
                let storage = dir.appendingPathComponent("storage").path
                let root = ["--root", storage, "--runroot", storage + "-run", "--storage-driver", "vfs"]
                let from = try await runTool("buildah", root + ["from", "--tls-verify=false", "--creds", "ci:\(server.ownerToken)",
                                                                "docker://127.0.0.1:\(server.port)/\(repository):zstd19"])
                try #require(from.status == 0, "\(from.stderr)")
                let container = from.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.map(String.init) ?? ""
                let run = try await runTool("buildah", root + ["run", "--isolation", "chroot", container, "--", "/bin/cat", "/ok"])
                #expect(run.status == 0 && run.stdout.contains("ok"), "\(run.stderr)")
                // The eStargz image too, by a client that knows nothing of the format.
                let fromEstargz = try await runTool("buildah", root + ["from", "--tls-verify=false", "--creds", "ci:\(server.ownerToken)",
                                                                       "docker://127.0.0.1:\(server.port)/\(repository):estargz"])
                try #require(fromEstargz.status == 0, "\(fromEstargz.stderr)")
                let estargzContainer = fromEstargz.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.map(String.init) ?? ""
                let runEstargz = try await runTool("buildah", root + ["run", "--isolation", "chroot", estargzContainer, "--", "/bin/cat", "/ok"])
                #expect(runEstargz.status == 0 && runEstargz.stdout.contains("ok"), "\(runEstargz.stderr)")
                _ = try? await runTool("buildah", root + ["rm", "--all"])
                try? FileManager.default.removeItem(atPath: storage)

                // Each refused combination, in its own words, before anything is uploaded.
                let refusals: [(String, String)] = [
                    ("compression=estargz,oci-mediatypes=false", "estargz needs oci-mediatypes=true"),
                    ("compression=zstd,oci-mediatypes=false", "needs oci-mediatypes=true"),
                    ("compression=brotli", "compression is one of"),
                    ("compression-level=3", "compression-level needs compression"),
                ]
                for (output, message) in refusals {
                    let refused = try await build(output, tag: "refused")
                    #expect(refused.status != 0 && refused.stderr.contains(message), "\(output): \(refused.stderr)")
                    #expect(!refused.stderr.contains("uploading"))
                }
                let index = try await runExecutable("drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId,
                                                                "--annotation", "index:a=b", context.path], environment: ["HOME": dir.path])
                #expect(index.status != 0 && index.stderr.contains("index annotations need a multi-platform build"), "\(index.stderr)")
                let attest = try await runExecutable("drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", fixture.projectId,
                                                                 "--attest", "type=vex", context.path], environment: ["HOME": dir.path])
                #expect(attest.status != 0 && attest.stderr.contains("--attest type=vex is not supported"), "\(attest.stderr)")
                // The API refuses what the CLI would have (another client sending it).
                let api = try await server.request(.post, "/api/v1/projects/\(fixture.projectId)/builds", token: server.ownerToken,
                                                   json: #"{"contextDigest":"sha256:\#(String(repeating: "0", count: 64))","imageFormat":{"compression":"estargz","ociMediaTypes":false}}"#)
                #expect(api.status == .badRequest || api.status == .unprocessableContent, "\(api.status)")
                #expect(api.text.contains("estargz needs oci-mediatypes=true"), "\(api.text)")
            }
        }
    }

    @Test("--lint prints buildx's findings with their lines; --lint-fail-on=warning stops before anything is uploaded")
    func lint() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let projectId = try await server.createProject("lint")
                let context = dir.appendingPathComponent("app")
                try Self.write(["Dockerfile": "FROM $BASE as build\nMAINTAINER me\ncmd echo hi\nFROM busybox AS build\n"], to: context)
                let failed = try await runExecutable("drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", projectId,
                                                                 "--lint-fail-on=warning", context.path], environment: ["HOME": dir.path])
                #expect(failed.status != 0)
                for rule in ["UndefinedArgInFrom", "FromAsCasing", "MaintainerDeprecated", "JSONArgsRecommended", "ConsistentInstructionCasing", "DuplicateStageName"] {
                    #expect(failed.stderr.contains(rule), "\(rule) missing: \(failed.stderr)")
                }
                #expect(failed.stderr.contains("line 2") && failed.stderr.contains("the build was not started"))
                #expect(!failed.stderr.contains("uploading"))
                // error level: warnings alone do not stop it; it goes on (here to a project that does not exist).
                let goes = try await runExecutable("drydock", ["build", "--api-url", server.baseURL, "--token", server.ownerToken, "--project", "nosuchproject",
                                                               "--lint-fail-on=error", "--progress", "plain", context.path], environment: ["HOME": dir.path])
                #expect(goes.stderr.contains("MaintainerDeprecated") && !goes.stderr.contains("the build was not started"), "\(goes.stderr)")
                #expect(goes.stderr.lowercased().contains("nosuchproject"), "\(goes.stderr)")
            }
        }
    }
}
