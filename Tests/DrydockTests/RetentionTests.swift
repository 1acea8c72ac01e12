import DrydockServer
import Foundation
import HTTPTypes
import Testing

extension RegistryProtocolTests {
    @Test("retention: preview and apply delete tags beyond a keep rule, old build images and old untagged manifests, keep referrers of kept images, free their blobs; immutable tags refuse a push that moves them")
    func retention() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("kept")
            let name = "\(project)/app"
            let config = Array(#"{"os":"linux"}"#.utf8)
            let configDigest = try await Self.pushBlob(server, name, config, token: server.ownerToken)
            // One image per tag, each with a layer of its own.
            func image(_ repository: String, _ label: String, subject: (String, Int)? = nil) async throws -> (digest: String, body: [UInt8], layer: String) {
                let path = "\(project)/\(repository)"
                let configHere = try await Self.pushBlob(server, path, config, token: server.ownerToken)
                let layer = Array("layer of \(label)".utf8)
                let layerDigest = try await Self.pushBlob(server, path, layer, token: server.ownerToken)
                let body = Self.manifest(config: configHere, configSize: config.count, layers: [(layerDigest, layer.count)], subject: subject)
                return (sha256(body), body, layerDigest)
            }
            var images: [String: (digest: String, body: [UInt8], layer: String)] = [:]
            for tag in ["v1", "v2", "v3", "release-1"] {
                let made = try await image("app", tag)
                #expect(try await Self.putManifest(server, "/v2/\(name)/manifests/\(tag)", made.body).status == .created)
                images[tag] = made
            }
            let orphan = try await image("app", "orphan")
            #expect(try await Self.putManifest(server, "/v2/\(name)/manifests/\(orphan.digest)", orphan.body).status == .created)
            let v3 = try #require(images["v3"])
            let signature = try await image("app", "signature", subject: (v3.digest, v3.body.count))
            #expect(try await Self.putManifest(server, "/v2/\(name)/manifests/\(signature.digest)", signature.body).status == .created)
            let oldBuild = try await image("build", "old build")
            #expect(try await Self.putManifest(server, "/v2/\(project)/build/manifests/oldbuild00000000", oldBuild.body).status == .created)
            let newBuild = try await image("build", "new build")
            #expect(try await Self.putManifest(server, "/v2/\(project)/build/manifests/newbuild00000000", newBuild.body).status == .created)
            _ = configDigest
            // Ages: v1 oldest of the v* tags; everything pushed a month ago except the new build.
            try await TestDatabase.execute(server.database, "UPDATE registry_manifests SET created_at = now() - interval '30 days'")
            try await TestDatabase.execute(server.database, "UPDATE registry_tags SET updated_at = now() - interval '20 days' WHERE name = 'v1'")
            try await TestDatabase.execute(server.database, "UPDATE registry_tags SET updated_at = now() - interval '10 days' WHERE name IN ('v2', 'oldbuild00000000')")

            let env = ["HOME": server.dataDirectory.path, "DRYDOCK_API_URL": server.baseURL, "DRYDOCK_TOKEN": server.ownerToken, "DRYDOCK_PROJECT": project]
            let set = try await runExecutable("drydock", ["registry", "retention", "set", "--untagged-days", "7", "--build-tag-days", "7",
                                                          "--keep", "v*=2", "--immutable", "release-*"], environment: env)
            #expect(set.status == 0, "\(set.stderr)")
            #expect(set.stdout.contains("v*=2") && set.stdout.contains("release-*"), "\(set.stdout)")
            let bad = try await runExecutable("drydock", ["registry", "retention", "set", "--keep", "v*"], environment: env)
            #expect(bad.status != 0 && bad.stderr.contains("PATTERN=COUNT"), "\(bad.stderr)")

            // Immutable: moving release-1 is refused with DENIED; pushing the same manifest again is fine.
            let moved = try await Self.putManifest(server, "/v2/\(name)/manifests/release-1", orphan.body)
            #expect(moved.status == .forbidden && Self.errorCode(moved.body) == "DENIED", "\(String(decoding: moved.body, as: UTF8.self))")
            let release = try #require(images["release-1"])
            #expect(try await Self.putManifest(server, "/v2/\(name)/manifests/release-1", release.body).status == .created)

            let preview = try await runExecutable("drydock", ["registry", "retention", "preview", "--format", "json"], environment: env)
            #expect(preview.status == 0, "\(preview.stderr)")
            let planned = try JSONSerialization.jsonObject(with: Data(preview.stdout.utf8)) as? [String: Any]
            let tags = Set((planned?["tags"] as? [[String: Any]] ?? []).map { "\($0["repository"] ?? ""):\($0["tag"] ?? "")" })
            #expect(tags == ["app:v1", "build:oldbuild00000000"], "\(preview.stdout)")
            let manifests = Set((planned?["manifests"] as? [[String: Any]] ?? []).compactMap { $0["digest"] as? String })
            let v1 = try #require(images["v1"])
            #expect(manifests == [orphan.digest, v1.digest, oldBuild.digest],
                    "the orphan, v1's image and the old build go; the signature of v3 stays: \(preview.stdout)")
            let table = try await runExecutable("drydock", ["registry", "retention", "preview"], environment: env)
            #expect(table.stdout.contains("beyond the newest 2 tags matching v*"), "\(table.stdout)")

            // Applied by housekeeping; the blobs only those images used are then collected.
            let blobs = try FileSystemBlobStore(root: server.dataDirectory)
            try await ServerRunner.withDatabase(server.database, logger: TestDatabase.logger) { client in
                let janitor = RegistryJanitor(store: RegistryStore(client: client, logger: TestDatabase.logger), blobs: blobs, logger: TestDatabase.logger)
                try await client.query("UPDATE registry_repository_blobs SET created_at = now() - interval '2 hours'", logger: TestDatabase.logger)
                try await client.query("UPDATE registry_blobs SET created_at = now() - interval '2 hours'", logger: TestDatabase.logger)
                let swept = try await janitor.sweep()
                #expect(swept.blobs == 3, "the layers of the orphan, v1 and the old build")
            }
            let list = try await server.registry(.get, "/v2/\(name)/tags/list", token: server.ownerToken)
            let listed = String(decoding: list.body, as: UTF8.self)
            #expect(!listed.contains(#""v1""#) && listed.contains(#""v2""#) && listed.contains(#""v3""#) && listed.contains(#""release-1""#), "\(listed)")
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/\(v1.digest)", token: server.ownerToken).status == .notFound)
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/\(signature.digest)", token: server.ownerToken).status == .ok)
            let v1Layer = try #require(Digest(v1.layer)), v3Layer = try #require(Digest(v3.layer))
            #expect(try await blobs.size(of: v1Layer) == nil)
            #expect(try await blobs.size(of: v3Layer) != nil)
            let after = try await runExecutable("drydock", ["registry", "retention", "preview"], environment: env)
            #expect(after.stdout.contains("deletes nothing now"), "\(after.stdout)")
        }
    }
}
