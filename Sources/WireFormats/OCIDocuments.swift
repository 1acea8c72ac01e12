/// The parts of OCI image manifests, image indexes and artifact manifests the registry reads
/// and writes. Every field is optional when decoding: the registry stores a manifest byte-exact
/// and only needs its references, so it accepts any well-typed document (Docker schema 2, OCI,
/// artifacts) and refuses only ill-typed ones.
public struct OCIDescriptor: Codable, Equatable, Sendable {
    public var mediaType: String?
    public var digest: String?
    public var size: Int64?
    public var artifactType: String?
    public var annotations: [String: String]?
    /// In an index: the platform of the manifest described.
    public var platform: OCIPlatform?

    public init(mediaType: String?, digest: String?, size: Int64?, artifactType: String? = nil, annotations: [String: String]? = nil,
                platform: OCIPlatform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.artifactType = artifactType
        self.annotations = annotations
        self.platform = platform
    }
}

public struct OCIPlatform: Codable, Equatable, Sendable {
    public var os: String?
    public var architecture: String?
    public var variant: String?

    public init(os: String?, architecture: String?, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// `os/architecture[/variant]`, when both of the first two are known.
    public var name: String? {
        guard let os, let architecture else { return nil }
        return [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }
}

/// A manifest or index as pushed: `config` and `layers` (image manifests), `blobs` (the
/// artifact manifest of OCI 1.1's drafts), `manifests` (indexes), `subject` (referrers).
public struct OCIManifestDocument: Decodable, Sendable {
    public var schemaVersion: Int?
    public var mediaType: String?
    public var artifactType: String?
    public var config: OCIDescriptor?
    public var layers: [OCIDescriptor]?
    public var blobs: [OCIDescriptor]?
    public var manifests: [OCIDescriptor]?
    public var subject: OCIDescriptor?
    public var annotations: [String: String]?

    /// Digests of the blobs it references (config, layers, artifact blobs).
    public var referencedBlobs: [String] {
        ([config].compactMap { $0 } + (layers ?? []) + (blobs ?? [])).compactMap(\.digest)
    }

    /// The blobs that must be in the repository before the manifest is: all it references but
    /// non-distributable ("foreign") layers, which the distribution spec lets a registry never
    /// receive (they are fetched from their `urls`).
    public var requiredBlobs: [String] {
        ([config].compactMap { $0 } + (layers ?? []).filter { !Self.isNonDistributable($0.mediaType) } + (blobs ?? [])).compactMap(\.digest)
    }

    /// OCI's `…layer.nondistributable.v1.tar…` and Docker's `…rootfs.foreign.diff.tar…`.
    public static func isNonDistributable(_ mediaType: String?) -> Bool {
        guard let mediaType else { return false }
        return mediaType.hasPrefix("application/vnd.oci.image.layer.nondistributable.v1.tar")
            || mediaType.hasPrefix("application/vnd.docker.image.rootfs.foreign.diff.tar")
    }

    /// Bytes of the image: the manifest's config and layers as they declare them (a client's
    /// numbers, not checked against the blobs: a sum past `Int64.max` stays at it).
    public var declaredImageBytes: Int64 {
        ([config].compactMap { $0 } + (layers ?? [])).reduce(0) { $0.addingClamped(max(0, $1.size ?? 0)) }
    }

    /// Digests of the manifests an index references.
    public var referencedManifests: [String] { (manifests ?? []).compactMap(\.digest) }

    /// The artifact type a referrers listing shows: the declared one, or else (as the distribution
    /// spec says) the config's media type.
    public var effectiveArtifactType: String? {
        artifactType ?? config?.mediaType
    }
}

/// An image index, as the referrers API answers.
public struct OCIIndex: Encodable, Sendable {
    public let schemaVersion = 2
    public let mediaType = "application/vnd.oci.image.index.v1+json"
    public let manifests: [OCIDescriptor]
    /// `--annotation index:KEY=VALUE`; left out when empty.
    public let annotations: [String: String]?

    public init(manifests: [OCIDescriptor], annotations: [String: String]? = nil) {
        self.manifests = manifests
        self.annotations = annotations?.isEmpty == true ? nil : annotations
    }
}

extension Int64 {
    /// `self + other`, held at `Int64.max` or `Int64.min` instead of trapping.
    public func addingClamped(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
