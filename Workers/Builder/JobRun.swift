import DrydockBuildContext
import DrydockClient
import DrydockProcess
import DrydockWireFormats
import Foundation
import Logging
import Synchronization

/// One job on this worker: fetch and unpack the context, run `buildah build` on the project's
/// cache, push, report. Everything of the job lives in a private directory removed at the end
/// (secrets included); buildah runs with a scrubbed environment, so RUN steps never see the
/// worker's or the build's tokens.
struct JobRun: Sendable {
    let job: Components.Schemas.JobAssignment
    let client: DrydockClient
    let reporter: EventReporter
    let root: URL
    let configuration: BuilderConfiguration
    let logger: Logger

    final class Control: Sendable {
        let state = Mutex<(canceled: Bool, lost: Bool, process: ProcessHandle?)>((false, false, nil))
        var canceled: Bool { state.withLock { $0.canceled } }
        var lost: Bool { state.withLock { $0.lost } }
    }

    var registryHost: String { configuration.apiURL.registryHost }

    /// What the run learns on its way, for the cache policy afterwards.
    final class Notes: @unchecked Sendable {
        var usedImages: Set<String> = []
        var dockerfileText = ""
        var environment: [String: String] = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"]
    }
    let notes = Notes()
    var usedImages: Set<String> {
        get { notes.usedImages }
        nonmutating set { notes.usedImages = newValue }
    }
    var dockerfileText: String {
        get { notes.dockerfileText }
        nonmutating set { notes.dockerfileText = newValue }
    }
    var maintenanceEnvironment: [String: String] {
        get { notes.environment }
        nonmutating set { notes.environment = newValue }
    }

    var registry: DrydockRegistryClient { DrydockRegistryClient(baseURL: configuration.apiURL, token: job.buildToken) }

    /// What this cache last pushed to `<project>/build`, to tag an unchanged image instead of pushing it.
    struct LastPush: Codable {
        var imageId: String
        var digest: String

        static func load(_ root: URL) -> LastPush? {
            guard let data = FileManager.default.contents(atPath: root.appendingPathComponent("last-push.json").path) else { return nil }
            return try? JSONDecoder().decode(LastPush.self, from: data)
        }

        func save(_ root: URL) {
            try? JSONEncoder().encode(self).write(to: root.appendingPathComponent("last-push.json"), options: .atomic)
        }
    }

    /// Cancel and lease state of this run, and its running process.
    let control = Control()

    /// `lease`: the heartbeat task, when the caller started it already (before waiting for the cache).
    func execute(lease: Task<Void, Never>? = nil) async -> Components.Schemas.JobResult {
        let heartbeat = lease ?? Task { await keepLease(control) }
        let isolated = job.isolated == true
        defer {
            heartbeat.cancel()
            try? FileManager.default.removeItem(at: work)
        }
        var tracker = StepTracker()
        let clock = ContinuousClock()
        let began = clock.now
        let startedOn = Date()
        var stepsSeen: [Int: StepTracker.Step] = [:]
        func phase(_ name: String) { logger.debug("job phase", metadata: ["phase": "\(name)", "ms": "\((clock.now - began).components.attoseconds / 1_000_000_000_000_000 + (clock.now - began).components.seconds * 1000)"]) }
        do {
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try root.path.write(to: work.appendingPathComponent("root"), atomically: true, encoding: .utf8)
            for sub in ["home", "tmp", "secrets"] {
                try FileManager.default.createDirectory(at: work.appendingPathComponent(sub), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])

            if isolated {
                await reporter.log("#drydock isolated build: an empty storage of its own, without the project's cache or secrets; the image goes to \(job.image) only")
            }
            // A reset cache is started over before anything of it (its kept contexts too) is used.
            if !isolated, await CacheMaintenance.prepare(root: root, generation: job.cacheGeneration ?? 0, storageArguments: storageArguments,
                                              environment: maintenanceEnvironment) {
                await reporter.log("#drydock the project's cache for \(job.platform) was reset: this build starts on an empty cache")
            }
            let source = try await context(work: work)
            phase("context ready")
            let (contextDir, dockerfile) = layout(source)
            guard FileManager.default.fileExists(atPath: dockerfile.path) else {
                throw BuilderError.job("the context has no Dockerfile at '\(job.dockerfile)'")
            }

            // Named directory contexts (`COPY --from=NAME`), fetched and kept like the build context.
            var buildContexts: [(name: String, directory: URL)] = []
            for (name, digest) in (job.namedContexts?.additionalProperties ?? [:]).sorted(by: { $0.key < $1.key }) {
                buildContexts.append((name, layout(try await context(work: work, digest: digest)).0))
            }
            let environment = try prepareEnvironment(work)
            maintenanceEnvironment = environment
            // Short image names mean Docker Hub, as with docker, never a same-named image in the cache.
            var buildfile = dockerfile
            let pull = pullValue
            if let text = try? String(contentsOf: dockerfile, encoding: .utf8) {
                // And with a stage of another platform, this job's platform on every other stage.
                // A bake's target: contexts: the images of other builds, in this server's registry.
                // docker-image:// contexts: images elsewhere, short names meaning Docker Hub.
                let named = (job.namedImages?.additionalProperties ?? [:]).mapValues { value -> String in
                    guard value.hasPrefix("docker-image://") else { return "\(registryHost)/\(value)" }
                    let reference = String(value.dropFirst("docker-image://".count))
                    return ShortNames.qualified(reference, stages: []) ?? reference
                }
                let qualified = StagePlatforms.explicit(
                    ShortNames.qualify(text, named: named, local: Set(buildContexts.map(\.name))), target: job.platform)
                if qualified != text {
                    buildfile = work.appendingPathComponent("Dockerfile.qualified")
                    try qualified.write(to: buildfile, atomically: true, encoding: .utf8)
                }
            }
            dockerfileText = (try? String(contentsOf: buildfile, encoding: .utf8)) ?? ""
            var arguments = storageArguments + ["build", "--layers", "--force-rm", "--isolation", configuration.isolation.rawValue,
                                                "-f", buildfile.path, "--platform", job.platform,
                                                "--pull=\(pull)", "--authfile", work.appendingPathComponent("auth.json").path,
                                                "--iidfile", work.appendingPathComponent("iid").path]
            if let target = job.target { arguments += ["--target", target] }
            if job.noCache { arguments.append("--no-cache") }
            // The platform arguments as buildx sets them: TARGET* from --platform (buildah does
            // that), BUILD* this builder's own, so `FROM --platform=$BUILDPLATFORM` runs natively.
            let native = Platform.host
            var automatic = ["BUILDPLATFORM": native.description, "BUILDOS": native.os, "BUILDARCH": native.architecture]
            if let variant = native.variant { automatic["BUILDVARIANT"] = variant }
            if let target = Platform(job.platform) {
                automatic["TARGETPLATFORM"] = target.description
                automatic["TARGETOS"] = target.os
                automatic["TARGETARCH"] = target.architecture
                if let variant = target.variant { automatic["TARGETVARIANT"] = variant }
            }
            for (key, value) in automatic.sorted(by: { $0.key < $1.key }) where job.buildArgs.additionalProperties[key] == nil {
                arguments += ["--build-arg", "\(key)=\(value)"]
            }
            for (key, value) in job.buildArgs.additionalProperties.sorted(by: { $0.key < $1.key }) { arguments += ["--build-arg", "\(key)=\(value)"] }
            for (key, value) in job.labels.additionalProperties.sorted(by: { $0.key < $1.key }) { arguments += ["--label", "\(key)=\(value)"] }
            for (key, value) in (job.annotations?.additionalProperties ?? [:]).sorted(by: { $0.key < $1.key }) { arguments += ["--annotation", "\(key)=\(value)"] }
            if job.imageFormat?.ociMediaTypes == false { arguments += ["--format", "docker"] }
            for secret in job.secrets {
                let file = work.appendingPathComponent("secrets").appendingPathComponent(secret.id)
                FileManager.default.createFile(atPath: file.path, contents: Data(base64Encoded: secret.value) ?? Data(), attributes: [.posixPermissions: 0o600])
                arguments += ["--secret", "id=\(secret.id),src=\(file.path)"]
            }
            for context in buildContexts { arguments += ["--build-context", "\(context.name)=\(context.directory.path)"] }
            arguments.append(contextDir.path)

            var lastError = ""
            let exitCode = try await runStreaming(arguments, environment: environment, control: control) { line in
                for step in tracker.feed(line) {
                    stepsSeen[step.number] = step
                    await reporter.step(step, platform: job.platform)
                }
                if let id = CacheMaintenance.imageId(inBuildahLine: line) { usedImages.insert(id) }
                let lower = line.lowercased()
                if lower.hasPrefix("error") || lower.contains("error building at step") || lower.hasPrefix("subprocess exited") { lastError = line }
                // buildah's STEP lines are parsed here, once: they reach the log as step events only.
                return StepTracker.parseStep(line) == nil && !LogNoise.isNoise(line)
            }
            if control.canceled || control.lost {
                if let step = tracker.finish(status: "canceled") { await reporter.step(step, platform: job.platform) }
                await cleanUp(environment)
                return .init(status: .canceled, error: control.lost ? "the job's lease was lost" : "canceled")
            }
            guard exitCode == 0 else {
                let failedStep = tracker.finish(status: "failed")
                if let failedStep { await reporter.step(failedStep, platform: job.platform) }
                await cleanUp(environment)
                let cache = await maintainCache()
                return .init(status: .failed, error: BuildFailure.describe(step: failedStep, buildahError: lastError, exitCode: exitCode),
                             cacheBytes: isolated ? nil : cache.bytes, cacheImages: isolated ? nil : cache.images)
            }
            if let step = tracker.finish(status: "done") {
                stepsSeen[step.number] = step
                await reporter.step(step, platform: job.platform)
            }
            phase("buildah done")
            // Always into the project's registry as build:<id>; then every tag when asked.
            let destination = "\(registryHost)/\(job.image)"
            guard let imageId = (try? String(contentsOf: work.appendingPathComponent("iid"), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines), !imageId.isEmpty
            else { throw BuilderError.job("buildah did not say which image it built") }
            usedImages.insert(CacheMaintenance.bare(imageId))
            let digest: String
            if !isolated, job.imageFormat == nil, let last = LastPush.load(root), last.imageId == imageId,
               (try? await registry.tag(repository: "\(job.projectId)/build", digest: last.digest,
                                        as: String(job.image.split(separator: ":").last ?? Substring(job.buildId)))) == true {
                // The same image as the last build of this cache: already in the registry, so tag it there.
                await reporter.log("#drydock unchanged image \(imageId.prefix(19)): tagged \(destination) without pushing")
                digest = last.digest
            } else {
                await reporter.log("#drydock pushing \(destination)")
                digest = try await pushRetrying(imageId, to: destination, environment: environment, work: work, control: control)
                if !isolated { LastPush(imageId: imageId, digest: digest).save(root) }
            }
            for tag in job.pushTags {
                let target = tag.hasPrefix(job.projectId + "/") ? "\(registryHost)/\(tag)" : tag
                await reporter.log("#drydock pushing \(target)")
                _ = try await pushRetrying(imageId, to: target, environment: environment, work: work, control: control)
            }
            await reporter.log("#drydock image \(destination)@\(digest)")
            phase("pushed")
            try await attest(digest: digest, imageId: imageId, environment: environment, control: control, startedOn: startedOn,
                             steps: stepsSeen.values.sorted { $0.number < $1.number })
            let cache = await maintainCache()
            if !cache.removed.isEmpty {
                await reporter.log("#drydock cache policy: removed \(cache.removed.count) least recently used image(s); the cache is \(cache.bytes / 1_000_000) MB")
            }
            return .init(status: .succeeded, digest: digest, cacheBytes: isolated ? nil : cache.bytes, cacheImages: isolated ? nil : cache.images)
        } catch {
            if control.canceled { return .init(status: .canceled, error: "canceled") }
            let message = "\(error)"
            await reporter.log("error: \(message)")
            let cache = await maintainCache()
            return .init(status: .failed, error: message, cacheBytes: isolated ? nil : cache.bytes, cacheImages: isolated ? nil : cache.images)
        }
    }

    /// Applies the project's cache policy after the job (what it used stays) and measures the cache.
    /// An isolated build's throwaway storage is deleted instead (and reports no cache).
    func maintainCache() async -> CacheMaintenance.Outcome {
        if job.isolated == true {
            _ = try? await ChildProcess.run(storageArguments + ["rmi", "--all", "--force"], environment: maintenanceEnvironment)
            try? FileManager.default.removeItem(at: root)
            return CacheMaintenance.Outcome(bytes: 0, images: 0, removed: [])
        }
        let keepBytes = configuration.keepBytesOverride ?? Int64(job.cachePolicy?.keepGigabytes ?? 50) * 1_000_000_000
        return await CacheMaintenance.enforce(
            root: root, storageArguments: storageArguments, environment: maintenanceEnvironment, used: usedImages, referenced: dockerfileText,
            keepBytes: keepBytes, keepDays: job.cachePolicy?.keepDays ?? 14)
    }

    /// The job's context, unpacked: from this cache's recent contexts when it was built here
    /// before (an unchanged context is neither fetched nor unpacked again), else fetched from the
    /// server, unpacked safely and kept for next time (the newest few per project and platform).
    /// `digest`: one of the job's named directory contexts instead of its build context.
    func context(work: URL, digest: String? = nil) async throws -> URL {
        let digest = digest ?? job.contextDigest
        let name = digest.replacingOccurrences(of: "sha256:", with: "")
        let what = digest == job.contextDigest ? "context" : "named context"
        let asked = digest == job.contextDigest ? nil : digest
        let tar = work.appendingPathComponent("context-\(name).tar")
        let source = work.appendingPathComponent("src-\(name)")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if job.isolated == true {
            // Nothing of an isolated build is kept, its context neither.
            await reporter.log("#drydock fetching \(what) \(digest)")
            try await client.downloadContext(jobId: job.jobId, digest: asked, to: tar)
            try ContextUnpacker.unpack(tar, into: source)
            try? FileManager.default.removeItem(at: tar)
            return source
        }
        let contexts = root.appendingPathComponent("contexts")
        let kept = contexts.appendingPathComponent(name)
        // Only a fully unpacked context is ever renamed to its digest, so its presence means complete.
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: kept.path, isDirectory: &isDirectory), isDirectory.boolValue {
            await reporter.log("#drydock \(what) \(digest) from this builder's cache")
            // Touch it, so pruning keeps the ones in use.
            utimes(kept.path, nil)
            return kept
        }
        await reporter.log("#drydock fetching \(what) \(digest)")
        try await client.downloadContext(jobId: job.jobId, digest: asked, to: tar)
        try ContextUnpacker.unpack(tar, into: source)
        try? FileManager.default.removeItem(at: tar)
        try? FileManager.default.createDirectory(at: contexts, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? FileManager.default.removeItem(at: kept)
        guard rename(source.path, kept.path) == 0 else { return source }
        // The newest few, and never one this job uses.
        pruneContexts(contexts, keep: 3 + (job.namedContexts?.additionalProperties.count ?? 0))
        return kept
    }

    func pruneContexts(_ directory: URL, keep: Int) {
        let entries = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.contentModificationDateKey])) ?? []
        let sorted = entries.sorted {
            let a = (try? $0.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
            let b = (try? $1.resourceValues(forKeys: [.contentModificationDateKey]).contentModificationDate) ?? .distantPast
            return a > b
        }
        for old in sorted.dropFirst(keep) { try? FileManager.default.removeItem(at: old) }
    }

    /// New-style contexts (from `drydock build`) are `context/` plus `Dockerfile`; any other tar
    /// is the context itself with the Dockerfile at the requested path inside.
    func layout(_ source: URL) -> (URL, URL) {
        var isDirectory: ObjCBool = false
        let context = source.appendingPathComponent("context")
        if FileManager.default.fileExists(atPath: context.path, isDirectory: &isDirectory), isDirectory.boolValue,
           FileManager.default.fileExists(atPath: source.appendingPathComponent("Dockerfile").path) {
            return (context, source.appendingPathComponent("Dockerfile"))
        }
        return (source, source.appendingPathComponent(job.dockerfile))
    }

    var storageArguments: [String] {
        [configuration.buildah, "--root", root.appendingPathComponent("storage").path, "--runroot", root.appendingPathComponent("run").path,
         "--storage-driver", "overlay"]
    }

    var pullValue: String {
        switch job.pull {
        case .always: "always"
        case .never: "never"
        case .missing: "false"  // buildah 1.28: pull only when the image is not in the store
        }
    }

    /// A minimal environment for buildah: no tokens, the job's own HOME and TMPDIR, registries
    /// configured so this server's plain-HTTP registry works and short names mean docker.io.
    /// Registries reached over plain HTTP: the server's own when it speaks HTTP, loopback ones
    /// (as docker treats them), and those the build allows explicitly.
    func insecureHosts() -> [String] {
        var hosts: [String] = []
        if configuration.apiURL.scheme == "http" { hosts.append(registryHost) }
        for tag in job.pushTags {
            if let host = ImageReference.registryHost(of: tag), ImageReference.isLoopback(host: host) { hosts.append(host) }
        }
        hosts += job.insecureRegistries ?? []
        var seen = Set<String>()
        return hosts.filter { seen.insert($0).inserted }
    }

    func prepareEnvironment(_ work: URL) throws -> [String: String] {
        var auths: [String: [String: String]] = [registryHost: ["auth": Data("drydock-build:\(job.buildToken)".utf8).base64EncodedString()]]
        for credential in job.registryCredentials {
            auths[credential.registry] = ["auth": Data("\(credential.username):\(credential.password)".utf8).base64EncodedString()]
        }
        let authData = try JSONSerialization.data(withJSONObject: ["auths": auths])
        _ = FileManager.default.createFile(atPath: work.appendingPathComponent("auth.json").path, contents: authData, attributes: [.posixPermissions: 0o600])
        var registries = """
            unqualified-search-registries = ["docker.io"]
            short-name-mode = "permissive"

            """
        for host in insecureHosts() {
            registries += """
                [[registry]]
                location = "\(host)"
                insecure = true

                """
        }
        let registriesFile = work.appendingPathComponent("registries.conf")
        try registries.write(to: registriesFile, atomically: true, encoding: .utf8)
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return [
            "PATH": path,
            "HOME": work.appendingPathComponent("home").path,
            "TMPDIR": work.appendingPathComponent("tmp").path,
            "BUILDAH_ISOLATION": configuration.isolation.rawValue,
            "CONTAINERS_REGISTRIES_CONF": registriesFile.path,
            "REGISTRY_AUTH_FILE": work.appendingPathComponent("auth.json").path,
        ]
    }

    /// Pushes, retrying with backoff while the job is still ours: a server restarting (or a
    /// registry briefly away) must not fail a build that has finished building. The built image
    /// stays in the cache meanwhile. Stops at once on a cancel, a lost lease, or a refusal that
    /// retrying cannot change (credentials, permissions).
    func pushRetrying(_ image: String, to destination: String, environment: [String: String], work: URL, control: Control,
                      window: Duration = .seconds(600)) async throws -> String {
        let deadline = ContinuousClock.now + window
        var delay = Duration.seconds(1)
        var attempt = 1
        while true {
            do {
                return try await push(image, to: destination, environment: environment, work: work, control: control)
            } catch BuilderError.job(let message) {
                let permanent = ["unauthorized", "denied", "authentication required", "forbidden", "force-compression"].contains { message.lowercased().contains($0) }
                guard !permanent, !control.canceled, !control.lost, ContinuousClock.now + delay < deadline else {
                    throw BuilderError.job(message)
                }
                await reporter.log("#drydock push attempt \(attempt) failed; retrying in \(delay.components.seconds) s: \(message)")
                logger.warning("push failed; retrying", metadata: ["destination": "\(destination)", "attempt": "\(attempt)", "error": "\(message)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(15))
                attempt += 1
            }
        }
    }

    func push(_ image: String, to destination: String, environment: [String: String], work: URL, control: Control) async throws -> String {
        let digestFile = work.appendingPathComponent("digest")
        try? FileManager.default.removeItem(at: digestFile)
        var output: [String] = []
        /// Keeps the last lines for the error message; what is not noise goes to the job's log.
        func keep(_ line: String) -> Bool {
            output.append(line)
            if output.count > 20 { output.removeFirst() }
            return !LogNoise.isNoise(line)
        }
        let auth = work.appendingPathComponent("auth.json").path
        let code: Int32
        if job.imageFormat?.forceCompression == true || job.imageFormat?.compression == .estargz {
            // Every layer in the asked format, base layers too: buildah (1.28) reuses a base layer's
            // blob the registry already has in another compression, so the image is written to an
            // empty OCI layout first (every layer compressed afresh) and copied from there as is.
            guard let skopeo = ["/usr/bin/skopeo", "/usr/local/bin/skopeo"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
                throw BuilderError.job("force-compression=true needs skopeo on the builder (apt-get install skopeo)")
            }
            let layout = work.appendingPathComponent("layout-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: layout) }
            let written = try await runStreaming(storageArguments + ["push"] + formatArguments + [image, "oci:\(layout.path):image"],
                                                 environment: environment, control: control) { keep($0) }
            guard written == 0 else { throw BuilderError.job("writing the image with \(formatArguments.joined(separator: " ")) failed (exit \(written)): \(output.suffix(3).joined(separator: " "))") }
            do {
                let count = try await Recompression.apply(layout: layout, compression: job.imageFormat?.compression?.rawValue ?? "gzip",
                                                          level: job.imageFormat?.compressionLevel)
                await reporter.log("#drydock force-compression: \(count) layer(s) written as \(job.imageFormat?.compression?.rawValue ?? "gzip")\(job.imageFormat?.compressionLevel.map { " level \($0)" } ?? "")")
            } catch {
                throw BuilderError.job("force-compression: \(error)")
            }
            let host = ImageReference.registryHost(of: destination) ?? registryHost
            if host == registryHost, job.imageFormat?.ociMediaTypes != false {
                // Into this server's registry the layout goes as it is, blob by blob: skopeo (1.9)
                // would swap a recompressed layer for a blob the registry has in another compression.
                return try await upload(layout: layout, to: destination)
            }
            let tls = insecureHosts().contains(host) ? ["--dest-tls-verify=false"] : []
            code = try await runStreaming([skopeo, "copy", "--authfile", auth, "--digestfile", digestFile.path, "--format", job.imageFormat?.ociMediaTypes == false ? "v2s2" : "oci"]
                                          + tls + ["oci:\(layout.path):image", "docker://\(destination)"],
                                          environment: environment, control: control) { keep($0) }
        } else {
            code = try await runStreaming(
                storageArguments + ["push"] + formatArguments + ["--authfile", auth, "--digestfile", digestFile.path, image, "docker://\(destination)"],
                environment: environment, control: control) { keep($0) }
        }
        if control.canceled { throw BuilderError.job("canceled") }
        guard code == 0, let digest = try? String(contentsOf: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              digest.hasPrefix("sha256:")
        else {
            throw BuilderError.job("pushing to \(destination) failed (exit \(code)): \(output.suffix(3).joined(separator: " "))")
        }
        return digest
    }

    var work: URL { configuration.cacheDirectory.appendingPathComponent(".jobs").appendingPathComponent(job.jobId) }

    /// Provenance (unless `none`) and the SBOM (when asked), attached to the pushed image in every
    /// repository of the project registry it went to. A failure fails the build: an image that was
    /// asked to carry attestations never lands without them silently.
    func attest(digest: String, imageId: String, environment: [String: String], control: Control, startedOn: Date,
                steps: [StepTracker.Step]) async throws {
        let mode = job.attestations?.provenance ?? .min
        let sbom = job.attestations?.sbom == true
        guard mode != Components.Schemas.Attestations.ProvenancePayload.none || sbom else { return }
        var repositories = [String(job.image.split(separator: ":").first ?? Substring(job.image))]
        for tag in job.pushTags where tag.hasPrefix(job.projectId + "/") {
            let repository = String(tag.split(separator: ":").first ?? Substring(tag))
            if !repositories.contains(repository) { repositories.append(repository) }
        }
        guard let manifest = try await registry.manifest(repository: repositories[0], reference: digest) else {
            throw BuilderError.job("the image \(digest) is not in the project registry, so its attestations cannot be attached")
        }
        let subject = (mediaType: manifest.mediaType, digest: digest, size: manifest.bytes.count)
        let subjectName = Attestations.purl("\(registryHost)/\(job.image)", platform: job.platform)
        // What each repository's copy of the image carries already: a rebuild that produces the
        // same image (all steps cached) adds no second statement of a kind it has, so the
        // referrers list does not grow with every rebuild.
        var present: [String: Set<String>] = [:]
        for repository in repositories {
            let listed = try await registry.referrers(repository: repository, digest: digest, artifactType: Attestations.inTotoMediaType)
            present[repository] = Set(listed.compactMap { $0.annotations?[Attestations.kindAnnotation] })
        }
        func wanted(_ kind: String) -> Bool { repositories.contains { !(present[$0]?.contains(kind) ?? false) } }
        var attachments: [(payload: [UInt8], predicate: String, kind: String)] = []
        if mode != Components.Schemas.Attestations.ProvenancePayload.none {
            let kind = "provenance-\(mode.rawValue)"
            if wanted(kind) {
                var materials: [Attestations.Material] = []
                for reference in Attestations.baseReferences(dockerfileText, buildArgs: job.buildArgs.additionalProperties) {
                    if let resolved = await imageDigest(reference, environment: environment, control: control) {
                        materials.append(.init(reference: reference, digest: resolved))
                    }
                }
                let invocation = Attestations.Invocation(
                    buildId: job.buildId, projectId: job.projectId,
                    builderId: configuration.apiURL.appendingPathComponent("builders/\(configuration.name)").absoluteString,
                    platform: job.platform, builderPlatform: Platform.host.description,
                    emulated: Platform(job.platform).map { $0 != Platform.host && $0.architecture != Platform.host.architecture } ?? false,
                    dockerfile: job.dockerfile, target: job.target, buildArgs: job.buildArgs.additionalProperties,
                    labels: job.labels.additionalProperties, contextDigest: job.contextDigest,
                    contextURI: configuration.apiURL.appendingPathComponent("api/v1/projects/\(job.projectId)/contexts/\(job.contextDigest.replacingOccurrences(of: "sha256:", with: ""))").absoluteString,
                    materials: materials, startedOn: startedOn, finishedOn: Date(),
                    dockerfileText: mode == .max ? dockerfileText : nil,
                    steps: mode == .max ? steps.map { ($0.instruction, $0.cached, $0.durationMs.map { Double($0) / 1000 }) } : nil)
                attachments.append((try Attestations.provenance(invocation, subject: (subjectName, digest)), Attestations.provenanceType, kind))
                await reporter.log("#drydock provenance (\(mode.rawValue)): \(materials.count) base image(s) by digest, the context \(job.contextDigest.prefix(19))…")
            } else {
                await reporter.log("#drydock provenance (\(mode.rawValue)): the image \(digest.prefix(19))… carries one from an earlier build already (kept)")
            }
        }
        if sbom {
            if wanted("sbom") {
                let packages = try await imagePackages(imageId, environment: environment, control: control)
                let document = try Attestations.spdx(packages: packages.list, image: "\(registryHost)/\(job.image)", platform: job.platform,
                                                     buildId: job.buildId, distro: packages.distro, created: Date())
                attachments.append((try Attestations.sbomStatement(document, subject: (subjectName, digest)), Attestations.spdxType, "sbom"))
                await reporter.log("#drydock SBOM (SPDX 2.3): \(packages.list.count) package(s) found in the image")
            } else {
                await reporter.log("#drydock SBOM (SPDX 2.3): the image \(digest.prefix(19))… carries one from an earlier build already (kept)")
            }
        }
        for repository in repositories {
            for attachment in attachments where !(present[repository]?.contains(attachment.kind) ?? false) {
                try await registry.attach(repository: repository, subject: subject, artifactType: Attestations.inTotoMediaType,
                                          payload: attachment.payload, payloadMediaType: Attestations.inTotoMediaType,
                                          annotations: ["in-toto.io/predicate-type": attachment.predicate,
                                                        Attestations.kindAnnotation: attachment.kind])
            }
        }
    }

    /// The manifest digest a base image resolved to in this job's storage.
    func imageDigest(_ reference: String, environment: [String: String], control: Control) async -> String? {
        var output = ""
        let code = try? await runStreaming(storageArguments + ["images", "--json", reference], environment: environment, control: control) { line in
            output += line + "\n"
            return false
        }
        guard code == 0, let data = output.data(using: .utf8),
              let images = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]], let first = images.first else { return nil }
        return first["digest"] as? String
    }

    /// The packages installed in the built image: its filesystem mounted read-only for a moment.
    func imagePackages(_ imageId: String, environment: [String: String], control: Control) async throws -> (list: [Attestations.Package], distro: String?) {
        var container = ""
        let created = try await runStreaming(storageArguments + ["from", "--pull=never", "--name", "drydock-sbom-\(job.jobId)", imageId],
                                             environment: environment, control: control) { line in
            container = line.trimmingCharacters(in: .whitespaces)
            return false
        }
        guard created == 0, !container.isEmpty else { throw BuilderError.job("the SBOM could not open the image (buildah from failed)") }
        var mountpoint = ""
        let mounted = try? await runStreaming(storageArguments + ["mount", container], environment: environment, control: control) { line in
            mountpoint = line.trimmingCharacters(in: .whitespaces)
            return false
        }
        var result: (list: [Attestations.Package], distro: String?)?
        if mounted == 0, !mountpoint.isEmpty {
            let root = URL(fileURLWithPath: mountpoint, isDirectory: true)
            result = (Attestations.packages(root: root), Attestations.distro(root: root))
        }
        // The working container goes whatever happened (rm unmounts it).
        _ = try? await runStreaming(storageArguments + ["rm", container], environment: environment, control: Control()) { _ in false }
        guard let result else { throw BuilderError.job("the SBOM could not mount the image (buildah mount failed)") }
        return result
    }

    /// Uploads an OCI layout's image to `destination` (`host/repository:tag` in this server's
    /// registry) exactly as written; returns the manifest's digest.
    func upload(layout: URL, to destination: String) async throws -> String {
        let path = destination.dropFirst(registryHost.count + 1)
        guard let colon = path.lastIndex(of: ":"), !path[colon...].contains("/") else {
            throw BuilderError.job("force-compression: cannot tell the repository and tag of \(destination)")
        }
        let repository = String(path[..<colon])
        let tag = String(path[path.index(after: colon)...])
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: layout.appendingPathComponent("index.json"))) as? [String: Any]
        guard let entry = (index?["manifests"] as? [[String: Any]])?.first, let digest = entry["digest"] as? String else {
            throw BuilderError.job("force-compression: the written image has no manifest")
        }
        let manifestBytes = try Data(contentsOf: URL(fileURLWithPath: Recompression.blobPath(layout, digest)))
        let manifest = try JSONSerialization.jsonObject(with: manifestBytes) as? [String: Any] ?? [:]
        let mediaType = manifest["mediaType"] as? String ?? entry["mediaType"] as? String ?? "application/vnd.oci.image.manifest.v1+json"
        var blobs = ((manifest["layers"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }
        if let config = (manifest["config"] as? [String: Any])?["digest"] as? String { blobs.append(config) }
        for blob in blobs where try await !registry.hasBlob(repository: repository, digest: blob) {
            try await registry.pushBlob(repository: repository, file: URL(fileURLWithPath: Recompression.blobPath(layout, blob)), digest: blob)
        }
        return try await registry.putManifest(repository: repository, reference: tag, mediaType: mediaType, Array(manifestBytes))
    }

    /// `buildah push` options for the layer format the build asked for (`--output type=image,compression=…`).
    var formatArguments: [String] {
        guard let format = job.imageFormat else { return [] }
        var arguments: [String] = []
        switch format.compression {
        case .uncompressed?: arguments.append("--disable-compression")
        case .estargz?: break  // written as gzip, then converted layer by layer (Recompression)
        case let compression?: arguments += ["--compression-format", compression.rawValue]
        case nil: break
        }
        if let level = format.compressionLevel, format.compression != .uncompressed, format.compression != .estargz { arguments += ["--compression-level", "\(level)"] }
        if format.ociMediaTypes == false { arguments += ["--format", "v2s2"] } else if format.compression != nil { arguments += ["--format", "oci"] }
        return arguments
    }

    /// Runs a command in its own process group, giving each output line to `onLine`, which says
    /// whether it also goes to the job's log; a cancel terminates the whole group.
    func runStreaming(_ argv: [String], environment: [String: String], control: Control,
                      onLine: (String) async -> Bool) async throws -> Int32 {
        let handle = ProcessHandle()
        let stop = control.state.withLock { state -> Bool in
            state.process = handle
            return state.canceled || state.lost
        }
        if stop { await handle.terminate() }
        let work = self.work
        let code = try await ChildProcess.stream(argv, environment: environment, handle: handle, onStart: { pid in
            // Recorded so a restarted worker can stop what a killed one left running.
            try? "\(pid)".write(to: work.appendingPathComponent("pgid"), atomically: true, encoding: .utf8)
        }) { line in
            // Step events first, so a step's header precedes its output.
            if await onLine(line) { await reporter.log(line) }
        }
        control.state.withLock { $0.process = nil }
        try? FileManager.default.removeItem(at: work.appendingPathComponent("pgid"))
        return code
    }

    /// Removes working containers a killed build left behind (the cache's images stay).
    func cleanUp(_ environment: [String: String]) async {
        // A RUN step's container outlives buildah's process group under OCI isolation.
        if configuration.isolation == .oci { await RuncContainers.remove(under: work.path, environment: environment) }
        _ = try? await ChildProcess.run(storageArguments + ["rm", "--all"], environment: environment)
    }

    /// Renews the lease; stops the build when it is canceled or the lease is lost.
    func keepLease(_ control: Control) async {
        let interval = Duration.milliseconds(max(500, min(2000, job.leaseSeconds * 1000 / 4)))
        var first = true
        while !Task.isCancelled {
            // The first heartbeat goes at once: it confirms the claim and takes the full lease.
            if !first { try? await Task.sleep(for: interval) }
            first = false
            if Task.isCancelled { return }
            do {
                let lease = try await client.heartbeat(jobId: job.jobId)
                if lease.cancelRequested {
                    let process = control.state.withLock { state -> ProcessHandle? in
                        state.canceled = true
                        return state.process
                    }
                    await reporter.log("#drydock canceled; stopping the build")
                    if let process { await process.terminate() }
                }
            } catch let error as DrydockClientError where error.status == 409 || error.status == 404 || error.status == 401 {
                let process = control.state.withLock { state -> ProcessHandle? in
                    state.lost = true
                    return state.process
                }
                logger.warning("the server no longer holds this job for us; stopping", metadata: ["error": "\(error)"])
                if let process { await process.terminate() }
                return
            } catch {
                logger.warning("heartbeat failed; will retry", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Disk used by this project's cache for this platform.
    func cacheSize() -> Int64 { Self.diskUsage(root.path) }

    /// Allocated bytes under a directory (like `du -s`), with readdir and fstatat: no URL objects.
    static func diskUsage(_ path: String) -> Int64 {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        let fd = dirfd(dir)
        var total: Int64 = 0
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name == "." || name == ".." { continue }
            var info = stat()
            guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            total += Int64(info.st_blocks) * 512
            if (info.st_mode & S_IFMT) == S_IFDIR { total += diskUsage(path + "/" + name) }
        }
        return total
    }
}

/// How a failed build is told to its user.
public enum BuildFailure {
    /// The failure in a user's words: which step, and why, once (buildah's own line quotes the
    /// step's whole instruction again).
    /// `step [2/3] RUN make: the command exited with code 2`.
    public static func describe(step: StepTracker.Step?, buildahError: String, exitCode: Int32) -> String {
        var cause = buildahError.trimmingCharacters(in: .whitespaces)
        // `error building at STEP "RUN make": error while running runtime: exit status 2`
        if let range = cause.range(of: "building at STEP \""), let end = cause.range(of: "\": ", range: range.upperBound..<cause.endIndex) {
            cause = String(cause[end.upperBound...])
        }
        for prefix in ["Error: ", "error: ", "error "] where cause.hasPrefix(prefix) { cause = String(cause.dropFirst(prefix.count)) }
        if let range = cause.range(of: "exit status "), let code = Int(cause[range.upperBound...].prefix { $0.isNumber }) {
            cause = "the command exited with code \(code)"
        }
        if cause.isEmpty { cause = "buildah exited with code \(exitCode)" }
        // `determining starting point for build: no FROM statement found`: most often a FROM
        // whose image is a build arg left without a value (`FROM ${BASE}`, no --build-arg).
        if cause.hasSuffix("no FROM statement found") {
            cause = "the Dockerfile names no base image (buildah: no FROM statement found): a FROM that uses a build arg, "
                + "such as FROM ${BASE}, needs a value for it: pass --build-arg BASE=IMAGE, or give the ARG a default (ARG BASE=IMAGE)"
        }
        guard let step else { return "the build failed: \(cause)" }
        return "step \(step.label) \(step.instruction): \(cause)"
    }

}
