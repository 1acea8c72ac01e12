import Foundation
import NIOCore
import NIOPosix

/// Build contexts on disk, one content-addressed store per project (so a build can only ever
/// be given its own project's contexts): `DATA/contexts/<project-id>/blobs/sha256/…`.
public struct ContextStore: Sendable {
    let root: URL
    /// Largest context accepted, in bytes.
    public let limit: Int64
    let fileIO = NonBlockingFileIO(threadPool: .singleton)

    public init(dataDirectory: URL, limit: Int64) {
        self.root = dataDirectory.appendingPathComponent("contexts")
        self.limit = limit
    }

    func store(_ projectId: String) throws -> FileSystemBlobStore {
        try FileSystemBlobStore(root: root.appendingPathComponent(projectId))
    }

    /// Streams a tar to disk, verifying its digest; returns its size.
    func put<S: AsyncSequence & Sendable>(projectId: String, digest: Digest, body: S) async throws -> Int64 where S.Element == ByteBuffer {
        let store = try store(projectId)
        let upload = Identifier.generate()
        try await store.createUpload(id: upload)
        do {
            _ = try await store.append(to: upload, body, limit: limit)
            return try await store.commit(upload: upload, as: digest)
        } catch {
            try? await store.cancelUpload(id: upload)
            throw error
        }
    }

    func path(projectId: String, digest: Digest) throws -> String? {
        guard let path = try store(projectId).path(of: digest), FileManager.default.fileExists(atPath: path) else { return nil }
        return path
    }

    /// The tar as a stream of 1 MiB chunks.
    func read(path: String) throws -> (size: Int64, body: AsyncThrowingStream<ArraySlice<UInt8>, any Error>) {
        var info = stat()
        guard stat(path, &info) == 0 else { throw POSIXError(.ENOENT) }
        let size = Int64(info.st_size)
        let reader = ChunkReader(handle: try FileHandle(forReadingFrom: URL(fileURLWithPath: path)))
        // Pulled one chunk at a time: a slow client never makes the server buffer the file.
        let stream = AsyncThrowingStream<ArraySlice<UInt8>, any Error>(unfolding: { try reader.next() })
        return (size, stream)
    }

    private final class ChunkReader: @unchecked Sendable {
        let handle: FileHandle
        init(handle: FileHandle) { self.handle = handle }
        deinit { try? handle.close() }
        func next() throws -> ArraySlice<UInt8>? {
            guard let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty else { return nil }
            return ArraySlice(chunk)
        }
    }

    func delete(projectId: String) {
        try? FileManager.default.removeItem(at: root.appendingPathComponent(projectId))
    }
}
