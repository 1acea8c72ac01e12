import DrydockProcess
import DrydockWireFormats
import Foundation

/// `force-compression=true`: every layer of an image in an OCI layout written again in the asked
/// compression and level, from its uncompressed bytes (buildah 1.28 keeps a layer's existing
/// compressed blob when it knows one, base layers included, and has no option against it). The
/// uncompressed content, and so the config's `diff_ids`, stay the same; the manifest and the
/// layout's index get the new descriptors.
enum Recompression {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func mediaType(_ compression: String) -> String {
        switch compression {
        case "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"
        case "uncompressed": "application/vnd.oci.image.layer.v1.tar"
        default: "application/vnd.oci.image.layer.v1.tar+gzip"
        }
    }

    /// The command that writes `compression` at `level` from standard input to standard output.
    static func compressor(_ compression: String, level: Int?) -> String {
        switch compression {
        case "zstd":
            let value = level ?? 3
            return "zstd -q -c -T0 \(value > 19 ? "--ultra " : "")-\(value)"
        case "uncompressed": return "cat"
        default: return "gzip -c -n -\(level ?? 6)"
        }
    }

    /// Decompresses whatever the blob is (gzip, zstd or plain tar), by its first bytes.
    static func decompressor(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw Failure(description: "layer blob \(path) is missing") }
        defer { try? handle.close() }
        let magic = [UInt8](handle.readData(ofLength: 4))
        if magic.starts(with: [0x1F, 0x8B]) { return "gzip -dc" }
        if magic.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return "zstd -dc -q" }
        return "cat"
    }

    static func sha256(of path: String) async throws -> (digest: String, size: Int) {
        let result = try await ChildProcess.run(["sha256sum", path])
        guard result.status == 0, let hex = result.output.split(separator: " ").first, hex.count == 64 else {
            throw Failure(description: "sha256sum \(path) failed: \(result.errorOutput)")
        }
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        return ("sha256:\(hex)", size)
    }

    static func blobPath(_ layout: URL, _ digest: String) -> String {
        layout.appendingPathComponent("blobs/sha256/\(digest.replacingOccurrences(of: "sha256:", with: ""))").path
    }

    /// Rewrites the layout's image; returns how many layers were written again.
    @discardableResult
    static func apply(layout: URL, compression: String, level: Int?) async throws -> Int {
        let indexURL = layout.appendingPathComponent("index.json")
        guard var index = try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any],
              var entries = index["manifests"] as? [[String: Any]], let first = entries.first, let manifestDigest = first["digest"] as? String,
              var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: blobPath(layout, manifestDigest)))) as? [String: Any],
              var layers = manifest["layers"] as? [[String: Any]]
        else { throw Failure(description: "the image layout at \(layout.path) has no image manifest") }
        let target = mediaType(compression)
        for (i, layer) in layers.enumerated() {
            guard let digest = layer["digest"] as? String else { continue }
            let source = blobPath(layout, digest)
            let scratch = layout.appendingPathComponent("blobs/sha256/recompress-\(i)").path
            let pipeline = "\(try decompressor(source)) < '\(source)' | \(compressor(compression, level: level)) > '\(scratch)'"
            let result = try await ChildProcess.run(["/bin/bash", "-o", "pipefail", "-c", pipeline])
            guard result.status == 0 else { throw Failure(description: "recompressing layer \(digest) failed: \(result.errorOutput)") }
            let written = try await sha256(of: scratch)
            _ = rename(scratch, blobPath(layout, written.digest))
            var updated = layer
            updated["mediaType"] = target
            updated["digest"] = written.digest
            updated["size"] = written.size
            layers[i] = updated
        }
        manifest["layers"] = layers
        let bytes = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys, .withoutEscapingSlashes])
        let newDigest = Digest.of(bytes, algorithm: .sha256).description
        try bytes.write(to: URL(fileURLWithPath: blobPath(layout, newDigest)))
        var entry = first
        entry["digest"] = newDigest
        entry["size"] = bytes.count
        entries[0] = entry
        index["manifests"] = entries
        try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .withoutEscapingSlashes]).write(to: indexURL)
        return layers.count
    }
}
