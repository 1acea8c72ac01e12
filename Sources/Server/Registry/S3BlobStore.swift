import AsyncHTTPClient
import DrydockWireFormats
import Foundation
import Logging
import NIOCore

/// Blobs in an S3-compatible object store, so any number of replicas share them.
///
/// Keys under the store's prefix: `blobs/<alg>/<ab>/<hex>` for blobs, and per upload session
/// `uploads/<id>/state` (JSON: the multipart upload, its parts, the size so far), `uploads/<id>/tail`
/// (the last bytes, fewer than a part) and `uploads/<id>/data` (the assembled upload before it is
/// verified). Every replica can continue any upload: the state is in the store, not in memory.
/// A request's bytes are gathered into parts of `partSize` (the most one upload holds in memory),
/// each sent as one part of a multipart upload; a blob smaller than a part is one PUT.
public struct S3BlobStore: BlobStore {
    let client: S3Client
    /// Key prefix of this store (the configured prefix, plus `contexts/<project>/` for contexts).
    let root: String
    private let running: FileSystemBlobStore.RunningHashes

    struct UploadState: Codable {
        struct Part: Codable { var n: Int; var etag: String; var size: Int64 }
        var multipart: String?
        var parts: [Part] = []
        /// Bytes in `uploads/<id>/tail`.
        var tail: Int64 = 0
        var total: Int64 = 0
    }

    init(client: S3Client, root: String) {
        self.client = client
        self.root = root
        self.running = FileSystemBlobStore.RunningHashes()
    }

    public init(settings: S3Settings, logger: Logger) {
        self.init(client: S3Client(settings: settings, logger: logger), root: settings.prefix)
    }

    /// The store for another prefix under this one (a project's build contexts).
    func scoped(_ sub: String) -> S3BlobStore {
        S3BlobStore(client: client, root: root + sub + "/")
    }

    /// Creates the bucket if it is missing; fails with the store's own words when it is unreachable.
    public func prepare() async throws {
        try await client.ensureBucket()
    }

    var partSize: Int { client.settings.partSize }

    func blobKey(_ digest: Digest) -> String { root + "blobs/\(digest.algorithm.rawValue)/\(digest.hex.prefix(2))/\(digest.hex)" }
    func uploadKey(_ id: String, _ name: String) -> String { root + "uploads/\(id)/\(name)" }

    public func path(of digest: Digest) -> String? { nil }

    public func size(of digest: Digest) async throws -> Int64? {
        try await unavailableOnFailure { try await client.head(blobKey(digest)) }
    }

    public func read(_ digest: Digest, range: ClosedRange<Int64>?) async throws -> BlobBytes? {
        try await unavailableOnFailure {
            guard let response = try await client.get(blobKey(digest), range: range) else { return nil }
            // A store answering without a length (chunked): the range's, or the object's own.
            var size = response.headers.first(name: "content-length").flatMap { Int64($0) }
            if size == nil, let range { size = range.upperBound - range.lowerBound + 1 }
            if size == nil { size = try await client.head(blobKey(digest)) }
            return BlobBytes(size: size ?? 0, sequence: response.body)
        }
    }

    public func redirect(for digest: Digest) -> String? {
        client.settings.redirect ? client.presignedGET(key: blobKey(digest), seconds: 1200) : nil
    }

    // MARK: Uploads

    func loadState(_ id: String) async throws -> UploadState? {
        guard let bytes = try await client.getBytes(uploadKey(id, "state"), limit: 4 << 20) else { return nil }
        return try JSONDecoder().decode(UploadState.self, from: Data(buffer: bytes))
    }

    func saveState(_ state: UploadState, _ id: String) async throws {
        try await client.put(uploadKey(id, "state"), ByteBuffer(data: try JSONEncoder().encode(state)), contentType: "application/json")
    }

    public func createUpload(id: String) async throws {
        try await unavailableOnFailure { try await saveState(UploadState(), id) }
    }

    public func uploadSize(id: String) async throws -> Int64? {
        try await unavailableOnFailure { try await loadState(id)?.total }
    }

    /// An upload being written: its state, the running hash (when it covers every byte so far)
    /// and the bytes not yet sent as a part.
    struct Writer {
        var state: UploadState
        var hasher: DigestHasher?
        var pending: ByteBuffer
        /// The part on its way to the store while the next one fills (at most one): an upload
        /// holds at most two parts in memory, and receiving does not stop for each part's PUT.
        var sending: (number: Int, size: Int64, etag: Task<String, any Error>)?
    }

    func open(_ id: String) async throws -> Writer {
        guard let state = try await loadState(id) else { throw BlobStoreError.uploadUnknown }
        let previous = running.take(id)
        let hasher: DigestHasher? =
            if let previous, previous.size == state.total { previous.hasher } else if state.total == 0 { DigestHasher(.sha256) } else { nil }
        var pending = ByteBuffer()
        if state.tail > 0 {
            guard let tail = try await client.getBytes(uploadKey(id, "tail"), limit: partSize + (1 << 20)) else { throw BlobStoreError.uploadUnknown }
            pending = tail
        }
        return Writer(state: state, hasher: hasher, pending: pending)
    }

    func write<S: AsyncSequence & Sendable>(_ chunks: S, into writer: inout Writer, id: String, limit: Int64) async throws where S.Element == ByteBuffer {
        for try await chunk in chunks {
            guard writer.state.total + Int64(chunk.readableBytes) <= limit else { throw BlobStoreError.tooLarge }
            chunk.withUnsafeReadableBytes { writer.hasher?.update(bufferPointer: $0) }
            if writer.pending.readableBytes >= partSize { try await flush(&writer, id: id) }
            writer.pending.writeImmutableBuffer(chunk)
            writer.state.total += Int64(chunk.readableBytes)
        }
    }

    /// Starts sending the pending bytes as the next part, once the part before it is stored.
    func flush(_ writer: inout Writer, id: String) async throws {
        try await settle(&writer)
        let key = uploadKey(id, "data")
        let upload: String
        if let existing = writer.state.multipart {
            upload = existing
        } else {
            upload = try await client.createMultipart(key)
            writer.state.multipart = upload
        }
        let number = (writer.state.parts.last?.n ?? 0) + 1
        let (client, bytes) = (self.client, writer.pending)
        writer.sending = (number, Int64(bytes.readableBytes), Task { try await client.uploadPart(key, upload: upload, number: number, bytes) })
        writer.pending = ByteBuffer()
        writer.state.tail = 0
    }

    /// Waits for the part on its way, and records it. (A request that fails before this cancels
    /// that part's PUT and leaves it unrecorded: the upload's saved state does not change, and the
    /// part's number is sent again by whatever continues the upload.)
    func settle(_ writer: inout Writer) async throws {
        guard let sending = writer.sending else { return }
        writer.sending = nil
        let etag = try await sending.etag.value
        writer.state.parts.append(.init(n: sending.number, etag: etag, size: sending.size))
    }

    public func append<S: AsyncSequence & Sendable>(to id: String, _ chunks: S, limit: Int64) async throws -> Int64 where S.Element == ByteBuffer {
        try await unavailableOnFailure {
            var writer = try await open(id)
            // A request that fails with a part on its way stops that part's PUT too.
            defer { writer.sending?.etag.cancel() }
            try await write(chunks, into: &writer, id: id, limit: limit)
            if writer.pending.readableBytes >= partSize { try await flush(&writer, id: id) }
            try await settle(&writer)
            // What is left, fewer bytes than a part, waits in the tail object for the next request.
            if writer.pending.readableBytes > 0 {
                try await client.put(uploadKey(id, "tail"), writer.pending)
            }
            writer.state.tail = Int64(writer.pending.readableBytes)
            try await saveState(writer.state, id)
            if let hasher = writer.hasher { running.put(id, size: writer.state.total, hasher: hasher) }
            return writer.state.total
        }
    }

    public func commit(upload id: String, as digest: Digest) async throws -> Int64 {
        try await commit(upload: id, appending: AsyncStream<ByteBuffer> { $0.finish() }, limit: .max, as: digest)
    }

    public func commit<S: AsyncSequence & Sendable>(upload id: String, appending chunks: S, limit: Int64, as digest: Digest) async throws -> Int64
    where S.Element == ByteBuffer {
        try await unavailableOnFailure {
            var writer = try await open(id)
            defer { writer.sending?.etag.cancel() }
            try await write(chunks, into: &writer, id: id, limit: limit)
            let total = writer.state.total
            let destination = blobKey(digest)
            if writer.state.multipart == nil {
                // Smaller than a part: every byte is in memory; hash if needed and store in one PUT.
                var hasher = writer.hasher.flatMap { $0.algorithm == digest.algorithm ? $0 : nil } ?? {
                    var fresh = DigestHasher(digest.algorithm)
                    writer.pending.withUnsafeReadableBytes { fresh.update(bufferPointer: $0) }
                    return fresh
                }()
                let actual = hasher.finalize()
                guard actual == digest else {
                    try await removeUpload(id, writer.state)
                    throw BlobStoreError.digestMismatch(actual: actual.description)
                }
                try await client.put(destination, writer.pending)
                try await removeUpload(id, writer.state)
                return total
            }
            if writer.pending.readableBytes > 0 { try await flush(&writer, id: id) }
            try await settle(&writer)
            let data = uploadKey(id, "data")
            guard let upload = writer.state.multipart else { throw BlobStoreError.uploadUnknown }
            if var hasher = writer.hasher, hasher.algorithm == digest.algorithm {
                // Verified before the object exists: a wrong digest costs no copy.
                let actual = hasher.finalize()
                guard actual == digest else {
                    try await removeUpload(id, writer.state)
                    throw BlobStoreError.digestMismatch(actual: actual.description)
                }
                try await client.completeMultipart(data, upload: upload, parts: writer.state.parts.map { ($0.n, $0.etag) })
            } else {
                // Parts written by another replica (or before a restart): read the upload back to verify it.
                try await client.completeMultipart(data, upload: upload, parts: writer.state.parts.map { ($0.n, $0.etag) })
                writer.state.multipart = nil
                var hasher = DigestHasher(digest.algorithm)
                guard let response = try await client.get(data) else { throw BlobStoreError.uploadUnknown }
                for try await chunk in response.body { chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
                let actual = hasher.finalize()
                guard actual == digest else {
                    try await removeUpload(id, writer.state)
                    throw BlobStoreError.digestMismatch(actual: actual.description)
                }
            }
            writer.state.multipart = nil
            // The same bytes may be stored already (a blob pushed again, to another repository or
            // by a client that does not ask first): then no copy, as the reference registry does.
            if try await client.head(destination) != total {
                try await client.copy(from: data, to: destination, size: total)
            }
            try await removeUpload(id, writer.state)
            return total
        }
    }

    /// Removes everything of an upload session: its multipart upload, its objects.
    func removeUpload(_ id: String, _ state: UploadState?) async throws {
        _ = running.take(id)
        if let upload = state?.multipart { try await client.abortMultipart(uploadKey(id, "data"), upload: upload) }
        for name in ["data", "tail", "state"] { try await client.delete(uploadKey(id, name)) }
    }

    public func cancelUpload(id: String) async throws {
        try await unavailableOnFailure { try await removeUpload(id, try? await loadState(id)) }
    }

    public func delete(_ digest: Digest) async throws {
        try await unavailableOnFailure { try await client.delete(blobKey(digest)) }
    }

    public func removeAll() async throws {
        try await unavailableOnFailure {
            var token: String?
            repeat {
                let page = try await client.list(prefix: root, after: token)
                for object in page.objects { try await client.delete(object.key) }
                token = page.next
            } while token != nil
        }
    }

    public func listBlobs(_ each: ([(digest: Digest, modified: Date)]) async throws -> Void) async throws {
        try await unavailableOnFailure {
            var token: String?
            repeat {
                let page = try await client.list(prefix: root + "blobs/", after: token)
                let found = page.objects.compactMap { object -> (digest: Digest, modified: Date)? in
                    let parts = object.key.split(separator: "/")
                    guard parts.count >= 3, let digest = Digest("\(parts[parts.count - 3]):\(parts[parts.count - 1])") else { return nil }
                    return (digest, object.modified)
                }
                if !found.isEmpty { try await each(found) }
                token = page.next
            } while token != nil
        }
    }

    /// The store's failures reach clients as "storage unavailable" (503), never as a crash or a 500.
    func unavailableOnFailure<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let failure as S3Failure {
            client.logger.warning("blob store request failed", metadata: ["error": "\(failure)"])
            throw BlobStoreError.unavailable(failure.description)
        }
    }
}
