import Foundation
import Logging
import PostgresNIO

/// Closes a multi-platform build whose jobs all succeeded: writes the OCI image index of its
/// per-platform images into the project registry (as `<project>/build:<build-id>` and under every
/// project tag the build asked for) and records the index digest as the build's. The server owns
/// the project registry, so no builder holds anything for this.
struct IndexAssembler: Sendable {
    let builds: BuildStore
    let registry: RegistryStore
    let logger: Logger
    /// Where a blob of the project registry is on disk (to push it to another registry).
    var blobs: (any BlobStore)? = nil

    static let indexMediaType = "application/vnd.oci.image.index.v1+json"

    /// How often a running assembly renews its hold on the build (`BuildStore.assemblyHoldSeconds`).
    var renewal: Duration = .seconds(30)

    /// Assembles and closes, unless another assembly of this build is running (on this server or
    /// another); a failure closes the build as failed with the reason.
    func assemble(buildId: String) async {
        do {
            guard try await builds.claimAssembly(buildId: buildId) else {
                logger.debug("another assembly holds this build's index", metadata: ["build": "\(buildId)"])
                return
            }
        } catch {
            // The lease reaper's sweep tries again.
            logger.warning("could not take a build's index assembly", metadata: ["build": "\(buildId)", "error": "\(String(reflecting: error))"])
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [builds, renewal] in
                while (try? await Task.sleep(for: renewal)) != nil {
                    try? await builds.renewAssembly(buildId: buildId)
                }
            }
            await assembleAndClose(buildId: buildId)
            group.cancelAll()
        }
    }

    private func assembleAndClose(buildId: String) async {
        do {
            try await assembleOrThrow(buildId: buildId)
        } catch let error as DomainError where error.code == "push_failed" {
            logger.warning("could not push a multi-platform image", metadata: ["build": "\(buildId)", "error": "\(error)"])
            try? await builds.closeAssembled(buildId: buildId, status: .failed, digest: nil, error: error.message)
        } catch {
            logger.error("could not assemble a build's image index", metadata: ["build": "\(buildId)", "error": "\(String(reflecting: error))"])
            try? await builds.closeAssembled(buildId: buildId, status: .failed, digest: nil,
                                            error: "the per-platform images were built, but writing their image index failed: \(error)")
        }
    }

    func assembleOrThrow(buildId: String) async throws {
        guard let build = try await builds.build(id: buildId), build.status == .running else { return }
        guard build.jobs.count > 1, build.jobs.allSatisfy({ $0.status == .succeeded }) else { return }
        var descriptors: [OCIDescriptor] = []
        for platform in build.spec.platforms {
            guard let job = build.jobs.first(where: { $0.platform == platform.description }), let digest = job.digest else {
                throw DomainError(.internal, code: "index_failed", "the \(platform) job has no image digest")
            }
            guard let manifest = try await registry.manifest(projectId: build.projectId, repository: "build", reference: digest) else {
                throw DomainError(.internal, code: "index_failed", "the \(platform) image \(digest) is not in the project registry")
            }
            descriptors.append(OCIDescriptor(
                mediaType: manifest.mediaType, digest: manifest.digest, size: Int64(manifest.content.count),
                platform: OCIPlatform(os: platform.os, architecture: platform.architecture, variant: platform.variant)))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let content = Array(try encoder.encode(OCIIndex(manifests: descriptors, annotations: build.spec.indexAnnotations)))
        let digest = Digest.of(content, algorithm: .sha256)
        let manifests = descriptors.compactMap(\.digest)
        // Its own tag first, then every tag of the project's registry the build named.
        var destinations = [(repository: "build", tag: build.id)]
        for resolved in build.spec.destinations(projectId: build.projectId) where resolved.hasPrefix(build.projectId + "/") {
            // `<project>/<repository>:<tag>`, as the request resolved it.
            let path = resolved.dropFirst(build.projectId.count + 1)
            guard let colon = path.lastIndex(of: ":") else { continue }
            destinations.append((String(path[..<colon]), String(path[path.index(after: colon)...])))
        }
        for destination in destinations {
            if destination.repository != "build" {
                for manifest in manifests {
                    _ = try await registry.copyManifest(projectId: build.projectId, from: "build", to: destination.repository, digest: manifest)
                    // Its attestations (referrers) go with it, so the tag's repository lists them.
                    for referrer in try await registry.referrerDigests(projectId: build.projectId, repository: "build", subject: manifest) {
                        _ = try await registry.copyManifest(projectId: build.projectId, from: "build", to: destination.repository, digest: referrer)
                    }
                }
            }
            try await registry.putManifest(ManifestPut(
                projectId: build.projectId, repository: destination.repository, digest: digest, mediaType: Self.indexMediaType,
                content: content, subject: nil, artifactType: nil, tag: destination.tag, blobs: [], manifests: manifests))
        }
        // Tags on other registries (asked for with --push): the images, then the index, pushed
        // there with the credentials the build was sent with.
        let outside = build.spec.destinations(projectId: build.projectId).filter { !$0.hasPrefix(build.projectId + "/") }
        if !outside.isEmpty {
            let credentials = try await builds.credentials(buildId: buildId)
            var platformManifests: [ExternalPush.Manifest] = []
            for descriptor in descriptors {
                guard let digest = descriptor.digest,
                      let stored = try await registry.manifest(projectId: build.projectId, repository: "build", reference: digest) else { continue }
                platformManifests.append(.init(digest: stored.digest, mediaType: stored.mediaType, content: stored.content))
            }
            for reference in outside {
                guard let parsed = ImageReference(reference), let host = parsed.host else { continue }
                let insecure = ImageReference.isLoopback(host: host) || (build.spec.insecureRegistries ?? []).contains(host)
                let credential = credentials.first { $0.registry == host }
                let pusher = ExternalPush(host: host, repository: parsed.path, username: credential?.username, password: credential?.password,
                                          insecure: insecure, blobs: blobs)
                do {
                    try await pusher.push(index: .init(digest: digest.description, mediaType: Self.indexMediaType, content: content),
                                          tag: parsed.tag, manifests: platformManifests)
                } catch {
                    throw DomainError(.invalid, code: "push_failed", "pushing \(reference) failed: \(error)")
                }
                logger.info("pushed a multi-platform image to another registry", metadata: ["build": "\(buildId)", "reference": "\(reference)"])
            }
        }
        try await builds.closeAssembled(buildId: buildId, status: .succeeded, digest: digest.description, error: nil)
        logger.info("assembled a multi-platform image index", metadata: ["build": "\(buildId)", "digest": "\(digest)", "platforms": "\(descriptors.count)"])
    }
}
