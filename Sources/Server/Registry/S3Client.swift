import AsyncHTTPClient
import Crypto
import DrydockWireFormats
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

/// Where blobs live in an S3-compatible store: `s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path-style=true`,
/// credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
public struct S3Settings: Sendable, Equatable {
    public var bucket: String
    /// Key prefix, empty or ending in `/`.
    public var prefix: String
    /// `http(s)://host[:port]` of the store; AWS's regional endpoint when not given.
    public var endpoint: URL
    public var region: String
    /// Bucket in the path (`endpoint/bucket/key`, MinIO, moto, Ceph) instead of the host name.
    public var pathStyle: Bool
    /// Blob GETs answered with a redirect to a presigned URL of the store.
    public var redirect: Bool
    /// Bytes per multipart-upload part (S3's minimum is 5 MiB); also the most an upload holds in memory.
    public var partSize: Int
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// PEM certificates trusted for an https endpoint instead of the system's (`AWS_CA_BUNDLE`, as
    /// AWS's own tools read it): a store whose certificate a private CA signed.
    public var caBundle: String?

    public static let minimumPartSize = 5 << 20

    public static func parse(_ raw: String, environment: [String: String]) throws -> S3Settings {
        guard let components = URLComponents(string: raw), components.scheme == "s3", let bucket = components.host, !bucket.isEmpty else {
            throw ConfigurationError("DRYDOCK_BLOB_STORE must look like s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path-style=true, not '\(raw)'")
        }
        var prefix = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !prefix.isEmpty { prefix += "/" }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let known: Set = ["endpoint", "region", "path-style", "redirect", "part-size-mib"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigurationError("DRYDOCK_BLOB_STORE: unknown setting '\(unknown)'; known: \(known.sorted().joined(separator: ", "))")
        }
        func flag(_ name: String) throws -> Bool {
            switch query[name] {
            case nil, "false", "0": false
            case "", "true", "1": true
            case let other?: throw ConfigurationError("DRYDOCK_BLOB_STORE: \(name) must be true or false, not '\(other)'")
            }
        }
        let region = query["region"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_REGION"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 } ?? "us-east-1"
        let endpointText = query["endpoint"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://s3.\(region).amazonaws.com"
        guard let endpoint = URL(string: endpointText), let scheme = endpoint.scheme, ["http", "https"].contains(scheme),
              endpoint.host != nil, endpoint.path.isEmpty || endpoint.path == "/"
        else {
            throw ConfigurationError("DRYDOCK_BLOB_STORE: endpoint must be http(s)://HOST[:PORT], not '\(endpointText)'")
        }
        var partSize = 8 << 20
        if let raw = query["part-size-mib"] {
            guard let mib = Int(raw), (5...512).contains(mib) else {
                throw ConfigurationError("DRYDOCK_BLOB_STORE: part-size-mib must be 5 to 512, not '\(raw)'")
            }
            partSize = mib << 20
        }
        guard let key = environment["AWS_ACCESS_KEY_ID"], !key.isEmpty, let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
            throw ConfigurationError("DRYDOCK_BLOB_STORE=s3://… needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
        }
        let caBundle = environment["AWS_CA_BUNDLE"].flatMap { $0.isEmpty ? nil : $0 }
        if let caBundle, !FileManager.default.isReadableFile(atPath: caBundle) {
            throw ConfigurationError("AWS_CA_BUNDLE names \(caBundle), which cannot be read")
        }
        return S3Settings(bucket: bucket, prefix: prefix, endpoint: endpoint, region: region, pathStyle: try flag("path-style"),
                          redirect: try flag("redirect"), partSize: partSize, accessKeyId: key, secretAccessKey: secret,
                          sessionToken: environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }, caBundle: caBundle)
    }

    /// The settings without the secret, for logs.
    public var description: String {
        "s3://\(bucket)/\(prefix) at \(endpoint.absoluteString) (\(region)\(pathStyle ? ", path-style" : ""))"
    }
}

/// An error answer of the store (`<Error><Code>…`), or no answer at all.
struct S3Failure: Error, CustomStringConvertible {
    let status: Int
    let code: String
    let message: String
    var operation = ""
    var description: String {
        (status == 0 ? "S3 request failed: \(message)" : "S3 answered \(status) \(code): \(message)") + (operation.isEmpty ? "" : " (\(operation))")
    }
    var retryable: Bool { status == 0 || status >= 500 || code == "SlowDown" || code == "RequestTimeout" }
}

/// The few S3 operations the blob store needs, signed with SigV4 and carried by AsyncHTTPClient.
/// Bodies stream: a GET hands back the response's body as it arrives.
struct S3Client: Sendable {
    let settings: S3Settings
    let signer: SigV4
    let logger: Logger
    /// For an https endpoint with a CA bundle: the bundle as the only trusted roots.
    let tlsConfiguration: TLSConfiguration?
    /// For an https endpoint: the TLS context of `S3Downloads`' connections (or why there is none).
    let tlsContext: Result<NIOSSLContext, S3Failure>?

    /// One HTTP client for every store in the process: it lives as long as the process does.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    init(settings: S3Settings, logger: Logger) {
        self.settings = settings
        self.signer = SigV4(accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey,
                            region: settings.region, sessionToken: settings.sessionToken)
        self.logger = logger
        var tls = TLSConfiguration.makeClientConfiguration()
        if let bundle = settings.caBundle { tls.trustRoots = .file(bundle) }
        tlsConfiguration = settings.caBundle == nil ? nil : tls
        if settings.endpoint.scheme == "https" {
            do {
                tlsContext = .success(try NIOSSLContext(configuration: tls))
            } catch {
                tlsContext = .failure(S3Failure(status: 0, code: "", message: "cannot set up TLS for \(settings.endpoint.absoluteString)\(settings.caBundle.map { " with AWS_CA_BUNDLE=" + $0 } ?? ""): \(error)"))
            }
        } else {
            tlsContext = nil
        }
    }

    /// `host[:port]` as sent in the Host header, and the request path (encoded) for a key.
    func address(key: String?) -> (host: String, path: String, base: String) {
        let endpoint = settings.endpoint
        let scheme = endpoint.scheme ?? "https"
        var host = endpoint.host ?? ""
        if let port = endpoint.port, !(scheme == "http" && port == 80), !(scheme == "https" && port == 443) { host += ":\(port)" }
        let encodedKey = key.map { $0.split(separator: "/", omittingEmptySubsequences: false).map { SigV4.encode(String($0)) }.joined(separator: "/") }
        if settings.pathStyle {
            let path = "/\(SigV4.encode(settings.bucket))" + (encodedKey.map { "/" + $0 } ?? "")
            return (host, path, "\(scheme)://\(host)")
        }
        host = "\(settings.bucket).\(host)"
        return (host, "/" + (encodedKey ?? ""), "\(scheme)://\(host)")
    }

    enum Body {
        case none
        case bytes(ByteBuffer)
        /// Streamed, not hashed (`UNSIGNED-PAYLOAD`); sent once, so not retried.
        case stream(HTTPClientRequest.Body, length: Int64)
    }

    /// Sends one request; a buffered request is retried (three attempts in all) when the store
    /// answers 5xx or the connection fails. Non-2xx answers other than `accept` throw `S3Failure`.
    func send(_ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [],
              body: Body = .none, accept: Set<Int> = [], timeout: TimeAmount = .seconds(600)) async throws -> HTTPClientResponse {
        let operation = "\(method.rawValue) \(key ?? settings.bucket)\(query.isEmpty ? "" : "?" + query.map(\.0).joined(separator: "&"))"
        return try await retrying(operation, retry: !body.isStream) {
            let response = try await once(method, key: key, query: query, headers: extra, body: body, timeout: timeout)
            let status = Int(response.status.code)
            if (200..<300).contains(status) || accept.contains(status) { return response }
            throw Self.failure(status: status, body: try? await response.body.collect(upTo: 1 << 16), operation: operation)
        }
    }

    /// Runs `attempt` up to three times while it fails with a retryable `S3Failure` (a 5xx, or
    /// no answer) or a broken connection, pausing between; other failures go to the caller, as
    /// an `S3Failure` naming `operation`.
    func retrying<T>(_ operation: String, retry: Bool = true, _ attempt: () async throws -> T) async throws -> T {
        var tries = 0
        while true {
            tries += 1
            var failure: S3Failure
            do {
                return try await attempt()
            } catch let error as S3Failure {
                failure = error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                failure = S3Failure(status: 0, code: "", message: "\(error)")
            }
            if failure.operation.isEmpty { failure.operation = operation }
            guard retry, failure.retryable, tries < 3 else { throw failure }
            logger.debug("S3 request failed; retrying", metadata: ["error": "\(failure)", "attempt": "\(tries)"])
            try await Task.sleep(for: .milliseconds(100 * tries * tries))
        }
    }

    /// The store's error answer (`<Error><Code>…<Message>…`) as an `S3Failure`.
    static func failure(status: Int, body: ByteBuffer?, operation: String) -> S3Failure {
        let text = body.map { String(buffer: $0) } ?? ""
        return S3Failure(status: status, code: element("Code", in: text) ?? "\(status)",
                         message: element("Message", in: text) ?? "failed", operation: operation)
    }

    private func once(_ method: HTTPMethod, key: String?, query: [(String, String)], headers extra: [(String, String)],
                      body: Body, timeout: TimeAmount) async throws -> HTTPClientResponse {
        let (host, path, base) = address(key: key)
        var headers = [("host", host)] + extra
        let payloadHash: String
        switch body {
        case .none:
            payloadHash = SigV4.emptyPayload
            if method == .PUT || method == .POST { headers.append(("content-length", "0")) }
        case .bytes(let buffer):
            // Large bodies (parts) go unhashed: their bytes are hashed once already, for the blob's digest.
            payloadHash = buffer.readableBytes > 1 << 16 ? SigV4.unsignedPayload : SigV4.hex(buffer.withUnsafeReadableBytes { SHA256.hash(data: $0) })
            headers.append(("content-length", "\(buffer.readableBytes)"))
        case .stream(_, let length):
            payloadHash = SigV4.unsignedPayload
            headers.append(("content-length", "\(length)"))
        }
        let signed = signer.sign(method: method.rawValue, path: path, query: query, headers: headers, payloadHash: payloadHash)
        var request = HTTPClientRequest(url: base + path + Self.queryText(query))
        request.method = method
        request.tlsConfiguration = tlsConfiguration
        for (name, value) in headers + signed { request.headers.replaceOrAdd(name: name, value: value) }
        switch body {
        case .none: break
        case .bytes(let buffer): request.body = .bytes(buffer)
        case .stream(let stream, _): request.body = stream
        }
        return try await Self.http.execute(request, timeout: timeout, logger: logger)
    }

    static func queryText(_ query: [(String, String)]) -> String {
        query.isEmpty ? "" : "?" + query.map { "\(SigV4.encode($0.0))=\(SigV4.encode($0.1))" }.joined(separator: "&")
    }

    /// Where the store listens, for `S3Downloads`.
    func downloadEndpoint() throws -> S3Downloads.Endpoint {
        let endpoint = settings.endpoint
        let host = (settings.pathStyle ? "" : settings.bucket + ".") + (endpoint.host ?? "")
        let tls = try tlsContext.map { try $0.get() }
        return .init(host: host, port: endpoint.port ?? (tls == nil ? 80 : 443), tls: tls.map { .init(context: $0, trust: settings.caBundle) })
    }

    /// A signed GET of `key` on a channel of `S3Downloads` (bodies read in large pieces), retried
    /// like `send` while nothing of the body has been handed out. nil when there is no such object.
    func download(_ key: String, headers extra: [(String, String)]) async throws -> S3Downloads.Response? {
        let (host, path, _) = address(key: key)
        let headers = [("host", host)] + extra
        return try await retrying("GET \(key)") {
            // Signed anew for each attempt: the signature carries the time.
            let signed = signer.sign(method: "GET", path: path, query: [], headers: headers, payloadHash: SigV4.emptyPayload)
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            for (name, value) in headers + signed { head.headers.replaceOrAdd(name: name, value: value) }
            let response = try await S3Downloads.shared.execute(head, on: try downloadEndpoint(), timeout: .seconds(120))
            let status = Int(response.status.code)
            if (200..<300).contains(status) { return response }
            let body = try? await response.body.collect(upTo: 1 << 16)
            if status == 404 { return nil }
            throw Self.failure(status: status, body: body, operation: "GET \(key)")
        }
    }

    /// A URL that lets its holder GET `key` for `seconds` without credentials.
    func presignedGET(key: String, seconds: Int) -> String {
        let (host, path, base) = address(key: key)
        return base + path + "?" + signer.presignedQuery(method: "GET", path: path, host: host, expires: seconds)
    }

    // MARK: Operations

    func head(_ key: String) async throws -> Int64? {
        let response = try await send(.HEAD, key: key, accept: [404])
        if response.status == .notFound { return nil }
        return response.headers.first(name: "content-length").flatMap { Int64($0) }
    }

    /// The object's bytes (or a range of them) as they arrive; nil when there is no such object.
    func get(_ key: String, range: ClosedRange<Int64>? = nil) async throws -> S3Downloads.Response? {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        return try await download(key, headers: headers)
    }

    /// A small object, read whole (at most `limit` bytes).
    func getBytes(_ key: String, limit: Int) async throws -> ByteBuffer? {
        guard let response = try await get(key) else { return nil }
        return try await response.body.collect(upTo: limit)
    }

    func put(_ key: String, _ bytes: ByteBuffer, contentType: String = "application/octet-stream") async throws {
        let response = try await send(.PUT, key: key, headers: [("content-type", contentType)], body: .bytes(bytes))
        _ = try await response.body.collect(upTo: 1 << 16)
    }

    func delete(_ key: String) async throws {
        let response = try await send(.DELETE, key: key, accept: [404])
        _ = try await response.body.collect(upTo: 1 << 16)
    }

    /// Server-side copy; objects above 5 GiB are copied in 1 GiB parts.
    func copy(from source: String, to destination: String, size: Int64) async throws {
        let copySource = "/" + settings.bucket + "/" + source.split(separator: "/", omittingEmptySubsequences: false).map { SigV4.encode(String($0)) }.joined(separator: "/")
        if size <= 5 << 30 {
            let response = try await send(.PUT, key: destination, headers: [("x-amz-copy-source", copySource)], timeout: .seconds(3600))
            let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
            // A copy can fail after its 200 has been sent: the error is then in the body.
            if text.contains("<Error>") {
                throw S3Failure(status: 500, code: Self.element("Code", in: text) ?? "CopyFailed", message: Self.element("Message", in: text) ?? text)
            }
            return
        }
        let upload = try await createMultipart(destination)
        var parts: [(Int, String)] = []
        do {
            var offset: Int64 = 0
            var number = 1
            while offset < size {
                let end = min(offset + (1 << 30), size) - 1
                let response = try await send(.PUT, key: destination, query: [("partNumber", "\(number)"), ("uploadId", upload)],
                                              headers: [("x-amz-copy-source", copySource), ("x-amz-copy-source-range", "bytes=\(offset)-\(end)")],
                                              timeout: .seconds(3600))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
                guard let etag = Self.element("ETag", in: text) else {
                    throw S3Failure(status: 500, code: Self.element("Code", in: text) ?? "CopyFailed", message: "part copy answered no ETag")
                }
                parts.append((number, etag))
                number += 1
                offset = end + 1
            }
            try await completeMultipart(destination, upload: upload, parts: parts)
        } catch {
            try? await abortMultipart(destination, upload: upload)
            throw error
        }
    }

    func createMultipart(_ key: String) async throws -> String {
        let response = try await send(.POST, key: key, query: [("uploads", "")], headers: [("content-type", "application/octet-stream")])
        let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
        guard let id = Self.element("UploadId", in: text) else {
            throw S3Failure(status: Int(response.status.code), code: "NoUploadId", message: "CreateMultipartUpload answered no UploadId")
        }
        return id
    }

    func uploadPart(_ key: String, upload: String, number: Int, _ bytes: ByteBuffer) async throws -> String {
        let response = try await send(.PUT, key: key, query: [("partNumber", "\(number)"), ("uploadId", upload)], body: .bytes(bytes))
        _ = try await response.body.collect(upTo: 1 << 16)
        guard let etag = response.headers.first(name: "etag") else {
            throw S3Failure(status: Int(response.status.code), code: "NoETag", message: "UploadPart answered no ETag")
        }
        return etag
    }

    func completeMultipart(_ key: String, upload: String, parts: [(Int, String)]) async throws {
        var xml = "<CompleteMultipartUpload>"
        for (number, etag) in parts {
            xml += "<Part><PartNumber>\(number)</PartNumber><ETag>\(Self.escape(etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let response = try await send(.POST, key: key, query: [("uploadId", upload)], headers: [("content-type", "application/xml")],
                                      body: .bytes(ByteBuffer(string: xml)), timeout: .seconds(3600))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
        if text.contains("<Error>") {
            throw S3Failure(status: 500, code: Self.element("Code", in: text) ?? "CompleteFailed", message: Self.element("Message", in: text) ?? text)
        }
    }

    func abortMultipart(_ key: String, upload: String) async throws {
        let response = try await send(.DELETE, key: key, query: [("uploadId", upload)], accept: [404])
        _ = try await response.body.collect(upTo: 1 << 16)
    }

    /// One page of keys under `prefix` (up to 1,000), with their last-modified times.
    func list(prefix: String, after token: String?) async throws -> (objects: [(key: String, modified: Date)], next: String?) {
        var query = [("list-type", "2"), ("prefix", prefix)]
        if let token { query.append(("continuation-token", token)) }
        let response = try await send(.GET, key: nil, query: query)
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        var objects: [(String, Date)] = []
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        for block in Self.elements("Contents", in: text) {
            guard let key = Self.element("Key", in: block) else { continue }
            let modified = Self.element("LastModified", in: block).flatMap { formatter.date(from: $0) ?? plain.date(from: $0) } ?? Date()
            objects.append((key, modified))
        }
        let truncated = Self.element("IsTruncated", in: text) == "true"
        return (objects, truncated ? Self.element("NextContinuationToken", in: text) : nil)
    }

    /// Creates the bucket when it does not exist (a fresh MinIO or moto); an existing one is left alone.
    func ensureBucket() async throws {
        // First a probe on a download connection, which fails within a second when the store
        // cannot be reached or its certificate is not trusted (AsyncHTTPClient keeps retrying such a
        // connection for its whole connect timeout, three times over). Any answer at all will do.
        do {
            _ = try await download(settings.prefix + "drydock-probe", headers: [])
        } catch let failure as S3Failure where failure.status != 0 {
            // The store answered (403 without permission to list, say): the HEAD below decides.
        }
        let response = try await send(.HEAD, key: nil, accept: [404, 403, 301])
        switch response.status.code {
        case 200..<300: return
        case 404:
            var body = ByteBuffer()
            if settings.region != "us-east-1" {
                body = ByteBuffer(string: "<CreateBucketConfiguration><LocationConstraint>\(Self.escape(settings.region))</LocationConstraint></CreateBucketConfiguration>")
            }
            let created = try await send(.PUT, key: nil, body: body.readableBytes > 0 ? .bytes(body) : .none, accept: [409])
            _ = try await created.body.collect(upTo: 1 << 16)
        default:
            throw S3Failure(status: Int(response.status.code), code: "\(response.status.code)",
                            message: "bucket \(settings.bucket) is not reachable with these credentials")
        }
    }

    // MARK: XML, just enough of it

    static func element(_ name: String, in text: String) -> String? {
        guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex) else { return nil }
        return unescape(String(text[open.upperBound..<close.lowerBound]))
    }

    static func elements(_ name: String, in text: String) -> [String] {
        var found: [String] = []
        var rest = text.startIndex..<text.endIndex
        while let open = text.range(of: "<\(name)>", range: rest), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex) {
            found.append(String(text[open.upperBound..<close.lowerBound]))
            rest = close.upperBound..<text.endIndex
        }
        return found
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

extension S3Client.Body {
    var isStream: Bool { if case .stream = self { true } else { false } }
}
