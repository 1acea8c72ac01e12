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
        default: "application/vnd.oci.image.layer.v1.tar+gzip"  // gzip and eStargz
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
        var diffIDs: [String] = []
        let script = layout.appendingPathComponent("estargz.py").path
        if compression == "estargz" {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
                throw Failure(description: "compression=estargz needs python3 on the builder (apt-get install python3)")
            }
            try EStargz.script.write(toFile: script, atomically: true, encoding: .utf8)
        }
        for (i, layer) in layers.enumerated() {
            guard let digest = layer["digest"] as? String else { continue }
            let source = blobPath(layout, digest)
            let scratch = layout.appendingPathComponent("blobs/sha256/recompress-\(i)").path
            var updated = layer
            if compression == "estargz" {
                // The uncompressed tar, then the eStargz writer; then read back and checked.
                let tar = scratch + ".tar"
                let unpacked = try await ChildProcess.run(["/bin/bash", "-o", "pipefail", "-c", "\(try decompressor(source)) < '\(source)' > '\(tar)'"])
                guard unpacked.status == 0 else { throw Failure(description: "unpacking layer \(digest) failed: \(unpacked.errorOutput)") }
                let converted = try await ChildProcess.run(["/usr/bin/python3", script, "convert", tar, scratch])
                try? FileManager.default.removeItem(atPath: tar)
                guard converted.status == 0, let facts = try JSONSerialization.jsonObject(with: Data(converted.output.utf8)) as? [String: Any],
                      let toc = facts["tocDigest"] as? String, let diffID = facts["diffID"] as? String, let size = facts["uncompressedSize"] as? Int
                else { throw Failure(description: "converting layer \(digest) to eStargz failed: \(converted.errorOutput)") }
                let verified = try await ChildProcess.run(["/usr/bin/python3", script, "verify", scratch])
                guard verified.status == 0, let check = try JSONSerialization.jsonObject(with: Data(verified.output.utf8)) as? [String: Any],
                      check["tocDigest"] as? String == toc
                else { throw Failure(description: "the eStargz layer made from \(digest) does not read back: \(verified.errorOutput)") }
                var annotations = layer["annotations"] as? [String: String] ?? [:]
                annotations[EStargz.tocAnnotation] = toc
                annotations[EStargz.sizeAnnotation] = "\(size)"
                updated["annotations"] = annotations
                diffIDs.append(diffID)
            } else {
                let pipeline = "\(try decompressor(source)) < '\(source)' | \(compressor(compression, level: level)) > '\(scratch)'"
                let result = try await ChildProcess.run(["/bin/bash", "-o", "pipefail", "-c", pipeline])
                guard result.status == 0 else { throw Failure(description: "recompressing layer \(digest) failed: \(result.errorOutput)") }
            }
            let written = try await sha256(of: scratch)
            _ = rename(scratch, blobPath(layout, written.digest))
            updated["mediaType"] = target
            updated["digest"] = written.digest
            updated["size"] = written.size
            layers[i] = updated
        }
        manifest["layers"] = layers
        if compression == "estargz" {
            // The uncompressed layers now hold the TOC entry: the config's diff_ids follow them.
            guard var descriptor = manifest["config"] as? [String: Any], let configDigest = descriptor["digest"] as? String,
                  var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: blobPath(layout, configDigest)))) as? [String: Any],
                  var rootfs = config["rootfs"] as? [String: Any]
            else { throw Failure(description: "the image's config cannot be read") }
            rootfs["diff_ids"] = diffIDs
            config["rootfs"] = rootfs
            let configBytes = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys, .withoutEscapingSlashes])
            let newConfig = Digest.of(configBytes, algorithm: .sha256).description
            try configBytes.write(to: URL(fileURLWithPath: blobPath(layout, newConfig)))
            descriptor["digest"] = newConfig
            descriptor["size"] = configBytes.count
            manifest["config"] = descriptor
        }
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
