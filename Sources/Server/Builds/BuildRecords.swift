import Foundation
import Logging
import PostgresNIO

public enum BuildStatus: String, Sendable, Codable {
    case queued, running, succeeded, failed, canceled

    var isFinished: Bool { self == .succeeded || self == .failed || self == .canceled }
}

/// What was asked of a build, stored as JSON beside it.
struct BuildSpec: Codable, Sendable {
    var dockerfile: String
    var target: String?
    var platforms: [Platform]
    var tags: [String]
    /// `tags` resolved to full destinations (bare names inside the project registry).
    var pushTags: [String]
    var buildArgs: [String: String]
    var labels: [String: String]
    var noCache: Bool
    var pull: String
    var push: Bool
    /// Hosts the builder may push to over plain HTTP (besides loopback ones).
    var insecureRegistries: [String]? = nil
    /// Untrusted code: a throwaway storage, no cache, secrets or tags (`drydock build --isolated`).
    var isolated: Bool? = nil
    /// Named contexts: name → `<project>/build:<id>@<digest>` of another build of the project.
    var namedImages: [String: String]? = nil
    /// Named contexts that are directories: name → the digest of an uploaded context.
    var namedContexts: [String: String]? = nil
    /// Named contexts whose build has not succeeded yet: name → build id. The build's jobs are
    /// blocked until each has succeeded (and moved to `namedImages`).
    var pendingContexts: [String: String]? = nil
    /// The `drydock bake` run (its id and this build's target).
    var bakeId: String? = nil
    var bakeTarget: String? = nil
    /// Attestations: provenance `none|min|max` (nil: `min`), and whether an SBOM is attached.
    var provenance: String? = nil
    var sbom: Bool? = nil
    /// Layer format (`--output type=image,compression=…`); nil: the builder's default (gzip).
    var compression: String? = nil
    var compressionLevel: Int? = nil
    var forceCompression: Bool? = nil
    var ociMediaTypes: Bool? = nil
    /// `--annotation`: keys as given (`KEY`, `manifest:KEY`, `index:KEY`).
    var annotations: [String: String]? = nil

    /// The annotations for each platform's manifest, and for the index.
    var manifestAnnotations: [String: String] {
        (annotations ?? [:]).reduce(into: [:]) { result, entry in
            if entry.key.hasPrefix("manifest:") { result[String(entry.key.dropFirst("manifest:".count))] = entry.value }
            else if !entry.key.hasPrefix("index:") { result[entry.key] = entry.value }
        }
    }
    var indexAnnotations: [String: String] {
        (annotations ?? [:]).reduce(into: [:]) { result, entry in
            if entry.key.hasPrefix("index:") { result[String(entry.key.dropFirst("index:".count))] = entry.value }
        }
    }

    /// Where the builder puts the image besides `<project>/build:<id>`: tags in the project's
    /// registry always, tags on other registries only when pushing.
    func destinations(projectId: String) -> [String] {
        pushTags.filter { push || $0.hasPrefix(projectId + "/") }
    }
}

struct JobRecord: Sendable {
    var id: String
    var buildId: String
    var platform: String
    var status: BuildStatus
    var workerName: String?
    var startedAt: Date?
    var finishedAt: Date?
    var digest: String?
    var error: String?
    var emulated = false
}

extension BuildRecord {
    /// Where a job pushes its image: the build's own tag for a single-platform build, a tag per
    /// platform (`build:<id>-linux-arm64`) when the server will write an index over them.
    func image(forJobOn platform: String) -> String {
        guard spec.platforms.count > 1 else { return "\(projectId)/build:\(id)" }
        let suffix = Platform(platform)?.pathComponent ?? platform.replacingOccurrences(of: "/", with: "-")
        return "\(projectId)/build:\(id)-\(suffix)"
    }
}

struct BuildRecord: Sendable {
    var id: String
    var projectId: String
    var organizationId: String
    var status: BuildStatus
    var contextDigest: String
    var spec: BuildSpec
    var digest: String?
    var error: String?
    var createdAt: Date
    var startedAt: Date?
    var finishedAt: Date?
    var jobs: [JobRecord] = []
    var steps: [StepRecord] = []

    /// What the cache saved: every cached step's `savedMs`, summed.
    var cacheSavedMs: Int64 {
        steps.reduce(Int64(0)) { $0.addingClamped($1.cached ? max($1.savedMs ?? 0, 0) : 0) }
    }
}

/// A job handed to a worker, with everything it needs.
struct ClaimedJob: Sendable {
    var job: JobRecord
    var build: BuildRecord
    var buildToken: String
    var secrets: BuildSecrets
    /// The project's cache generation for the job's platform, and its cache policy.
    var cacheGeneration: Int = 0
    var keepGigabytes: Int = 50
    var keepDays: Int = 14
    /// What the build token grants, so its first use needs no database lookup.
    var buildGrant: TokenGrant? = nil
}

/// How build specs and log entries are stored as JSON: RFC 3339 dates, the API's own format.
enum BuildJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = RFC3339DateTranscoder.encodingStrategy
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = RFC3339DateTranscoder.decodingStrategy
        return d
    }()
}
