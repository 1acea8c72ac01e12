import DrydockClient
import Foundation

/// `-o type=oci|docker|local|tar,dest=PATH`.
/// One `--output`, as buildx spells it: files (`type=oci|docker|local|tar,dest=PATH`) or images
/// (`type=image,name=REF[,push=true]`, `type=registry,name=REF`, with `registry.insecure=true`
/// for a registry reached over plain HTTP).
struct OutputSpec {
    enum Kind: String { case oci, docker, local, tar, image, registry }
    let type: Kind
    let dest: String
    /// Image outputs: the names to tag, whether to push them, and whether over plain HTTP.
    var names: [String] = []
    var push = false
    var insecure = false
    /// Image outputs: the layer format asked for, if any.
    var format: LayerFormat?

    struct LayerFormat: Equatable {
        var compression: String?
        var level: Int?
        var force: Bool?
        var oci: Bool?

        var request: Components.Schemas.ImageFormat {
            .init(compression: compression.flatMap { .init(rawValue: $0) }, compressionLevel: level, forceCompression: force, ociMediaTypes: oci)
        }
    }

    var isImage: Bool { type == .image || type == .registry }

    init(_ raw: String) throws {
        var fields: [String: String] = [:]
        for part in raw.split(separator: ",") {
            if let eq = part.firstIndex(of: "=") {
                fields[String(part[..<eq])] = String(part[part.index(after: eq)...])
            } else {
                fields["dest"] = String(part)  // docker: -o PATH means type=local,dest=PATH
            }
        }
        let typeName = fields["type"] ?? "local"
        guard let type = Kind(rawValue: typeName) else {
            throw CLIError("--output type=\(typeName) is not supported; use oci, docker, local, tar, image or registry")
        }
        self.type = type
        func flag(_ key: String) throws -> Bool {
            guard let value = fields[key] else { return false }
            guard let parsed = Bool(value.lowercased()) else { throw CLIError("--output \(raw): \(key) takes true or false (got '\(value)')") }
            return parsed
        }
        if type == .image || type == .registry {
            guard let name = fields["name"], !name.isEmpty else {
                throw CLIError("--output type=\(typeName) needs name=REFERENCE, e.g. type=\(typeName),name=registry.example.com/app:1")
            }
            self.dest = ""
            self.names = [name]
            let pushFlag = try flag("push")
            self.push = type == .registry || pushFlag
            self.insecure = try flag("registry.insecure")
            var format = LayerFormat()
            if let compression = fields["compression"] {
                let known = ["gzip", "zstd", "uncompressed", "zstd:chunked", "estargz"]
                guard known.contains(compression) else {
                    throw CLIError("--output \(raw): compression is one of \(known.joined(separator: ", ")), not '\(compression)'")
                }
                format.compression = compression
            }
            if let level = fields["compression-level"] {
                guard let value = Int(level) else { throw CLIError("--output \(raw): compression-level takes a number, not '\(level)'") }
                guard format.compression != nil else { throw CLIError("--output \(raw): compression-level needs compression=gzip|zstd") }
                format.level = value
            }
            if fields["force-compression"] != nil { format.force = try flag("force-compression") }
            if fields["oci-mediatypes"] != nil { format.oci = try flag("oci-mediatypes") }
            if format.force == true, format.compression == "zstd:chunked" {
                throw CLIError("--output \(raw): force-compression=true is not supported with compression=zstd:chunked; use compression=zstd,force-compression=true or zstd:chunked without forcing")
            }
            if format.oci == false, format.compression == "estargz" {
                throw CLIError("--output \(raw): compression=estargz needs oci-mediatypes=true (its TOC digest is a layer annotation, which docker's manifest format cannot carry)")
            }
            if format.level != nil, format.compression == "estargz" {
                throw CLIError("--output \(raw): compression=estargz takes no compression-level")
            }
            if format.oci == false, let compression = format.compression, compression.hasPrefix("zstd") {
                throw CLIError("--output \(raw): compression=\(compression) needs oci-mediatypes=true (docker's manifest format has no zstd layers)")
            }
            let knownKeys: Set = ["type", "name", "push", "registry.insecure", "compression", "compression-level", "force-compression",
                                  "oci-mediatypes", "dest"]
            if let unknown = fields.keys.sorted().first(where: { !knownKeys.contains($0) }) {
                throw CLIError("--output \(raw): '\(unknown)' is not supported; image outputs take name, push, compression, compression-level, force-compression, oci-mediatypes, registry.insecure")
            }
            if format != LayerFormat() { self.format = format }
            return
        }
        guard let dest = fields["dest"], !dest.isEmpty, dest != "-" else {
            throw CLIError("--output \(raw): give dest=PATH (writing to standard output is not supported)")
        }
        self.dest = dest
    }
}

/// Getting a built image out of the project registry onto this machine, with skopeo.
enum ImageExport {
    static func authFile(registryHost: String, token: String) throws -> URL {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-auth-\(UUID().uuidString).json")
        let auth = Data("drydock:\(token)".utf8).base64EncodedString()
        let data = try JSONSerialization.data(withJSONObject: ["auths": [registryHost: ["auth": auth]]])
        guard FileManager.default.createFile(atPath: file.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("cannot write a temporary credentials file in \(FileManager.default.temporaryDirectory.path)")
        }
        return file
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static func skopeo(_ arguments: [String], registryHost: String, insecure: Bool, token: String) async throws {
        guard let skopeo = which("skopeo") else {
            throw CLIError("exporting the image needs skopeo (apt-get install skopeo); or pull it yourself from the registry")
        }
        let auth = try authFile(registryHost: registryHost, token: token)
        defer { try? FileManager.default.removeItem(at: auth) }
        var args = ["copy", "--quiet", "--src-authfile", auth.path]
        if insecure { args.append("--src-tls-verify=false") }
        try await Helper.run(skopeo, args + arguments)
    }

    static func export(image: String, to spec: OutputSpec, name: String, registryHost: String, insecure: Bool, token: String,
                       allPlatforms: Bool = false) async throws {
        let dest = URL(fileURLWithPath: spec.dest).standardizedFileURL.path
        switch spec.type {
        case .image, .registry:
            return  // tags and pushes: the builder does those
        case .oci:
            try? FileManager.default.removeItem(atPath: dest)
            try await skopeo((allPlatforms ? ["--all"] : []) + ["docker://\(image)", "oci-archive:\(dest):\(name)"],
                             registryHost: registryHost, insecure: insecure, token: token)
        case .docker:
            try? FileManager.default.removeItem(atPath: dest)
            try await skopeo(["docker://\(image)", "docker-archive:\(dest):\(name)"], registryHost: registryHost, insecure: insecure, token: token)
        case .local, .tar:
            let layout = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-oci-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: layout) }
            try await skopeo(["docker://\(image)", "oci:\(layout.path):image"], registryHost: registryHost, insecure: insecure, token: token)
            let rootfs = spec.type == .local ? dest : layout.path + "-rootfs"
            defer { if spec.type == .tar { try? FileManager.default.removeItem(atPath: rootfs) } }
            try FileManager.default.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
            try await flatten(layout: layout, into: rootfs)
            if spec.type == .tar {
                guard let tar = which("tar") else { throw CLIError("type=tar needs tar") }
                try await Helper.run(tar, ["-cf", dest, "-C", rootfs, "."])
            }
        }
    }

    /// Applies the image's layers in order (with their whiteouts) to make its filesystem.
    static func flatten(layout: URL, into rootfs: String) async throws {
        guard let tar = which("tar") else { throw CLIError("type=local needs tar") }
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: layout.appendingPathComponent("index.json"))) as? [String: Any]
        guard let manifestDigest = ((index?["manifests"] as? [[String: Any]])?.first?["digest"] as? String) else {
            throw CLIError("the exported image has no manifest")
        }
        func blob(_ digest: String) -> URL {
            layout.appendingPathComponent("blobs/sha256/" + digest.replacingOccurrences(of: "sha256:", with: ""))
        }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: blob(manifestDigest))) as? [String: Any]
        for layer in (manifest?["layers"] as? [[String: Any]]) ?? [] {
            guard let digest = layer["digest"] as? String else { continue }
            let file = blob(digest).path
            // Whiteouts first: they delete what lower layers put there.
            let listing = try await Helper.run(tar, ["-tf", file])
            for entry in listing.split(separator: "\n").map(String.init) {
                let path = entry.hasPrefix("./") ? String(entry.dropFirst(2)) : entry
                // (NSString path helpers crash on some single-component paths on Linux.)
                let slash = path.lastIndex(of: "/")
                let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
                let dir = slash.map { String(path[..<$0]) } ?? ""
                guard name.hasPrefix(".wh."), !path.contains("..") else { continue }
                let target = rootfs + "/" + dir
                if name == ".wh..wh..opq" {
                    for child in (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? [] {
                        try? FileManager.default.removeItem(atPath: target + "/" + child)
                    }
                } else {
                    try? FileManager.default.removeItem(atPath: target + "/" + String(name.dropFirst(4)))
                }
            }
            try await Helper.run(tar, ["-xf", file, "-C", rootfs, "--exclude=.wh.*", "--no-same-owner"])
        }
    }

    /// `--load`: the local Docker engine when one answers, else containers-storage.
    static func load(image: String, name: String, registryHost: String, insecure: Bool, token: String) async throws -> String {
        let dockerSocket = "/var/run/docker.sock"
        if FileManager.default.fileExists(atPath: dockerSocket), let docker = which("docker"),
           (try? await Helper.run(docker, ["version", "--format", "{{.Server.Version}}"])) != nil {
            try await skopeo(["docker://\(image)", "docker-daemon:\(name)"], registryHost: registryHost, insecure: insecure, token: token)
            return "the Docker engine"
        }
        if which("skopeo") != nil, which("podman") != nil || which("buildah") != nil {
            try await skopeo(["docker://\(image)", "containers-storage:\(name)"], registryHost: registryHost, insecure: insecure, token: token)
            return "containers-storage (podman/buildah)"
        }
        throw CLIError("--load found no Docker engine and no podman/buildah with skopeo here; use --output type=oci,dest=image.tar (or type=docker) and load that file, or pull \(image)")
    }
}
