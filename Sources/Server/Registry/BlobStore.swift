import Foundation
import Hummingbird
import NIOCore
import NIOPosix
import Synchronization

/// Content-addressed blob storage. Uploads stream into a temporary file; a blob becomes visible
/// only after its digest is verified and the file is fsynced and renamed into place, so nothing
/// half-written is ever served. An S3-compatible store can implement the same protocol.
public protocol BlobStore: Sendable {
    func size(of digest: Digest) async throws -> Int64?
    /// The local path of a stored blob, for zero-copy serving; nil when the store is remote.
    func path(of digest: Digest) -> String?
    /// The blob's bytes (or the range of them) as a stream; nil when there is no such blob.
    func read(_ digest: Digest, range: ClosedRange<Int64>?) async throws -> BlobBytes?
    /// A URL the client may fetch the blob from directly (a presigned store URL), when enabled.
    func redirect(for digest: Digest) -> String?
    func createUpload(id: String) async throws
    /// Appends to an upload and returns its new size.
    func append<S: AsyncSequence & Sendable>(to id: String, _ chunks: S, limit: Int64) async throws -> Int64 where S.Element == ByteBuffer
    func uploadSize(id: String) async throws -> Int64?
    /// Verifies the upload against `digest` and moves it into place. Throws `BlobStoreError.digestMismatch`.
    func commit(upload id: String, as digest: Digest) async throws -> Int64
    /// Appends the last bytes and commits, in one step (a remote store saves a round trip of the tail).
    func commit<S: AsyncSequence & Sendable>(upload id: String, appending chunks: S, limit: Int64, as digest: Digest) async throws -> Int64
    where S.Element == ByteBuffer
    func cancelUpload(id: String) async throws
    func delete(_ digest: Digest) async throws
    /// Removes every blob and upload of this store (a deleted project's contexts).
    func removeAll() async throws
    /// Every stored blob with its write time, a page at a time: the collector's sweep for
    /// blobs no database row knows (a crash between storing and linking).
    func listBlobs(_ each: ([(digest: Digest, modified: Date)]) async throws -> Void) async throws
}

/// A blob's bytes on their way out, read once: as a stream, or handed to an HTTP answer directly
/// (no stream in between for each chunk).
public struct BlobBytes: Sendable {
    public let size: Int64
    private let makeStream: @Sendable () -> AsyncThrowingStream<ByteBuffer, any Error>
    private let makeResponse: @Sendable () -> ResponseBody

    init<S: AsyncSequence & Sendable>(size: Int64, sequence: S) where S.Element == ByteBuffer {
        self.size = size
        self.makeStream = { Self.stream(sequence) }
        self.makeResponse = { ResponseBody(asyncSequence: sequence) }
    }

    /// The bytes as a stream (use this or `responseBody`, once).
    public var body: AsyncThrowingStream<ByteBuffer, any Error> { makeStream() }
    /// The bytes as an HTTP answer's body.
    var responseBody: ResponseBody { makeResponse() }

    /// Any byte-buffer sequence as a stream pulled one element at a time (so a slow reader
    /// never makes the server buffer).
    static func stream<S: AsyncSequence & Sendable>(_ sequence: S) -> AsyncThrowingStream<ByteBuffer, any Error> where S.Element == ByteBuffer {
        let box = IteratorBox(sequence.makeAsyncIterator())
        return AsyncThrowingStream(unfolding: { try await box.next() })
    }

    private final class IteratorBox<I: AsyncIteratorProtocol>: @unchecked Sendable where I.Element == ByteBuffer {
        var iterator: I
        init(_ iterator: I) { self.iterator = iterator }
        func next() async throws -> ByteBuffer? { try await iterator.next() }
    }
}

public enum BlobStoreError: Error, Equatable {
    case uploadUnknown
    case digestMismatch(actual: String)
    case tooLarge
    /// The disk (or quota) is full: ENOSPC or EDQUOT from a write or an fsync.
    case storageFull
    /// The object store failed (after retries) or could not be reached; the text says how.
    case unavailable(String)
}

/// Runs file I/O, reporting a full disk as `BlobStoreError.storageFull` whatever layer raised it.
func reportingFullDisk<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as IOError where error.errnoCode == ENOSPC || error.errnoCode == EDQUOT {
        throw BlobStoreError.storageFull
    }
}

/// `fsync`, failing as a write would: on a full disk a delayed write-back fails here.
func syncToDisk(_ fd: Int32) throws {
    guard fsync(fd) == 0 else {
        if errno == ENOSPC || errno == EDQUOT { throw BlobStoreError.storageFull }
        throw IOError(errnoCode: errno, reason: "fsync")
    }
}

public struct FileSystemBlobStore: BlobStore {
    let root: URL
    let fileIO = NonBlockingFileIO(threadPool: .singleton)
    /// SHA-256 of each upload so far, computed as its bytes arrive, so committing does not read
    /// the file again. An upload whose state is missing here (the server restarted mid-upload, an
    /// append failed half-way, or the digest is sha512) is hashed from disk at commit instead.
    private let running = RunningHashes()

    final class RunningHashes: Sendable {
        private let state = Mutex<[String: (size: Int64, hasher: DigestHasher)]>([:])
        func take(_ id: String) -> (size: Int64, hasher: DigestHasher)? { state.withLock { $0.removeValue(forKey: id) } }
        func put(_ id: String, size: Int64, hasher: DigestHasher) { state.withLock { $0[id] = (size, hasher) } }
    }

    public init(root: URL) throws {
        self.root = root
        for sub in ["blobs/sha256", "blobs/sha512", "uploads"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
    }

    public func path(of digest: Digest) -> String? {
        root.appendingPathComponent("blobs/\(digest.algorithm.rawValue)/\(digest.hex.prefix(2))/\(digest.hex)").path
    }

    func uploadPath(_ id: String) -> String { root.appendingPathComponent("uploads/\(id)").path }

    public func size(of digest: Digest) async throws -> Int64? {
        var info = stat()
        guard let path = path(of: digest), stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    public func createUpload(id: String) async throws {
        let fd = open(uploadPath(id), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        close(fd)
    }

    public func uploadSize(id: String) async throws -> Int64? {
        var info = stat()
        guard stat(uploadPath(id), &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    public func append<S: AsyncSequence & Sendable>(to id: String, _ chunks: S, limit: Int64) async throws -> Int64 where S.Element == ByteBuffer {
        let path = uploadPath(id)
        guard FileManager.default.fileExists(atPath: path) else { throw BlobStoreError.uploadUnknown }
        let previous = running.take(id)
        return try await reportingFullDisk { try await fileIO.withFileHandle(_deprecatedPath: path, mode: .write, flags: .default) { handle in
            var offset = try await fileIO.readFileSize(fileHandle: handle)
            // Continue the running hash only if it covers exactly what is on disk.
            var hasher: DigestHasher? =
                if let previous, previous.size == offset { previous.hasher } else if offset == 0 { DigestHasher(.sha256) } else { nil }
            // Chunks are gathered into writes of about 1 MiB: one thread-pool hop per MiB, not per chunk.
            var pending = ByteBuffer()
            var total = offset
            for try await chunk in chunks {
                guard total + Int64(chunk.readableBytes) <= limit else { throw BlobStoreError.tooLarge }
                chunk.withUnsafeReadableBytes { hasher?.update(bufferPointer: $0) }
                total += Int64(chunk.readableBytes)
                if pending.readableBytes == 0, chunk.readableBytes >= 1 << 20 {
                    try await fileIO.write(fileHandle: handle, toOffset: offset, buffer: chunk)
                    offset += Int64(chunk.readableBytes)
                    continue
                }
                pending.writeImmutableBuffer(chunk)
                if pending.readableBytes >= 1 << 20 {
                    try await fileIO.write(fileHandle: handle, toOffset: offset, buffer: pending)
                    offset += Int64(pending.readableBytes)
                    pending.clear()
                }
            }
            if pending.readableBytes > 0 {
                try await fileIO.write(fileHandle: handle, toOffset: offset, buffer: pending)
                offset += Int64(pending.readableBytes)
            }
            if let hasher { running.put(id, size: offset, hasher: hasher) }
            return offset
        } }
    }

    public func commit(upload id: String, as digest: Digest) async throws -> Int64 {
        let source = uploadPath(id)
        guard FileManager.default.fileExists(atPath: source) else { throw BlobStoreError.uploadUnknown }
        // Hash what is on disk: it is what will be served, and it survives server restarts.
        let streamed = running.take(id)
        let (actual, size) = try await reportingFullDisk { try await fileIO.withFileHandle(_deprecatedPath: source, mode: .read) { handle in
            let onDisk = try await fileIO.readFileSize(fileHandle: handle)
            if let streamed, streamed.size == onDisk, streamed.hasher.algorithm == digest.algorithm {
                try handle.withUnsafeFileDescriptor { fd in try syncToDisk(fd) }
                return (streamed.hasher.finalize(), onDisk)
            }
            var hasher = DigestHasher(digest.algorithm)
            var size: Int64 = 0
            while true {
                let chunk = try await fileIO.read(fileHandle: handle, fromOffset: size, byteCount: 1 << 20, allocator: ByteBufferAllocator())
                if chunk.readableBytes == 0 { break }
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                size += Int64(chunk.readableBytes)
            }
            try handle.withUnsafeFileDescriptor { fd in try syncToDisk(fd) }
            return (hasher.finalize(), size)
        } }
        guard actual == digest else {
            unlink(source)
            throw BlobStoreError.digestMismatch(actual: actual.description)
        }
        guard let destination = path(of: digest) else { throw BlobStoreError.uploadUnknown }
        let directory = (destination as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard rename(source, destination) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
        return size
    }

    public func commit<S: AsyncSequence & Sendable>(upload id: String, appending chunks: S, limit: Int64, as digest: Digest) async throws -> Int64
    where S.Element == ByteBuffer {
        _ = try await append(to: id, chunks, limit: limit)
        return try await commit(upload: id, as: digest)
    }

    public func read(_ digest: Digest, range: ClosedRange<Int64>?) async throws -> BlobBytes? {
        guard let path = path(of: digest), let handle = FileHandle(forReadingAtPath: path) else { return nil }
        let reader = ChunkReader(handle: handle)
        var info = stat()
        guard fstat(handle.fileDescriptor, &info) == 0 else { return nil }
        var remaining = Int64(info.st_size)
        if let range {
            try handle.seek(toOffset: UInt64(range.lowerBound))
            remaining = min(remaining - range.lowerBound, Int64(range.count))
        }
        reader.remaining = max(remaining, 0)
        return BlobBytes(size: reader.remaining, sequence: AsyncThrowingStream(unfolding: { try reader.next() }))
    }

    /// Reads 1 MiB at a time, up to `remaining` bytes.
    private final class ChunkReader: @unchecked Sendable {
        let handle: FileHandle
        var remaining: Int64 = 0
        init(handle: FileHandle) { self.handle = handle }
        deinit { try? handle.close() }
        func next() throws -> ByteBuffer? {
            guard remaining > 0, let chunk = try handle.read(upToCount: Int(min(remaining, 1 << 20))), !chunk.isEmpty else { return nil }
            remaining -= Int64(chunk.count)
            return ByteBuffer(data: chunk)
        }
    }

    public func redirect(for digest: Digest) -> String? { nil }

    public func removeAll() async throws {
        try? FileManager.default.removeItem(at: root)
    }

    public func listBlobs(_ each: ([(digest: Digest, modified: Date)]) async throws -> Void) async throws {
        for algorithm in [Digest.Algorithm.sha256, .sha512] {
            let base = root.appendingPathComponent("blobs/\(algorithm.rawValue)")
            let shards = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
            for shard in shards.sorted() {
                var page: [(digest: Digest, modified: Date)] = []
                for name in (try? FileManager.default.contentsOfDirectory(atPath: base.appendingPathComponent(shard).path)) ?? [] {
                    var info = stat()
                    guard let digest = Digest("\(algorithm.rawValue):\(name)"), let path = path(of: digest), stat(path, &info) == 0 else { continue }
                    page.append((digest, Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec))))
                }
                if !page.isEmpty { try await each(page) }
            }
        }
    }

    public func cancelUpload(id: String) async throws {
        _ = running.take(id)
        unlink(uploadPath(id))
    }

    public func delete(_ digest: Digest) async throws {
        if let path = path(of: digest) { unlink(path) }
    }
}
