import Foundation
#if canImport(Glibc)
import Glibc
#endif
import HTTPTypes
import Hummingbird
import NIOCore

/// Blob reads (with ranges, served from the file) and deletes.
extension RegistryRoutes {
    func getBlob(_ request: Request, context: RegistryRequestContext, access: RepositoryAccess, digest raw: String) async throws -> Response {
        let (projectId, repository) = (access.projectId, access.repository)
        let digest = try Self.digest(raw)
        guard let size = try await store.linkedBlobSize(projectId: projectId, repository: repository, digest: digest) else {
            throw RegistryError.blobUnknown(digest.description)
        }
        // An object store can hand the bytes to the client itself (a presigned URL).
        if request.method == .get, let url = blobs.redirect(for: digest) {
            return Response(status: .temporaryRedirect, headers: [
                .location: url, HTTPField.Name("Docker-Content-Digest")!: digest.description, .contentLength: "0",
            ])
        }
        let path = blobs.path(of: digest)
        if let path, Glibc.access(path, F_OK) != 0 { throw RegistryError.blobUnknown(digest.description) }
        var headers: HTTPFields = [
            .contentType: "application/octet-stream",
            HTTPField.Name("Docker-Content-Digest")!: digest.description,
            .acceptRanges: "bytes",
            .eTag: "\"\(digest)\"",
        ]
        var status = HTTPResponse.Status.ok
        var range = 0...Int(max(size - 1, 0))
        if let header = request.headers[.range], size > 0 {
            guard let requested = parseByteRange(header, size: Int(size)) else {
                throw RegistryError(.rangeNotSatisfiable, "BLOB_UNKNOWN", "range \(header) not satisfiable for \(size) bytes",
                                    headers: [.contentRange: "bytes */\(size)"])
            }
            range = requested
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
        }
        let length = size == 0 ? 0 : range.count
        headers[.contentLength] = "\(length)"
        if request.method == .head || size == 0 {
            return Response(status: status, headers: headers, body: .init())
        }
        if let path {
            if zeroCopy {
                // The bytes go from the page cache to the socket (sendfile) below the HTTP encoder.
                headers[ZeroCopyFiles.header] = ZeroCopyFiles.value(path: path, offset: Int64(range.lowerBound), length: Int64(length))
                return Response(status: status, headers: headers, body: .init())
            }
            let body = try await fileIO.loadFile(path: path, range: range, context: context, chunkLength: 1 << 20)
            return Response(status: status, headers: headers, body: body)
        }
        guard let bytes = try await blobs.read(digest, range: Int64(range.lowerBound)...Int64(range.upperBound)) else {
            throw RegistryError.blobUnknown(digest.description)
        }
        return Response(status: status, headers: headers, body: bytes.responseBody)
    }

    func deleteBlob(access: RepositoryAccess, digest raw: String) async throws -> Response {
        let (projectId, repository) = (access.projectId, access.repository)
        let digest = try Self.digest(raw)
        guard try await store.unlinkBlob(projectId: projectId, repository: repository, digest: digest) else {
            throw RegistryError.blobUnknown(digest.description)
        }
        return Response(status: .accepted, headers: [.contentLength: "0"])
    }
}
