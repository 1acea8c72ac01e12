import Crypto
import DrydockServer
import Foundation
import HTTPTypes
import NIOCore
import Testing

func sha256(_ bytes: [UInt8]) -> String {
    "sha256:" + SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

extension HTTPField.Name {
    static let dockerContentDigest = HTTPField.Name("Docker-Content-Digest")!
    static let ociSubject = HTTPField.Name("OCI-Subject")!
}

/// The registry's protocol, driven request by request, especially its error paths.
@Suite("Registry protocol")
struct RegistryProtocolTests {
    static func errorCode(_ body: [UInt8]) -> String? {
        (try? JSONDecoder().decode(OCIErrors.self, from: Data(body)))?.errors.first?.code
    }

    /// Pushes a blob in one POST; returns its digest.
    static func pushBlob(_ server: TestServer, _ name: String, _ bytes: [UInt8], token: String) async throws -> String {
        let digest = sha256(bytes)
        let response = try await server.registry(.post, "/v2/\(name)/blobs/uploads/?digest=\(digest)", token: token, body: bytes)
        try #require(response.status == .created, "push blob: \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        return digest
    }

    /// PUTs an OCI image manifest with the owner's token.
    static func putManifest(_ server: TestServer, _ path: String, _ body: [UInt8]) async throws
        -> (status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8])
    {
        try await server.registry(.put, path, token: server.ownerToken, body: body,
                                  headers: [.contentType: "application/vnd.oci.image.manifest.v1+json"])
    }

    static func manifest(config: String, configSize: Int, layers: [(String, Int)], subject: (String, Int)? = nil, artifactType: String? = nil) -> [UInt8] {
        var object: [String: Any] = [
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": ["mediaType": artifactType == nil ? "application/vnd.oci.image.config.v1+json" : "application/vnd.oci.empty.v1+json",
                       "digest": config, "size": configSize],
            "layers": layers.map { ["mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": $0.0, "size": $0.1] },
        ]
        if let subject { object["subject"] = ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.0, "size": subject.1] }
        if let artifactType { object["artifactType"] = artifactType }
        return Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    @Test("anonymous requests get 401 with a Bearer challenge naming the token realm")
    func anonymous() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let root = try await server.registry(.get, "/v2/")
            #expect(root.status == .unauthorized)
            #expect(root.headers[.wwwAuthenticate]?.contains(#"Bearer realm="http://"#) == true)
            #expect(root.headers[.wwwAuthenticate]?.contains(#"/v2/token",service="drydock""#) == true)
            let blob = try await server.registry(.get, "/v2/\(project)/app/manifests/latest")
            #expect(blob.status == .unauthorized)
            #expect(blob.headers[.wwwAuthenticate]?.contains("scope=\"repository:\(project)/app:pull,push\"") == true)
            #expect(Self.errorCode(blob.body) == "UNAUTHORIZED")
            let ok = try await server.registry(.get, "/v2/", token: server.ownerToken)
            #expect(ok.status == .ok)
        }
    }

    @Test("monolithic and chunked uploads, digest verification, ranges, and out-of-order chunks")
    func uploads() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let bytes = Array("hello, drydock registry".utf8)
            let digest = try await Self.pushBlob(server, name, bytes, token: server.ownerToken)

            let head = try await server.registry(.head, "/v2/\(name)/blobs/\(digest)", token: server.ownerToken)
            #expect(head.status == .ok)
            #expect(head.headers[.contentLength] == "\(bytes.count)")
            #expect(head.headers[.dockerContentDigest] == digest)
            let get = try await server.registry(.get, "/v2/\(name)/blobs/\(digest)", token: server.ownerToken)
            #expect(get.body == bytes)
            let range = try await server.registry(.get, "/v2/\(name)/blobs/\(digest)", token: server.ownerToken, headers: [.range: "bytes=7-13"])
            #expect(range.status == .partialContent)
            #expect(String(decoding: range.body, as: UTF8.self) == "drydock")
            #expect(range.headers[.contentRange] == "bytes 7-13/\(bytes.count)")

            // Wrong digest: refused, and nothing becomes visible.
            let wrong = sha256(Array("something else".utf8))
            let bad = try await server.registry(.post, "/v2/\(name)/blobs/uploads/?digest=\(wrong)", token: server.ownerToken, body: bytes)
            #expect(bad.status == .badRequest)
            #expect(Self.errorCode(bad.body) == "DIGEST_INVALID")
            let missing = try await server.registry(.head, "/v2/\(name)/blobs/\(wrong)", token: server.ownerToken)
            #expect(missing.status == .notFound)

            // Chunked, in order; then a chunk out of order answers 416.
            let start = try await server.registry(.post, "/v2/\(name)/blobs/uploads/", token: server.ownerToken)
            #expect(start.status == .accepted)
            let location = try #require(start.headers[.location])
            let big = (0..<100_000).map { UInt8($0 % 251) }
            let first = try await server.registry(.patch, location, token: server.ownerToken, body: Array(big[0..<60_000]),
                                                  headers: [.contentRange: "0-59999", .contentType: "application/octet-stream"])
            #expect(first.status == .accepted)
            #expect(first.headers[.range] == "0-59999")
            let outOfOrder = try await server.registry(.patch, location, token: server.ownerToken, body: Array(big[70_000...]),
                                                       headers: [.contentRange: "70000-99999"])
            #expect(outOfOrder.status == .rangeNotSatisfiable)
            let status = try await server.registry(.get, location, token: server.ownerToken)
            #expect(status.status == .noContent)
            #expect(status.headers[.range] == "0-59999")
            let close = try await server.registry(.put, "\(location)?digest=\(sha256(big))", token: server.ownerToken, body: Array(big[60_000...]),
                                                  headers: [.contentRange: "60000-99999"])
            #expect(close.status == .created)
            let back = try await server.registry(.get, "/v2/\(name)/blobs/\(sha256(big))", token: server.ownerToken)
            #expect(back.body == big)

            // Cancel.
            let other = try await server.registry(.post, "/v2/\(name)/blobs/uploads/", token: server.ownerToken)
            let otherLocation = try #require(other.headers[.location])
            #expect(try await server.registry(.delete, otherLocation, token: server.ownerToken).status == .noContent)
            #expect(try await server.registry(.get, otherLocation, token: server.ownerToken).status == .notFound)
        }
    }

    @Test("a closing chunked PUT whose chunk is out of order answers 416 with the upload's Range, and the upload goes on")
    func outOfOrderClosingPut() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let big = (0..<50_000).map { UInt8($0 % 253) }
            let start = try await server.registry(.post, "/v2/\(name)/blobs/uploads/", token: server.ownerToken)
            let location = try #require(start.headers[.location])
            let first = try await server.registry(.patch, location, token: server.ownerToken, body: Array(big[0..<20_000]),
                                                  headers: [.contentRange: "0-19999", .contentType: "application/octet-stream"])
            #expect(first.status == .accepted)
            // The last chunk sent with the PUT, but skipping bytes 20,000–29,999.
            let skipped = try await server.registry(.put, "\(location)?digest=\(sha256(big))", token: server.ownerToken,
                                                    body: Array(big[30_000...]), headers: [.contentRange: "30000-49999"])
            #expect(skipped.status == .rangeNotSatisfiable, "\(skipped.status) \(String(decoding: skipped.body, as: UTF8.self))")
            #expect(skipped.headers[.range] == "0-19999")
            #expect(Self.errorCode(skipped.body) == "BLOB_UPLOAD_INVALID")
            // Nothing was appended: the right chunk then closes the upload.
            let close = try await server.registry(.put, "\(location)?digest=\(sha256(big))", token: server.ownerToken,
                                                  body: Array(big[20_000...]), headers: [.contentRange: "20000-49999"])
            #expect(close.status == .created)
            #expect(try await server.registry(.get, "/v2/\(name)/blobs/\(sha256(big))", token: server.ownerToken).body == big)
        }
    }

    @Test("a manifest whose non-distributable (foreign) layers were never pushed is stored, read by tag and digest, and tagged; a missing ordinary layer is still refused")
    func foreignLayers() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let config = Array(#"{"architecture":"amd64","os":"windows"}"#.utf8)
            let configDigest = try await Self.pushBlob(server, name, config, token: server.ownerToken)
            let layer = Array("a layer pushed".utf8)
            let layerDigest = try await Self.pushBlob(server, name, layer, token: server.ownerToken)
            let foreign = sha256(Array("never pushed".utf8))
            func manifest(foreignType: String) -> [UInt8] {
                let object: [String: Any] = [
                    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": config.count],
                    "layers": [
                        ["mediaType": foreignType, "digest": foreign, "size": 12, "urls": ["https://example.com/layer"]],
                        ["mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layerDigest, "size": layer.count],
                    ],
                ]
                return Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
            }
            for (tag, type) in [("oci", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
                                ("docker", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")] {
                let body = manifest(foreignType: type)
                let put = try await Self.putManifest(server, "/v2/\(name)/manifests/\(tag)", body)
                #expect(put.status == .created, "\(type): \(put.status) \(String(decoding: put.body, as: UTF8.self))")
                #expect(try await server.registry(.get, "/v2/\(name)/manifests/\(tag)", token: server.ownerToken).body == body)
                #expect(try await server.registry(.get, "/v2/\(name)/manifests/\(sha256(body))", token: server.ownerToken).body == body)
            }
            let tags = try await server.registry(.get, "/v2/\(name)/tags/list", token: server.ownerToken)
            #expect(String(decoding: tags.body, as: UTF8.self).contains(#""oci""#) && String(decoding: tags.body, as: UTF8.self).contains(#""docker""#))
            // An ordinary layer that was never pushed is still refused.
            let missing = manifest(foreignType: "application/vnd.oci.image.layer.v1.tar+gzip")
            let refused = try await Self.putManifest(server, "/v2/\(name)/manifests/broken", missing)
            #expect(refused.status == .badRequest && Self.errorCode(refused.body) == "MANIFEST_BLOB_UNKNOWN")
        }
    }

    @Test("a manifest declaring sizes whose sum overflows (Int64.max for its config and layers) is listed with the largest size, and the server stays up")
    func hugeDeclaredSizes() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let config = Array(#"{"os":"linux"}"#.utf8)
            let configDigest = try await Self.pushBlob(server, name, config, token: server.ownerToken)
            // Sizes are the client's word (the blobs are not read to check them): the config,
            // pushed, declared as Int64.max, and again as a layer. Listing the tags added these up
            // and trapped: the server died.
            let body = Self.manifest(config: configDigest, configSize: Int.max, layers: [(configDigest, Int.max)])
            let put = try await Self.putManifest(server, "/v2/\(name)/manifests/huge", body)
            #expect(put.status == .created, "\(String(decoding: put.body, as: UTF8.self))")
            let tags = try await server.request(.get, "/api/v1/projects/\(project)/registry/tags?repository=app", token: server.ownerToken)
            #expect(tags.status == .ok, "\(tags.text)")
            let items = (try JSONSerialization.jsonObject(with: Data(tags.text.utf8)) as? [String: Any])?["items"] as? [[String: Any]] ?? []
            #expect((items.first { $0["name"] as? String == "huge" }?["sizeBytes"] as? NSNumber)?.int64Value == Int64.max, "\(tags.text)")
            #expect(try await server.request(.get, "/healthz").status == .ok)
        }
    }

    @Test("a referrer with a subject but no artifactType is listed, with its config's media type as artifactType, and filters by it")
    func referrerWithoutArtifactType() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let config = Array(#"{"os":"linux"}"#.utf8)
            let configDigest = try await Self.pushBlob(server, name, config, token: server.ownerToken)
            let image = Self.manifest(config: configDigest, configSize: config.count, layers: [])
            #expect(try await Self.putManifest(server, "/v2/\(name)/manifests/v1", image).status == .created)
            // An image manifest (image config, no artifactType) that refers to v1.
            let referrer = Self.manifest(config: configDigest, configSize: config.count, layers: [], subject: (sha256(image), image.count))
            let put = try await Self.putManifest(server, "/v2/\(name)/manifests/\(sha256(referrer))", referrer)
            #expect(put.status == .created)
            #expect(put.headers[.ociSubject] == sha256(image))
            let list = try await server.registry(.get, "/v2/\(name)/referrers/\(sha256(image))", token: server.ownerToken)
            let index = try JSONSerialization.jsonObject(with: Data(list.body)) as? [String: Any]
            let manifests = index?["manifests"] as? [[String: Any]] ?? []
            #expect(manifests.count == 1 && manifests.first?["digest"] as? String == sha256(referrer), "\(String(decoding: list.body, as: UTF8.self))")
            #expect(manifests.first?["artifactType"] as? String == "application/vnd.oci.image.config.v1+json")
            let filtered = try await server.registry(.get, "/v2/\(name)/referrers/\(sha256(image))?artifactType=application/vnd.oci.image.config.v1%2Bjson",
                                                     token: server.ownerToken)
            #expect(((try JSONSerialization.jsonObject(with: Data(filtered.body)) as? [String: Any])?["manifests"] as? [Any])?.count == 1,
                    "\(String(decoding: filtered.body, as: UTF8.self))")
        }
    }

    @Test("manifests: stored byte-exact, refused when a blob is missing, tags, ?tag=, referrers, delete")
    func manifests() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let config = Array(#"{"architecture":"amd64","os":"linux"}"#.utf8)
            let layer = Array("layer".utf8)
            let configDigest = try await Self.pushBlob(server, name, config, token: server.ownerToken)

            let incomplete = Self.manifest(config: configDigest, configSize: config.count, layers: [(sha256(layer), layer.count)])
            let refused = try await Self.putManifest(server, "/v2/\(name)/manifests/v1", incomplete)
            #expect(refused.status == .badRequest)
            #expect(Self.errorCode(refused.body) == "MANIFEST_BLOB_UNKNOWN")

            let layerDigest = try await Self.pushBlob(server, name, layer, token: server.ownerToken)
            let put = try await Self.putManifest(server, "/v2/\(name)/manifests/v1", incomplete)
            #expect(put.status == .created)
            let manifestDigest = sha256(incomplete)
            #expect(put.headers[.dockerContentDigest] == manifestDigest)
            #expect(layerDigest == sha256(layer))

            for reference in ["v1", manifestDigest] {
                let got = try await server.registry(.get, "/v2/\(name)/manifests/\(reference)", token: server.ownerToken)
                #expect(got.status == .ok)
                #expect(got.body == incomplete, "byte-exact")
                #expect(got.headers[.contentType] == "application/vnd.oci.image.manifest.v1+json")
                #expect(got.headers[.dockerContentDigest] == manifestDigest)
            }
            let wrongDigest = try await Self.putManifest(server, "/v2/\(name)/manifests/\(sha256(layer))", incomplete)
            #expect(Self.errorCode(wrongDigest.body) == "DIGEST_INVALID")

            // PUT by digest with ?tag=.
            let tagged = try await Self.putManifest(server, "/v2/\(name)/manifests/\(manifestDigest)?tag=v2", incomplete)
            #expect(tagged.status == .created)
            let tags = try await server.registry(.get, "/v2/\(name)/tags/list", token: server.ownerToken)
            #expect(String(decoding: tags.body, as: UTF8.self).contains(#"["v1","v2"]"#))
            let firstPage = try await server.registry(.get, "/v2/\(name)/tags/list?n=1", token: server.ownerToken)
            #expect(firstPage.headers[HTTPField.Name("Link")!]?.contains("last=v1") == true)
            let secondPage = try await server.registry(.get, "/v2/\(name)/tags/list?n=1&last=v1", token: server.ownerToken)
            #expect(String(decoding: secondPage.body, as: UTF8.self).contains(#"["v2"]"#))

            // A referrer (an artifact whose subject is the image), filtered by artifactType.
            let emptyConfig = try await Self.pushBlob(server, name, Array("{}".utf8), token: server.ownerToken)
            let signature = Self.manifest(config: emptyConfig, configSize: 2, layers: [(layerDigest, layer.count)],
                                          subject: (manifestDigest, incomplete.count), artifactType: "application/vnd.example.signature")
            let attached = try await Self.putManifest(server, "/v2/\(name)/manifests/\(sha256(signature))", signature)
            #expect(attached.status == .created)
            #expect(attached.headers[.ociSubject] == manifestDigest)
            let referrers = try await server.registry(.get, "/v2/\(name)/referrers/\(manifestDigest)", token: server.ownerToken)
            #expect(referrers.status == .ok)
            #expect(String(decoding: referrers.body, as: UTF8.self).contains(sha256(signature)))
            let filtered = try await server.registry(.get, "/v2/\(name)/referrers/\(manifestDigest)?artifactType=application/vnd.example.other", token: server.ownerToken)
            #expect(!String(decoding: filtered.body, as: UTF8.self).contains(sha256(signature)))
            #expect(filtered.headers[HTTPField.Name("OCI-Filters-Applied")!] == "artifactType")

            // Delete a tag, then the manifest.
            #expect(try await server.registry(.delete, "/v2/\(name)/manifests/v2", token: server.ownerToken).status == .accepted)
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/v2", token: server.ownerToken).status == .notFound)
            #expect(try await server.registry(.delete, "/v2/\(name)/manifests/\(manifestDigest)", token: server.ownerToken).status == .accepted)
            let gone = try await server.registry(.get, "/v2/\(name)/manifests/v1", token: server.ownerToken)
            #expect(gone.status == .notFound)
            #expect(Self.errorCode(gone.body) == "MANIFEST_UNKNOWN")
        }
    }

    @Test("tenants: another organization, another project's token and a digest from elsewhere all see nothing; pull tokens only read")
    func tenants() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let secret = Array("tenant A's secret layer".utf8)
            let digest = try await Self.pushBlob(server, name, secret, token: server.ownerToken)

            let (_, ownerB) = try await server.bootstrap("globex")
            let projectB = try await server.createProject("b", token: ownerB)
            let otherProject = try await server.createProject("other")
            let (_, otherProjectToken) = try await server.createToken(#"{"name":"ci","projectId":"\#(otherProject)"}"#)

            for token in [ownerB, otherProjectToken] {
                let existing = try await server.registry(.get, "/v2/\(name)/blobs/\(digest)", token: token)
                let missing = try await server.registry(.get, "/v2/zzzzzzzzzzzzzzzz/app/blobs/\(digest)", token: token)
                #expect(existing.status == missing.status, "existing and missing repositories look alike")
                #expect(![.ok, .partialContent].contains(existing.status))
                let push = try await server.registry(.post, "/v2/\(name)/blobs/uploads/?digest=\(digest)", token: token, body: secret)
                #expect(push.status == .unauthorized || push.status == .forbidden)
            }
            // Knowing the digest does not make it readable through B's own repository.
            let viaB = try await server.registry(.get, "/v2/\(projectB)/b/blobs/\(digest)", token: ownerB)
            #expect(viaB.status == .notFound)
            #expect(Self.errorCode(viaB.body) == "BLOB_UNKNOWN")
            // Nor can B mount it from A's repository: the mount falls back to a normal upload.
            let mount = try await server.registry(.post, "/v2/\(projectB)/b/blobs/uploads/?mount=\(digest)&from=\(name)", token: ownerB)
            #expect(mount.status == .accepted)
            // The catalog lists only one's own organization.
            let catalogB = try await server.registry(.get, "/v2/_catalog", token: ownerB)
            #expect(!String(decoding: catalogB.body, as: UTF8.self).contains(project))

            // A pull token reads but does not write.
            let pull = try await server.request(.post, "/api/v1/tokens", token: server.ownerToken, json: #"{"name":"p","kind":"pull","projectId":"\#(project)"}"#)
            let pullToken = try pull.decoded(Schemas.CreatedToken.self).token
            #expect(try await server.registry(.get, "/v2/\(name)/blobs/\(digest)", token: pullToken).status == .ok)
            let denied = try await server.registry(.post, "/v2/\(name)/blobs/uploads/", token: pullToken)
            #expect(denied.status == .forbidden)
            #expect(Self.errorCode(denied.body) == "DENIED")

            // The token endpoint grants the intersection of what is asked and what the token may do.
            let issued = try await server.registry(.get, "/v2/token?service=drydock&scope=repository:\(name):pull,push", token: pullToken)
            #expect(issued.status == .ok)
            let bearer = try APIJSON.decode(RegistryTokenAnswer.self, String(decoding: issued.body, as: UTF8.self)).token
            let read = try await server.client.executeRequest(uri: "/v2/\(name)/blobs/\(digest)", method: .get, headers: [.authorization: "Bearer \(bearer)"], body: nil)
            #expect(read.status == .ok)
            let write = try await server.client.executeRequest(uri: "/v2/\(name)/blobs/uploads/", method: .post, headers: [.authorization: "Bearer \(bearer)"], body: nil)
            #expect(write.status == .forbidden || write.status == .unauthorized)

            // The OAuth2 form of the token endpoint (POST, password grant) grants the same way.
            let form = "grant_type=password&service=drydock&client_id=test&username=ci&password=\(pullToken)&scope=repository%3A\(project)%2Fapp%3Apull%2Cpush"
            let posted = try await server.client.executeRequest(
                uri: "/v2/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: form))
            #expect(posted.status == .ok)
            let formToken = try #require(try APIJSON.decode(RegistryTokenAnswer.self, String(buffer: posted.body)).access_token)
            let formRead = try await server.client.executeRequest(uri: "/v2/\(name)/blobs/\(digest)", method: .get, headers: [.authorization: "Bearer \(formToken)"], body: nil)
            #expect(formRead.status == .ok)
            let formWrite = try await server.client.executeRequest(uri: "/v2/\(name)/blobs/uploads/", method: .post, headers: [.authorization: "Bearer \(formToken)"], body: nil)
            #expect(formWrite.status == .forbidden)
            let badForm = try await server.client.executeRequest(
                uri: "/v2/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "grant_type=password&username=ci&password=ddu_wrong&scope=repository%3A\(project)%2Fapp%3Apull"))
            #expect(badForm.status == .unauthorized)

            // Revoking the token takes the registry token minted from it with it, at once.
            let pullTokenId = try pull.decoded(Schemas.CreatedToken.self).id
            #expect(try await server.request(.delete, "/api/v1/tokens/\(pullTokenId)", token: server.ownerToken).status == .noContent)
            let afterRevoke = try await server.client.executeRequest(uri: "/v2/\(name)/blobs/\(digest)", method: .get, headers: [.authorization: "Bearer \(bearer)"], body: nil)
            #expect(afterRevoke.status == .unauthorized)

            // A mount from a repository the token can pull works without re-uploading.
            let mounted = try await server.registry(.post, "/v2/\(project)/copy/blobs/uploads/?mount=\(digest)&from=\(name)", token: server.ownerToken)
            #expect(mounted.status == .created)
            #expect(try await server.registry(.get, "/v2/\(project)/copy/blobs/\(digest)", token: server.ownerToken).body == secret)
        }
    }

    @Test("management API: repositories, tags with sizes, usage, pull tokens, deleting tags and images")
    func management() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/web"
            let config = Array(#"{"os":"linux"}"#.utf8)
            let layer = Array(repeating: UInt8(7), count: 1000)
            let configDigest = try await Self.pushBlob(server, name, config, token: server.ownerToken)
            let layerDigest = try await Self.pushBlob(server, name, layer, token: server.ownerToken)
            let manifest = Self.manifest(config: configDigest, configSize: config.count, layers: [(layerDigest, layer.count)])
            for tag in ["v1", "latest"] {
                let put = try await Self.putManifest(server, "/v2/\(name)/manifests/\(tag)", manifest)
                #expect(put.status == .created)
            }
            let repositories = try await server.request(.get, "/api/v1/projects/\(project)/registry/repositories", token: server.ownerToken)
            #expect(repositories.status == .ok)
            let repository = try #require(try repositories.decoded(Schemas.RepositoryList.self).items.first)
            #expect(repository.reference == name)
            #expect(repository.tagCount == 2)
            let blobSize = Int64(config.count + layer.count)
            #expect(repository.sizeBytes == blobSize)

            let tags = try await server.request(.get, "/api/v1/projects/\(project)/registry/tags?repository=web", token: server.ownerToken)
            let tagList = try tags.decoded(Schemas.TagList.self).items
            #expect(tagList.map(\.name) == ["latest", "v1"])
            let imageSize = Int64(manifest.count + config.count + layer.count)
            #expect(tagList.first?.sizeBytes == imageSize)
            #expect(tagList.first?.digest == sha256(manifest))

            let usage = try await server.request(.get, "/api/v1/projects/\(project)/registry/usage", token: server.ownerToken)
            let registryUsage = try usage.decoded(Schemas.RegistryUsage.self)
            #expect(registryUsage.sizeBytes == blobSize)
            #expect(registryUsage.blobs == 2)

            let pull = try await server.request(.post, "/api/v1/projects/\(project)/pull-tokens", token: server.ownerToken, json: #"{"expiresInSeconds":600}"#)
            #expect(pull.status == .created)
            let pullToken = try pull.decoded(Schemas.CreatedToken.self).token
            #expect(pullToken.hasPrefix("ddr_"))
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/v1", token: pullToken).status == .ok)
            let tooLong = try await server.request(.post, "/api/v1/projects/\(project)/pull-tokens", token: server.ownerToken, json: #"{"expiresInSeconds":90000}"#)
            #expect(tooLong.status == .badRequest)

            let untag = try await server.request(.delete, "/api/v1/projects/\(project)/registry/tags?repository=web&tag=latest", token: server.ownerToken)
            #expect(untag.status == .noContent)
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/latest", token: server.ownerToken).status == .notFound)
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/v1", token: server.ownerToken).status == .ok)
            let remove = try await server.request(.delete, "/api/v1/projects/\(project)/registry/images?repository=web&digest=\(sha256(manifest))", token: server.ownerToken)
            #expect(remove.status == .noContent)
            #expect(try await server.registry(.get, "/v2/\(name)/manifests/v1", token: server.ownerToken).status == .notFound)
            let again = try await server.request(.delete, "/api/v1/projects/\(project)/registry/tags?repository=web&tag=v1", token: server.ownerToken)
            #expect(again.status == .notFound)
        }
    }

    @Test("housekeeping expires abandoned uploads and removes unreferenced blobs after the grace period, keeping linked ones")
    func housekeeping() async throws {
        try await withTestServer { server in
            let project = try await server.createProject("app")
            let name = "\(project)/app"
            let orphan = try await Self.pushBlob(server, name, Array("orphan".utf8), token: server.ownerToken)
            let kept = try await Self.pushBlob(server, name, Array("kept".utf8), token: server.ownerToken)
            #expect(try await server.registry(.delete, "/v2/\(name)/blobs/\(orphan)", token: server.ownerToken).status == .accepted)
            let upload = try await server.registry(.post, "/v2/\(name)/blobs/uploads/", token: server.ownerToken)
            let location = try #require(upload.headers[.location])

            let blobs = try FileSystemBlobStore(root: server.dataDirectory)
            try await ServerRunner.withDatabase(server.database, logger: TestDatabase.logger) { client in
                let janitor = RegistryJanitor(store: RegistryStore(client: client, logger: TestDatabase.logger), blobs: blobs, logger: TestDatabase.logger)
                // Fresh: nothing is old enough yet.
                let early = try await janitor.sweep()
                #expect(early.uploads == 0 && early.blobs == 0)
                try await client.query("UPDATE registry_blobs SET created_at = now() - interval '2 hours'", logger: TestDatabase.logger)
                try await client.query("UPDATE registry_uploads SET updated_at = now() - interval '2 days'", logger: TestDatabase.logger)
                let swept = try await janitor.sweep()
                #expect(swept.uploads == 1)
                #expect(swept.blobs == 1)
            }
            #expect(try await blobs.size(of: try #require(Digest(orphan))) == nil)
            #expect(try await blobs.size(of: try #require(Digest(kept))) != nil)
            #expect(try await server.registry(.get, location, token: server.ownerToken).status == .notFound)
            #expect(try await server.registry(.get, "/v2/\(name)/blobs/\(kept)", token: server.ownerToken).status == .ok)
            // Mounting after a sweep: the kept blob mounts; the collected one falls back to an upload.
            let mountKept = try await server.registry(.post, "/v2/\(project)/other/blobs/uploads/?mount=\(kept)&from=\(name)", token: server.ownerToken)
            #expect(mountKept.status == .created)
            #expect(try await server.registry(.get, "/v2/\(project)/other/blobs/\(kept)", token: server.ownerToken).status == .ok)
            let mountGone = try await server.registry(.post, "/v2/\(project)/other/blobs/uploads/?mount=\(orphan)&from=\(name)", token: server.ownerToken)
            #expect(mountGone.status == .accepted)
            #expect(try await server.registry(.get, "/v2/\(project)/other/blobs/\(orphan)", token: server.ownerToken).status == .notFound)
        }
    }
}

/// The registry token endpoint's answer (Docker's token protocol, not the REST API).
struct RegistryTokenAnswer: Decodable {
    let token: String
    let access_token: String?
}

/// The registry's error body (the OCI distribution spec's, not the REST API's problem).
struct OCIErrors: Decodable {
    struct Entry: Decodable {
        let code: String
        let message: String?
    }
    let errors: [Entry]
}
