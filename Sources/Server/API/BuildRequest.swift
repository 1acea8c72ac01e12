import DrydockAPITypes
import DrydockBuildContext
import Foundation

/// Checks a build request field by field and turns it into what is stored.
enum BuildRequest {
    static func spec(_ body: Components.Schemas.BuildCreate, projectId: String) throws -> BuildSpec {
        let dockerfile = try self.dockerfile(body.dockerfile ?? "Dockerfile")
        if let target = body.target {
            guard !target.isEmpty, target.count <= 128, target.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
                throw DomainError.invalidField("target", "must name a build stage (letters, digits, '.', '_', '-')")
            }
        }
        var platforms: [Platform] = []
        for (i, raw) in (body.platforms ?? []).enumerated() {
            guard let platform = Platform(raw), platform.isSupported else {
                throw DomainError.invalidField("platforms[\(i)]", "'\(raw)' is not a supported platform; use \(Platform.supportedList)")
            }
            guard !platforms.contains(platform) else {
                throw DomainError.invalidField("platforms[\(i)]", "'\(raw)' is \(platform), which is already in the list")
            }
            platforms.append(platform)
        }
        if platforms.isEmpty { platforms = [Platform.host] }
        guard platforms.count <= 8 else { throw DomainError.invalidField("platforms", "at most 8 platforms per build") }
        var pushTags: [String] = []
        for (i, tag) in (body.tags ?? []).enumerated() {
            pushTags.append(try resolve(tag: tag, projectId: projectId, field: "tags[\(i)]"))
        }
        let buildArgs = body.buildArgs?.additionalProperties ?? [:]
        for key in buildArgs.keys where !isVariableName(key) {
            throw DomainError.invalidField("buildArgs.\(key)", "is not a valid build argument name")
        }
        let labels = body.labels?.additionalProperties ?? [:]
        for key in labels.keys where key.isEmpty || key.count > 256 {
            throw DomainError.invalidField("labels", "label keys must be 1 to 256 characters")
        }
        var insecure: [String] = []
        for (i, host) in (body.insecureRegistries ?? []).enumerated() {
            let allowed = host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || ".-:[]".contains($0)) }
            guard allowed, ImageReference.registryHost(of: host + "/x") == host || host == "localhost" else {
                throw DomainError.invalidField("insecureRegistries[\(i)]", "'\(host)' is not a registry host such as registry.local:5000")
            }
            if !insecure.contains(host) { insecure.append(host) }
        }
        let isolated = body.isolated ?? false
        if isolated {
            // Untrusted code lands only as <project>/build:<id>; nothing else it could overwrite.
            if !(body.tags ?? []).isEmpty {
                throw DomainError.invalidField("tags", "an isolated build pushes only to its own build tag \(projectId)/build:<build id>; it cannot tag images (build without --isolated, with a trusted token, to tag)")
            }
            if body.push == true {
                throw DomainError.invalidField("push", "an isolated build cannot push to other registries")
            }
            if !(body.secrets ?? []).isEmpty || !(body.registryCredentials ?? []).isEmpty {
                throw DomainError.invalidField("secrets", "no secrets or registry credentials reach an isolated build")
            }
        }
        var spec = BuildSpec(
            dockerfile: dockerfile, target: body.target, platforms: platforms, tags: body.tags ?? [], pushTags: pushTags,
            buildArgs: buildArgs, labels: labels, noCache: body.noCache ?? false, pull: body.pull?.rawValue ?? "missing",
            push: body.push ?? false, insecureRegistries: insecure.isEmpty ? nil : insecure, isolated: isolated ? true : nil)
        try outputs(body, into: &spec)
        return spec
    }

    /// Attestations, layer format and annotations; each combination that cannot be served is
    /// refused with its own reason, never built differently.
    static func outputs(_ body: Components.Schemas.BuildCreate, into spec: inout BuildSpec) throws {
        if let attestations = body.attestations {
            spec.provenance = attestations.provenance?.rawValue
            spec.sbom = attestations.sbom == true ? true : nil
        }
        if let format = body.imageFormat {
            let oci = format.ociMediaTypes ?? true
            switch format.compression {
            case .estargz?:
                if !oci {
                    throw DomainError.invalidField("imageFormat.ociMediaTypes", "compression=estargz needs oci-mediatypes=true: its TOC digest is a layer annotation, which docker's manifest format cannot carry")
                }
            case .zstd?, .zstd_colon_chunked?:
                if !oci {
                    throw DomainError.invalidField("imageFormat.ociMediaTypes", "compression=\(format.compression?.rawValue ?? "zstd") needs oci-mediatypes=true: docker's manifest format has no zstd layers")
                }
            default: break
            }
            if let level = format.compressionLevel {
                switch format.compression {
                case .gzip?, nil:
                    guard (0...9).contains(level) else { throw DomainError.invalidField("imageFormat.compressionLevel", "gzip levels are 0 to 9") }
                case .zstd?, .zstd_colon_chunked?:
                    guard (1...22).contains(level) else { throw DomainError.invalidField("imageFormat.compressionLevel", "zstd levels are 1 to 22") }
                case .uncompressed?:
                    throw DomainError.invalidField("imageFormat.compressionLevel", "uncompressed layers have no compression level")
                case .estargz?:
                    throw DomainError.invalidField("imageFormat.compressionLevel", "compression=estargz takes no compression level (its gzip members use the default)")
                }
            }
            if format.forceCompression == true, format.compression == .zstd_colon_chunked {
                throw DomainError.invalidField("imageFormat.forceCompression", "force-compression=true is not supported with zstd:chunked (its layers need buildah's own writer); use compression=zstd with force-compression, or zstd:chunked without it")
            }
            spec.compression = format.compression?.rawValue
            spec.compressionLevel = format.compressionLevel
            spec.forceCompression = format.forceCompression == true ? true : nil
            spec.ociMediaTypes = format.ociMediaTypes
        }
        if let annotations = body.annotations?.additionalProperties, !annotations.isEmpty {
            for key in annotations.keys {
                let bare = key.hasPrefix("manifest:") ? String(key.dropFirst(9)) : key.hasPrefix("index:") ? String(key.dropFirst(6)) : key
                if key.hasPrefix("manifest-descriptor:") || key.hasPrefix("index-descriptor:") {
                    throw DomainError.invalidField("annotations.\(key)", "descriptor annotations are not supported; use KEY, manifest:KEY or index:KEY")
                }
                guard !bare.isEmpty, bare.count <= 256, !bare.contains(":") || bare.contains("."),
                      bare.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value < 127 && $0 != "=" })
                else {
                    throw DomainError.invalidField("annotations.\(key)", "must be KEY, manifest:KEY or index:KEY with a printable key such as org.opencontainers.image.description")
                }
            }
            if annotations.keys.contains(where: { $0.hasPrefix("index:") }), spec.platforms.count < 2 {
                throw DomainError.invalidField("annotations", "index: annotations need a multi-platform build (a single-platform image has no index)")
            }
            spec.annotations = annotations
        }
    }

    static func secrets(_ body: Components.Schemas.BuildCreate) throws -> BuildSecrets {
        var out = BuildSecrets()
        for (i, secret) in (body.secrets ?? []).enumerated() {
            guard !secret.id.isEmpty, secret.id.count <= 64, secret.id.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
                throw DomainError.invalidField("secrets[\(i)].id", "must be 1 to 64 letters, digits, '.', '_' or '-'")
            }
            guard Data(base64Encoded: secret.value) != nil else {
                throw DomainError.invalidField("secrets[\(i)].value", "must be base64")
            }
            if out.secrets.contains(where: { $0.id == secret.id }) {
                throw DomainError.invalidField("secrets[\(i)].id", "'\(secret.id)' is given twice")
            }
            out.secrets.append(.init(id: secret.id, value: secret.value))
        }
        for (i, credential) in (body.registryCredentials ?? []).enumerated() {
            guard !credential.registry.isEmpty, !credential.registry.contains("/") else {
                throw DomainError.invalidField("registryCredentials[\(i)].registry", "must be a registry host such as ghcr.io or registry.example.com:5000")
            }
            out.credentials.append(.init(registry: credential.registry, username: credential.username, password: credential.password))
        }
        return out
    }

    /// A path inside the context: relative, without `..`.
    static func dockerfile(_ path: String) throws -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !path.isEmpty, !path.hasPrefix("/"), path.count <= 1024, !parts.contains(".."), !parts.isEmpty,
              !path.unicodeScalars.contains(where: { $0.value < 32 })
        else {
            throw DomainError.invalidField("dockerfile", "must be a relative path inside the context, without '..'")
        }
        return parts.filter { $0 != "." }.joined(separator: "/")
    }

    static func isVariableName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && CharacterSet.letters.contains(first)) else { return false }
        return name.count <= 256 && name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && CharacterSet.alphanumerics.contains($0)) }
    }

    /// `app`, `app:1`, `team/app` → `<project-id>/app:1` in the project registry; a reference
    /// whose first component is a host (`ghcr.io/x/app`, `localhost:5000/app`) stays as it is.
    static func resolve(tag raw: String, projectId: String, field: String) throws -> String {
        guard let reference = ImageReference(raw) else {
            throw DomainError.invalidField(field, "'\(raw)' is not an image reference like app, app:1.2 or registry.example.com/team/app:1.2")
        }
        return reference.resolved(inProject: projectId)
    }
}
