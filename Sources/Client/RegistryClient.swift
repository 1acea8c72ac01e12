import AsyncHTTPClient
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
}
