import Foundation
import NIOCore

/// Build contexts, one content-addressed store per project (so a build can only ever be given
/// its own project's contexts): `contexts/<project-id>/blobs/sha256/…` under the data directory,
/// the shared directory or the S3 prefix.
public struct ContextStore: Sendable {
    /// Largest context accepted, in bytes.
    public let limit: Int64
    let makeStore: @Sendable (String) throws -> any BlobStore

    /// Contexts on the local (or shared) filesystem.
    public init(dataDirectory: URL, limit: Int64) {
        let root = dataDirectory.appendingPathComponent("contexts")
        self.init(limit: limit) { projectId in try FileSystemBlobStore(root: root.appendingPathComponent(projectId)) }
    }

    public init(limit: Int64, makeStore: @escaping @Sendable (String) throws -> any BlobStore) {
        self.limit = limit
        self.makeStore = makeStore
    }

    func store(_ projectId: String) throws -> any BlobStore { try makeStore(projectId) }

    /// Streams a tar into the store, verifying its digest; returns its size.
    func put<S: AsyncSequence & Sendable>(projectId: String, digest: Digest, body: S) async throws -> Int64 where S.Element == ByteBuffer {
        let store = try store(projectId)
        let upload = Identifier.generate()
        try await store.createUpload(id: upload)
        do {
            return try await store.commit(upload: upload, appending: body, limit: limit, as: digest)
        } catch {
            try? await store.cancelUpload(id: upload)
            throw error
        }
    }

    func exists(projectId: String, digest: Digest) async throws -> Bool {
        try await store(projectId).size(of: digest) != nil
    }

    /// The tar as a stream of chunks; nil when the project has no such context.
    func read(projectId: String, digest: Digest) async throws -> (size: Int64, body: AsyncThrowingStream<ArraySlice<UInt8>, any Error>)? {
        guard let bytes = try await store(projectId).read(digest, range: nil) else { return nil }
        let body = bytes.body.map { ArraySlice($0.readableBytesView) }
        let box = Box(body.makeAsyncIterator())
        return (bytes.size, AsyncThrowingStream(unfolding: { try await box.next() }))
    }

    private final class Box<I: AsyncIteratorProtocol>: @unchecked Sendable where I.Element == ArraySlice<UInt8> {
        var iterator: I
        init(_ iterator: I) { self.iterator = iterator }
        func next() async throws -> ArraySlice<UInt8>? { try await iterator.next() }
    }

    func delete(projectId: String) async {
        try? await store(projectId).removeAll()
    }
}
