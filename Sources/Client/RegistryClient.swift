import AsyncHTTPClient
import DrydockWireFormats
import Foundation
import NIOCore
import NIOHTTP1

extension URL {
    /// `host[:port]`: how registry references name the Drydock server at this URL.
    public var registryHost: String {
        let host = self.host ?? "localhost"
        return port.map { "\(host):\($0)" } ?? host
    }
}

/// The few registry (`/v2/`) calls the workers make themselves, beside what buildah does:
/// giving an image that is already in the registry one more tag without pushing it again.
public struct DrydockRegistryClient: Sendable {
    public let baseURL: URL
    let authorization: String
    let httpClient: HTTPClient

    public init(baseURL: URL, token: String, httpClient: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.authorization = "Basic " + Data("drydock:\(token)".utf8).base64EncodedString()
        self.httpClient = httpClient
    }

    static let accept = [
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ].joined(separator: ", ")

    /// Tags `repository@digest` as `repository:tag` (manifest GET, then PUT of the same bytes).
    /// Returns false when the manifest is not there (the caller pushes instead).
    public func tag(repository: String, digest: String, as tag: String) async throws -> Bool {
        var get = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/manifests/\(digest)").absoluteString)
        get.headers.add(name: "Authorization", value: authorization)
        get.headers.add(name: "Accept", value: Self.accept)
        let response = try await httpClient.execute(get, timeout: .seconds(30))
        guard response.status == .ok, let mediaType = response.headers.first(name: "Content-Type") else { return false }
        let body = try await response.body.collect(upTo: 4 << 20)
        var put = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/manifests/\(tag)").absoluteString)
        put.method = .PUT
        put.headers.add(name: "Authorization", value: authorization)
        put.headers.add(name: "Content-Type", value: mediaType)
        put.body = .bytes(body)
        let stored = try await httpClient.execute(put, timeout: .seconds(30))
        _ = try? await stored.body.collect(upTo: 1 << 20)
        return stored.status == .created && stored.headers.first(name: "Docker-Content-Digest") == digest
    }

    /// A manifest's bytes and media type; nil when it is not there.
    public func manifest(repository: String, reference: String) async throws -> (mediaType: String, bytes: [UInt8])? {
        var get = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/manifests/\(reference)").absoluteString)
        get.headers.add(name: "Authorization", value: authorization)
        get.headers.add(name: "Accept", value: Self.accept)
        let response = try await httpClient.execute(get, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        guard response.status == .ok, let mediaType = response.headers.first(name: "Content-Type") else { return nil }
        return (mediaType, Array(buffer: body))
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Uploads a small blob in one request; returns its digest.
    @discardableResult
    public func pushBlob(repository: String, _ bytes: [UInt8]) async throws -> String {
        let digest = Digest.of(bytes, algorithm: .sha256).description
        var post = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/blobs/uploads/").absoluteString + "?digest=\(digest)")
        post.method = .POST
        post.headers.add(name: "Authorization", value: authorization)
        post.headers.add(name: "Content-Type", value: "application/octet-stream")
        post.body = .bytes(ByteBuffer(bytes: bytes))
        let response = try await httpClient.execute(post, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
        guard response.status == .created else { throw Failure(description: "the registry refused blob \(digest): HTTP \(response.status.code) \(text)") }
        return digest
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest.
    @discardableResult
    public func putManifest(repository: String, reference: String, mediaType: String, _ bytes: [UInt8]) async throws -> String {
        var put = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/manifests/\(reference)").absoluteString)
        put.method = .PUT
        put.headers.add(name: "Authorization", value: authorization)
        put.headers.add(name: "Content-Type", value: mediaType)
        put.body = .bytes(ByteBuffer(bytes: bytes))
        let response = try await httpClient.execute(put, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
        guard response.status == .created, let digest = response.headers.first(name: "Docker-Content-Digest") else {
            throw Failure(description: "the registry refused the manifest: HTTP \(response.status.code) \(text)")
        }
        return digest
    }

    /// Attaches `payload` to `subject` as an OCI referrer (an artifact manifest whose `subject` is
    /// the image manifest): an empty config, one layer, the artifact type and annotations.
    @discardableResult
    public func attach(repository: String, subject: (mediaType: String, digest: String, size: Int), artifactType: String,
                       payload: [UInt8], payloadMediaType: String, annotations: [String: String]) async throws -> String {
        let empty = Array("{}".utf8)
        let emptyDigest = try await pushBlob(repository: repository, empty)
        let layerDigest = try await pushBlob(repository: repository, payload)
        let manifest: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifactType,
            "config": ["mediaType": "application/vnd.oci.empty.v1+json", "digest": emptyDigest, "size": empty.count],
            "layers": [["mediaType": payloadMediaType, "digest": layerDigest, "size": payload.count, "annotations": annotations]],
            "subject": ["mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size],
            "annotations": annotations,
        ]
        let bytes = Array(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys, .withoutEscapingSlashes]))
        let digest = Digest.of(bytes, algorithm: .sha256).description
        return try await putManifest(repository: repository, reference: digest, mediaType: "application/vnd.oci.image.manifest.v1+json", bytes)
    }

    /// The referrers of `digest` in `repository` (the referrers API), only those of
    /// `artifactType` when given.
    public func referrers(repository: String, digest: String, artifactType: String? = nil) async throws -> [OCIDescriptor] {
        var url = baseURL.appendingPathComponent("v2/\(repository)/referrers/\(digest)").absoluteString
        if let artifactType {
            url += "?artifactType=" + (artifactType.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["+", "&", "="])) ?? artifactType)
        }
        var get = HTTPClientRequest(url: url)
        get.headers.add(name: "Authorization", value: authorization)
        get.headers.add(name: "Accept", value: "application/vnd.oci.image.index.v1+json")
        let response = try await httpClient.execute(get, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        guard response.status == .ok else {
            throw Failure(description: "the registry did not list the referrers of \(digest): HTTP \(response.status.code) \(String(buffer: body).prefix(300))")
        }
        struct Listing: Decodable { var manifests: [OCIDescriptor]? }
        let listing = try JSONDecoder().decode(Listing.self, from: Data(body.readableBytesView))
        // A registry that ignores the filter (no `OCI-Filters-Applied`) lists them all.
        return (listing.manifests ?? []).filter { artifactType == nil || $0.artifactType == artifactType }
    }

    /// Whether the repository can serve the blob already.
    public func hasBlob(repository: String, digest: String) async throws -> Bool {
        var head = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/blobs/\(digest)").absoluteString)
        head.method = .HEAD
        head.headers.add(name: "Authorization", value: authorization)
        let response = try await httpClient.execute(head, timeout: .seconds(30))
        return response.status == .ok
    }

    /// Uploads a file as a blob in one streamed request (POST with the digest, the body read 1 MiB at a time).
    public func pushBlob(repository: String, file: URL, digest: String) async throws {
        guard let handle = FileHandle(forReadingAtPath: file.path) else { throw Failure(description: "cannot read \(file.path)") }
        defer { try? handle.close() }
        let size = (try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.int64Value ?? 0
        let reader = FileChunks(handle)
        var post = HTTPClientRequest(url: baseURL.appendingPathComponent("v2/\(repository)/blobs/uploads/").absoluteString + "?digest=\(digest)")
        post.method = .POST
        post.headers.add(name: "Authorization", value: authorization)
        post.headers.add(name: "Content-Type", value: "application/octet-stream")
        post.body = .stream(AsyncThrowingStream<ByteBuffer, any Error>(unfolding: { try reader.next() }), length: .known(size))
        let response = try await httpClient.execute(post, timeout: .seconds(3600))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
        guard response.status == .created else { throw Failure(description: "the registry refused blob \(digest): HTTP \(response.status.code) \(text)") }
    }

    private final class FileChunks: @unchecked Sendable {
        let handle: FileHandle
        init(_ handle: FileHandle) { self.handle = handle }
        func next() throws -> ByteBuffer? {
            guard let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty else { return nil }
            return ByteBuffer(bytes: chunk)
        }
    }
}
