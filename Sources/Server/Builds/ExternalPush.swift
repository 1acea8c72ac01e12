import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

/// Pushes a multi-platform image (its per-platform manifests, their blobs and the index) from
/// the project registry to another registry, with the credentials the user sent for this build
/// only (they are erased when the build closes). Speaks the distribution API as docker does:
/// Basic, or the Bearer token flow when the registry asks for it; blobs it already has are not
/// sent again.
struct ExternalPush: Sendable {
    struct Manifest: Sendable {
        let digest: String
        let mediaType: String
        let content: [UInt8]
    }

    let host: String
    let repository: String
    let username: String?
    let password: String?
    let insecure: Bool
    let blobs: (any BlobStore)?
    var client: HTTPClient = .shared

    var base: String { "\(insecure ? "http" : "https")://\(host)/v2/\(repository)" }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Pushes the image manifests, then the index under `tag`.
    func push(index: Manifest, tag: String, manifests: [Manifest]) async throws {
        var authorization = try await authorize()
        for manifest in manifests {
            let document = try? JSONDecoder().decode(OCIManifestDocument.self, from: Data(manifest.content))
            for digest in document?.referencedBlobs ?? [] {
                try await upload(blob: digest, authorization: &authorization)
            }
            try await put(manifest: manifest, reference: manifest.digest, authorization: authorization)
        }
        try await put(manifest: index, reference: tag, authorization: authorization)
    }

    /// The Authorization header to send: none, Basic, or a Bearer token for push and pull here.
    func authorize() async throws -> String? {
        let basic = username.map { "Basic " + Data("\($0):\(password ?? "")".utf8).base64EncodedString() }
        let probe = try await client.execute(HTTPClientRequest(url: "\(insecure ? "http" : "https")://\(host)/v2/"), timeout: .seconds(30))
        _ = try? await probe.body.collect(upTo: 1 << 16)
        guard probe.status == .unauthorized, let challenge = probe.headers.first(name: "WWW-Authenticate") else { return basic }
        guard challenge.lowercased().hasPrefix("bearer ") else { return basic }
        var fields: [String: String] = [:]
        for part in challenge.dropFirst(7).split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2 { fields[pair[0].lowercased()] = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        guard let realm = fields["realm"], var components = URLComponents(string: realm) else { return basic }
        var query = components.queryItems ?? []
        if let service = fields["service"] { query.append(.init(name: "service", value: service)) }
        query.append(.init(name: "scope", value: "repository:\(repository):pull,push"))
        components.queryItems = query
        guard let url = components.url?.absoluteString else { return basic }
        var request = HTTPClientRequest(url: url)
        if let basic { request.headers.add(name: "Authorization", value: basic) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            guard basic != nil else {
                throw Failure(description: "\(host) asks for credentials and the build was sent none for it (HTTP \(response.status.code)): save them with 'docker login \(host)' (or 'drydock registry login' for this server's own registry) and build again")
            }
            throw Failure(description: "\(host) refused the credentials (HTTP \(response.status.code))")
        }
        struct Token: Decodable { let token: String?; let access_token: String? }
        guard let token = try? JSONDecoder().decode(Token.self, from: Data(buffer: body)), let value = token.token ?? token.access_token else {
            throw Failure(description: "\(host)'s token service answered without a token")
        }
        return "Bearer " + value
    }

    func upload(blob digest: String, authorization: inout String?) async throws {
        var head = HTTPClientRequest(url: "\(base)/blobs/\(digest)")
        head.method = .HEAD
        if let authorization { head.headers.add(name: "Authorization", value: authorization) }
        let exists = try await client.execute(head, timeout: .seconds(30))
        if exists.status == .ok { return }
        guard let parsed = Digest(digest), let blobs else {
            throw Failure(description: "blob \(digest) is not in the project registry")
        }
        var start = HTTPClientRequest(url: "\(base)/blobs/uploads/")
        start.method = .POST
        if let authorization { start.headers.add(name: "Authorization", value: authorization) }
        start.headers.add(name: "Content-Length", value: "0")
        let started = try await client.execute(start, timeout: .seconds(30))
        _ = try? await started.body.collect(upTo: 1 << 16)
        guard started.status == .accepted, let location = started.headers.first(name: "Location") else {
            throw Failure(description: "\(host) refused a blob upload to \(repository) (HTTP \(started.status.code))")
        }
        // The blob is opened only once the other registry has taken the upload: a refused one
        // leaves no stream (an open file, or a GET from the object store) behind.
        guard let blob = try await blobs.read(parsed, range: nil) else {
            throw Failure(description: "blob \(digest) is not in the project registry")
        }
        let target = location.hasPrefix("http") ? location : "\(insecure ? "http" : "https")://\(host)\(location)"
        var put = HTTPClientRequest(url: target + (target.contains("?") ? "&" : "?") + "digest=\(digest)")
        put.method = .PUT
        if let authorization { put.headers.add(name: "Authorization", value: authorization) }
        put.headers.add(name: "Content-Type", value: "application/octet-stream")
        // Streamed from disk 1 MiB at a time: layers can be large.
        put.body = .stream(blob.body, length: .known(blob.size))
        let stored = try await client.execute(put, timeout: .seconds(600))
        _ = try? await stored.body.collect(upTo: 1 << 16)
        guard stored.status == .created else {
            throw Failure(description: "\(host) did not take blob \(digest) (HTTP \(stored.status.code))")
        }
    }

    func put(manifest: Manifest, reference: String, authorization: String?) async throws {
        var request = HTTPClientRequest(url: "\(base)/manifests/\(reference)")
        request.method = .PUT
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.headers.add(name: "Content-Type", value: manifest.mediaType)
        request.body = .bytes(ByteBuffer(bytes: manifest.content))
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = try? await response.body.collect(upTo: 1 << 16)
        guard response.status == .created else {
            let text = body.map { String(buffer: $0).prefix(200) } ?? ""
            throw Failure(description: "\(host) did not take manifest \(reference) of \(repository) (HTTP \(response.status.code)) \(text)")
        }
    }
}

/// A blob file read in 1 MiB pieces as the upload asks for them.
