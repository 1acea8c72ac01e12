import ArgumentParser
import DrydockBuildContext
import DrydockClient
import DrydockProcess
import DrydockWireFormats
import Foundation

/// `drydock build`: `docker build`, run on a Drydock builder with the project's warm cache.
struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build an image on a remote builder (a drop-in for 'docker build').",
        discussion: HelpText.reflow("""
            The context is packed honouring .dockerignore, sent only if the server does not have it
            yet, and built on a builder with the project's persistent layer cache. The image always
            lands in the project's registry as HOST/<project-id>/build:<build-id>, and every bare -t
            name is tagged there too ('app:1' is HOST/<project-id>/app:1). A -t name on another
            registry (ghcr.io/acme/app:1) is pushed there with --push, with your docker login's
            credentials for it.
            Ctrl-C cancels the remote build. The exit code is the build's result.

            Examples:
              drydock build -t app:1 .
              drydock build -f docker/Dockerfile --target release --build-arg VERSION=1.2 \\
                  --push -t app:1.2 .
              drydock build --secret id=npmrc,src=$HOME/.npmrc -o type=oci,dest=app.tar .
            """))

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var projectOption: ProjectOption

    @Option(name: [.short, .customLong("tag")], help: "Name and optionally a tag (name:tag); repeatable.")
    var tags: [String] = []

    @Option(name: [.short, .customLong("file")], help: "The Dockerfile (default CONTEXT/Dockerfile).")
    var file: String?

    @Option(name: .customLong("build-arg"), help: "Build-time variable KEY=VALUE (KEY alone takes it from the environment); repeatable.")
    var buildArgs: [String] = []

    @Option(help: "The build stage to build.")
    var target: String?

    @Option(help: ArgumentHelp("Target platforms, comma-separated or repeated: linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, linux/386.",
                               discussion: "Several make one image index, one job per platform on builders of that platform (emulated only as the server allows)."))
    var platform: [String] = []

    /// The platforms asked for, normalised as docker does (arm64 = linux/arm64/v8, armhf = linux/arm/v7).
    func platforms() throws -> [Platform] {
        var out: [Platform] = []
        for raw in platform.flatMap({ $0.split(separator: ",") }) {
            guard let parsed = Platform(raw), parsed.isSupported else {
                throw ValidationError("--platform \(raw) is not supported; use \(Platform.supportedList)")
            }
            guard !out.contains(parsed) else { throw ValidationError("--platform lists \(parsed) twice") }
            out.append(parsed)
        }
        guard out.count <= 8 else { throw ValidationError("--platform: at most 8 platforms per build") }
        return out
    }

    @Flag(name: .customLong("no-cache"), help: "Do not use the cache for this build.")
    var noCache = false

    @Flag(help: "Always check the registry for newer base images.")
    var pull = false

    @Flag(help: "Also push the -t tags that name another registry (bare names like app:1 are always tagged in the project registry).")
    var push = false

    @Flag(help: "Load the image into the local Docker engine, or else into containers-storage (podman/buildah).")
    var load = false

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp(
        "type=oci|docker|local|tar,dest=PATH, or type=image|registry,name=REF[,push=true][,registry.insecure=true]; repeatable.",
        discussion: "type=registry is -t REF --push; registry.insecure=true lets the builder push to that registry over plain HTTP."))
    var outputs: [String] = []

    @Option(name: .customLong("insecure-registry"), help: ArgumentHelp(
        "A registry host that -t tags may be pushed to over plain HTTP; repeatable.",
        discussion: "Loopback registries (localhost, 127.0.0.1) always may, as docker allows them."))
    var insecureRegistries: [String] = []

    /// Where the image goes: -t tags and image outputs, whether outside ones are pushed, and
    /// which registries may be reached over plain HTTP.
    struct Destinations {
        var tags: [String]
        var push: Bool
        var insecure: [String]
    }

    func destinations() throws -> Destinations {
        var result = Destinations(tags: tags, push: push, insecure: insecureRegistries)
        for raw in outputs {
            let spec = try OutputSpec(raw)
            guard spec.isImage else { continue }
            result.tags += spec.names.filter { !result.tags.contains($0) }
            if spec.push { result.push = true }
            if spec.insecure { result.insecure += spec.names.compactMap { ImageReference.registryHost(of: $0) } }
        }
        var seen = Set<String>()
        result.insecure = result.insecure.filter { seen.insert($0).inserted }
        return result
    }

    @Flag(help: ArgumentHelp("Build untrusted code (a fork's pull request): an empty, throwaway storage without the project's cache, secrets or tags.",
                             discussion: "The image lands only as HOST/<project-id>/build:<build-id>. A CI token exchanged for a pull request builds this way by itself."))
    var isolated = false

    @Option(help: ArgumentHelp("Provenance attestation: true (mode=min, the default), false, mode=min or mode=max.",
                               discussion: "An in-toto statement with a SLSA provenance v1 predicate, attached to each platform's image as an OCI referrer. max adds the Dockerfile and the build steps."))
    var provenance: String?

    @Option(help: ArgumentHelp("SBOM attestation: true attaches an SPDX 2.3 document of the image's packages (dpkg, apk, Python) to each platform's image."))
    var sbom: String?

    @Option(name: .customLong("attest"), help: ArgumentHelp("type=provenance[,mode=min|max][,disabled=true] or type=sbom[,disabled=true] (buildx's long form); repeatable."))
    var attest: [String] = []

    @Option(name: .customLong("annotation"), help: ArgumentHelp("KEY=VALUE on each image manifest; manifest:KEY=VALUE the same, index:KEY=VALUE on a multi-platform build's index; repeatable."))
    var annotation: [String] = []

    @Flag(help: ArgumentHelp("Check the Dockerfile before building (buildx's rules that need only the Dockerfile) and print what it finds.",
                             discussion: "Findings do not stop the build unless --lint-fail-on says so."))
    var lint = false

    @Option(name: .customLong("lint-fail-on"), help: ArgumentHelp("warning or error: do not build when the lint finds something this severe (implies --lint).",
                                                                   valueName: "level"))
    var lintFailOn: LintLevel?

    enum LintLevel: String, ExpressibleByArgument, CaseIterable {
        case warning, error
        var severity: DockerfileLint.Severity { self == .warning ? .warning : .error }
    }

    @Option(name: .customLong("label"), help: "Image label KEY=VALUE; repeatable.")
    var labels: [String] = []

    @Option(name: .customLong("secret"), help: "id=ID,src=FILE or id=ID,env=VAR: a secret for RUN --mount=type=secret; repeatable.")
    var secrets: [String] = []

    @Option(help: "auto, plain, tty or quiet (quiet prints only the image digest, as -q).")
    var progress: ProgressMode = .auto

    @Option(name: .customLong("metadata-file"), help: "Write the build's result (digest, image, build id) as JSON to this file.")
    var metadataFile: String?

    @Option(name: .customLong("iidfile"), help: "Write the image digest to this file.")
    var iidfile: String?

    @Flag(name: [.short, .customLong("quiet")], help: "Print only the image digest.")
    var quietFlag = false

    /// `-q` and `--progress quiet` mean the same, as in docker build.
    var quiet: Bool { quietFlag || progress == .quiet }

    @Argument(help: "The build context directory.")
    var context: String

    // docker build flags Drydock cannot honour: refused with a reason, never ignored.
    @Option(name: .customLong("network"), help: .hidden) var network: String?
    @Option(name: .customLong("add-host"), help: .hidden) var addHost: [String] = []
    @Option(name: .customLong("ssh"), help: .hidden) var ssh: [String] = []
    @Option(name: .customLong("cache-from"), help: .hidden) var cacheFrom: [String] = []
    @Option(name: .customLong("cache-to"), help: .hidden) var cacheTo: [String] = []
    @Option(name: .customLong("build-context"), help: .hidden) var buildContext: [String] = []
    @Option(name: .customLong("shm-size"), help: .hidden) var shmSize: String?
    @Option(name: .customLong("ulimit"), help: .hidden) var ulimit: [String] = []
    @Option(name: .customLong("allow"), help: .hidden) var allow: [String] = []
    @Option(name: .customLong("builder"), help: .hidden) var builder: String?
    @Option(name: .customLong("cgroup-parent"), help: .hidden) var cgroupParent: String?
    @Option(name: .customLong("security-opt"), help: .hidden) var securityOpt: [String] = []
    @Option(name: .customLong("isolation"), help: .hidden) var isolation: String?
    @Option(name: [.short, .customLong("memory")], help: .hidden) var memory: String?
    @Option(name: .customLong("cpu-shares"), help: .hidden) var cpuShares: String?
    @Option(name: .customLong("cpuset-cpus"), help: .hidden) var cpusetCpus: String?
    @Option(name: .customLong("no-cache-filter"), help: .hidden) var noCacheFilter: [String] = []
    @Flag(name: .customLong("squash"), help: .hidden) var squash = false
    @Flag(name: .customLong("compress"), help: .hidden) var compress = false
    @Flag(name: .customLong("rm"), help: .hidden) var rm = false  // Drydock always removes intermediate containers
    @Flag(name: .customLong("force-rm"), help: .hidden) var forceRm = false  // likewise, even on failure

    enum ProgressMode: String, ExpressibleByArgument, CaseIterable {
        case auto, plain, tty, quiet, rawjson
        /// What help offers: only the modes that work (rawjson is parsed to be refused clearly).
        static var allValueStrings: [String] { ["auto", "plain", "tty", "quiet"] }
    }

    func validate() throws {
        let refused: [(Bool, String, String)] = [
            (network != nil, "--network", "builds run with the builder's network; RUN steps cannot choose another"),
            (!addHost.isEmpty, "--add-host", "the builder's /etc/hosts cannot be changed per build"),
            (!ssh.isEmpty, "--ssh", "SSH agent forwarding to a remote builder is not supported; use --secret"),
            (!cacheFrom.isEmpty || !cacheTo.isEmpty, cacheFrom.isEmpty ? "--cache-to" : "--cache-from",
             "the project's builder cache is always used and kept; external cache import/export is not supported"),
            (!buildContext.isEmpty, "--build-context", "additional named contexts are not supported yet"),
            (shmSize != nil, "--shm-size", "resource settings of the builder cannot be changed per build"),
            (!ulimit.isEmpty, "--ulimit", "resource settings of the builder cannot be changed per build"),
            (memory != nil || cpuShares != nil || cpusetCpus != nil, "--memory/--cpu-*", "resource settings of the builder cannot be changed per build"),
            (!allow.isEmpty, "--allow", "builds never get extra privileges"),
            (!securityOpt.isEmpty, "--security-opt", "builds never get extra privileges"),
            (builder != nil, "--builder", "Drydock chooses a builder of the right platform itself"),
            (cgroupParent != nil, "--cgroup-parent", "the builder's cgroups cannot be chosen per build"),
            (isolation != nil, "--isolation", "builders always isolate RUN steps the same way (chroot)"),
            (!noCacheFilter.isEmpty, "--no-cache-filter", "per-stage cache control is not supported; use --no-cache"),
            (squash, "--squash", "squashing layers is not supported"),
            (compress, "--compress", "contexts are always sent only when the server lacks them"),
        ]
        if let (_, flag, why) = refused.first(where: { $0.0 }) {
            throw ValidationError("drydock build does not support \(flag): \(why)")
        }
        if progress == .rawjson { throw ValidationError("drydock build does not support --progress rawjson; use auto, plain, tty or quiet") }
        if isolated, !secrets.isEmpty { throw ValidationError("--isolated: no secrets reach an isolated build; drop --secret") }
        if isolated, !(try destinations()).tags.isEmpty {
            throw ValidationError("--isolated: an isolated build lands only as HOST/<project-id>/build:<build-id> and cannot tag images; drop -t")
        }
        _ = try platforms()
        for output in outputs { _ = try OutputSpec(output) }
        _ = try destinations()
        _ = try attestations()
        _ = try annotations()
        _ = try imageFormat()
    }

    /// `--provenance`, `--sbom` and `--attest`, in buildx's forms; nil leaves the server's default (provenance min).
    func attestations() throws -> Components.Schemas.Attestations? {
        try Self.attestations(provenance: provenance, sbom: sbom, attest: attest)
    }

    /// `--provenance`, `--sbom` and `--attest` (a bake target's `attest` entries are the last).
    static func attestations(provenance: String?, sbom: String?, attest: [String]) throws -> Components.Schemas.Attestations? {
        var provenanceMode: Components.Schemas.Attestations.ProvenancePayload?
        var sbomWanted: Bool?
        func mode(_ raw: String, flag: String) throws -> Components.Schemas.Attestations.ProvenancePayload {
            var fields: [String: String] = [:]
            for part in raw.split(separator: ",") {
                let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard let key = pair.first, !key.isEmpty else { throw ValidationError("\(flag) \(raw): '\(part)' has no key; use mode=min|max or disabled=true") }
                fields[key.lowercased()] = pair.count > 1 ? pair[1] : "true"
            }
            if fields.count == 1, let only = fields.first, only.value == "true", ["true", "1"].contains(only.key) { return .min }
            if fields.count == 1, let only = fields.first, only.value == "true", ["false", "0"].contains(only.key) { return Components.Schemas.Attestations.ProvenancePayload.none }
            if fields["disabled"] == "true" { return Components.Schemas.Attestations.ProvenancePayload.none }
            switch fields["mode"] {
            case nil, "min": return .min
            case "max": return .max
            case let other?: throw ValidationError("\(flag) \(raw): mode is min or max, not '\(other)'")
            }
        }
        func flag(_ raw: String, _ name: String) throws -> Bool {
            switch raw.lowercased() {
            case "true", "1", "": return true
            case "false", "0": return false
            default:
                if raw.lowercased().contains("generator=") { throw ValidationError("\(name) \(raw): custom SBOM generators are not supported; --sbom=true reads the image's package databases") }
                if raw.lowercased() == "disabled=true" { return false }
                throw ValidationError("\(name) takes true or false, not '\(raw)'")
            }
        }
        if let provenance { provenanceMode = try mode(provenance, flag: "--provenance") }
        if let sbom { sbomWanted = try flag(sbom, "--sbom") }
        for raw in attest {
            var rest: [String] = []
            var type: String?
            for part in raw.split(separator: ",") {
                if part.hasPrefix("type=") { type = String(part.dropFirst(5)) } else { rest.append(String(part)) }
            }
            switch type {
            case "provenance": provenanceMode = try mode(rest.isEmpty ? "true" : rest.joined(separator: ","), flag: "--attest")
            case "sbom": sbomWanted = try flag(rest.isEmpty ? "true" : rest.joined(separator: ","), "--attest type=sbom")
            case let other?: throw ValidationError("--attest type=\(other) is not supported; use type=provenance or type=sbom")
            case nil: throw ValidationError("--attest \(raw): give type=provenance or type=sbom")
            }
        }
        guard provenanceMode != nil || sbomWanted != nil else { return nil }
        return .init(provenance: provenanceMode, sbom: sbomWanted)
    }

    /// `--annotation KEY=VALUE` (with buildx's `manifest:` and `index:` prefixes).
    func annotations() throws -> [String: String] {
        try Self.annotations(annotation, platformCount: (try? platforms().count) ?? 1)
    }

    static func annotations(_ annotation: [String], platformCount: Int) throws -> [String: String] {
        var result: [String: String] = [:]
        for raw in annotation {
            guard let eq = raw.firstIndex(of: "="), eq != raw.startIndex else {
                throw ValidationError("--annotation '\(raw)': use KEY=VALUE, manifest:KEY=VALUE or index:KEY=VALUE")
            }
            let key = String(raw[..<eq])
            if key.hasPrefix("index:"), platformCount < 2 {
                throw ValidationError("--annotation \(key): index annotations need a multi-platform build (--platform with two or more); a single-platform image has no index")
            }
            if key.hasPrefix("manifest-descriptor:") || key.hasPrefix("index-descriptor:") || key.hasPrefix("manifest[") || key.hasPrefix("index[") {
                throw ValidationError("--annotation \(key): descriptor and per-platform annotations are not supported; use KEY, manifest:KEY or index:KEY")
            }
            result[key] = String(raw[raw.index(after: eq)...])
        }
        return result
    }

    /// The layer format of the image outputs (`compression=`, `compression-level=`, `force-compression=`, `oci-mediatypes=`).
    func imageFormat() throws -> Components.Schemas.ImageFormat? {
        try Self.imageFormat(outputs: outputs)
    }

    static func imageFormat(outputs: [String]) throws -> Components.Schemas.ImageFormat? {
        let formats = try outputs.map(OutputSpec.init).filter { $0.isImage && $0.format != nil }.compactMap(\.format)
        guard let first = formats.first else { return nil }
        guard formats.allSatisfy({ $0 == first }) else {
            throw ValidationError("--output: every image output of one build has the same layer format; give compression= and its settings once")
        }
        return first.request
    }

    /// Prints the lint's findings (to stderr, as buildx does) and stops when they are as severe as --lint-fail-on.
    func runLint(_ dockerfile: URL) throws {
        guard let data = FileManager.default.contents(atPath: dockerfile.path), let text = String(data: data, encoding: .utf8) else {
            throw CLIError("--lint: cannot read the Dockerfile \(dockerfile.path)")
        }
        let findings = DockerfileLint.check(text)
        for finding in findings { Output.error(finding.description) }
        let warnings = findings.filter { $0.severity == .warning }.count
        let errors = findings.count - warnings
        Output.error(findings.isEmpty ? "lint: \(dockerfile.lastPathComponent): no findings"
                                      : "lint: \(dockerfile.lastPathComponent): \(warnings) warning\(warnings == 1 ? "" : "s"), \(errors) error\(errors == 1 ? "" : "s")")
        if let threshold = lintFailOn, findings.contains(where: { $0.severity >= threshold.severity }) {
            throw CLIError("lint: findings at or above '\(threshold.rawValue)' (--lint-fail-on); the build was not started")
        }
    }

    func run() async throws {
        let contextURL = URL(fileURLWithPath: context, isDirectory: true).standardizedFileURL
        let (client, source) = try await connection.clientAndSource()
        var isolated = self.isolated
        if !isolated, case .oidc(let provider) = source, try await client.whoami().token.isolated == true {
            // The CI token came from an untrusted job (a pull request): only isolated builds run.
            guard secrets.isEmpty, try destinations().tags.isEmpty else {
                throw CLIError("this \(provider.name) job's token allows isolated builds only (untrusted code, such as a pull request): drop -t and --secret, or build with --isolated")
            }
            isolated = true
        }
        // drydock.json from the current directory upwards, as the help says; the context's own
        // directories only when there is none there.
        // The lint needs nothing but the Dockerfile: before anything reaches the server.
        let dockerfileForLint = file.map { URL(fileURLWithPath: $0).standardizedFileURL } ?? contextURL.appendingPathComponent("Dockerfile")
        if lint || lintFailOn != nil { try runLint(dockerfileForLint) }
        let projectReference = try (try? projectOption.resolved()) ?? projectOption.resolved(from: contextURL)
        let projectId = try await client.projectId(for: projectReference)
        let dockerfile = file.map { URL(fileURLWithPath: $0).standardizedFileURL } ?? contextURL.appendingPathComponent("Dockerfile")
        let ui = ProgressUI(mode: quiet ? .quiet : progress, platforms: try platforms().count)

        // 1. Pack and send the context, unless the server already has it.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-context-\(UUID().uuidString).tar")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let packStart = ContinuousClock.now
        let packed: PackedContext
        do {
            packed = try ContextPacker.pack(directory: contextURL, dockerfile: dockerfile, into: scratch) { bytes in
                ui.progress("packing context: \(Output.bytes(bytes))…")
            }
        } catch let error as ContextError {
            throw CLIError(error.description)
        }
        let packTime = ContinuousClock.now - packStart
        let files = packed.fileCount == 1 ? "1 file" : "\(packed.fileCount) files"
        if try await client.hasContext(projectId: projectId, digest: packed.digest) {
            ui.info("context: \(files), \(Output.bytes(packed.size)) (\(String(packed.digest.prefix(19)))…), already on the server: nothing to upload (packed in \(ProgressUI.seconds(packTime)))")
        } else {
            // Refused here, before a byte is sent, when the server would refuse it.
            if let limit = try? await client.whoami().limits?.maxContextBytes, packed.size > limit {
                throw CLIError(Self.tooLarge(packed, limit: limit, context: contextURL.path))
            }
            ui.info("context: \(files), \(Output.bytes(packed.size)), uploading…")
            let uploadStart = ContinuousClock.now
            ui.beginOperation()
            let total = packed.size
            _ = try await client.uploadContext(projectId: projectId, digest: packed.digest, file: packed.file) { sent in
                ui.progress("uploading context: \(Output.bytes(sent, unit: Output.unit(for: total))) of \(Output.bytes(total))")
            }
            ui.info("context uploaded in \(ProgressUI.seconds(ContinuousClock.now - uploadStart))")
        }

        // 2. Queue the build, with the credentials of outside registries it pushes to.
        let destinations = try destinations()
        let found = destinations.push ? await RegistryAuthFiles.credentials(for: destinations.tags) : []
        for credential in found {
            ui.info("credentials for \(credential.credential.registry): from \(credential.source), sent with this build only")
        }
        if destinations.push {
            let outside = Set(destinations.tags.compactMap { ImageReference.registryHost(of: $0) })
            for host in outside.subtracting(found.map(\.credential.registry)).subtracting([client.baseURL.registryHost]).sorted() {
                ui.info("no saved credentials for \(host) ('docker login \(host)' saves them): pushing there without")
            }
        }
        var request = try buildRequest(contextDigest: packed.digest, contextURL: contextURL, dockerfile: dockerfile,
                                       destinations: destinations, credentials: found.map(\.credential))
        if isolated {
            request.isolated = true
            ui.info("isolated build: an empty storage of its own, without the project's cache or secrets")
        }
        let build = try await client.createBuild(projectId: projectId, request)
        let registryHost = client.baseURL.registryHost
        ui.info("build \(build.id) queued (project \(projectId))")

        // 3. Follow it; Ctrl-C cancels it.
        let interrupt = InterruptHandler { [client] in
            ui.info("canceling build \(build.id)… (Ctrl-C again to stop waiting)")
            _ = try? await client.cancelBuild(build.id)
        }
        defer { interrupt.remove() }
        ui.start()
        let final = try await follow(build.id, client: client, ui: ui)
        ui.finish(status: final.status)

        // 4. Result, and the image where it was asked for.
        let image = "\(registryHost)/\(final.image)"
        guard final.status == .succeeded, let digest = final.digest else {
            let why = final.error ?? final.status.rawValue
            let logs = "the whole log: drydock builds logs \(build.id)"
            if quiet {
                FileHandle.standardError.write(Data("build \(build.id) \(final.status.rawValue): \(why)\n\(logs)\n".utf8))
            } else if final.status == .canceled {
                ui.info("build \(build.id) canceled")
            } else {
                ui.info("ERROR: build \(build.id) failed: \(why)\n\(logs)")
            }
            throw ExitCode(final.status == .canceled && interrupt.fired ? 130 : 1)
        }
        if let iidfile { try digest.write(toFile: iidfile, atomically: true, encoding: .utf8) }
        // Where each -t name went: the project registry's always, others when pushed.
        let landed: [(reference: String, pushed: Bool)] = destinations.tags.map { tag in
            let reference = Self.destination(tag, projectId: projectId, registryHost: registryHost)
            return (reference, ImageReference.registryHost(of: tag) == nil || destinations.push)
        }.filter(\.pushed)
        if let metadataFile {
            let metadata: [String: Any] = [
                "containerimage.digest": digest,
                "image.name": ([image] + landed.map(\.reference)).joined(separator: ","),
                "drydock.build.id": final.id, "drydock.project.id": projectId,
            ]
            try JSONSerialization.data(withJSONObject: metadata, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                .write(to: URL(fileURLWithPath: metadataFile))
        }
        let token = client.token ?? ""
        // skopeo takes a tag or a digest, not both.
        let byDigest = "\(registryHost)/\(final.image.split(separator: ":").first.map(String.init) ?? final.image)@\(digest)"
        let localName = destinations.tags.first.map { Self.localName($0) } ?? "drydock/build:\(final.id)"
        let multiPlatform = final.jobs.count > 1
        for output in outputs {
            let spec = try OutputSpec(output)
            guard !spec.isImage else { continue }
            ui.info("exporting \(spec.type) to \(spec.dest)\(multiPlatform ? " (every platform)" : "")")
            try await ImageExport.export(image: byDigest, to: spec, name: localName, registryHost: registryHost,
                                         insecure: client.baseURL.scheme == "http", token: token, allPlatforms: multiPlatform)
        }
        if load {
            // One platform goes into a local store: this machine's, or the one asked.
            var loaded = byDigest
            if multiPlatform {
                let pick = final.jobs.first { $0.platform == Platform.host.description } ?? final.jobs.first
                guard let pick, let platformDigest = pick.digest else { throw CLIError("--load: the build has no image for \(Platform.host)") }
                loaded = "\(registryHost)/\(final.image.split(separator: ":").first.map(String.init) ?? final.image)@\(platformDigest)"
                ui.info("loading the \(pick.platform) image")
            }
            let destination = try await ImageExport.load(image: loaded, name: localName, registryHost: registryHost,
                                                         insecure: client.baseURL.scheme == "http", token: token)
            ui.info("loaded into \(destination) as \(localName)")
        }
        if quiet {
            print(digest)
        } else {
            if multiPlatform {
                for job in final.jobs {
                    let how = job.emulated == true ? "emulated" : "native"
                    ui.info("  \(job.platform): \(job.digest ?? "-") (built by \(job.workerName ?? "?"), \(how))")
                }
                ui.info("index \(image)@\(digest)")
            } else {
                ui.info("image \(image)@\(digest)")
            }
            for (reference, _) in landed {
                ui.info(reference.hasPrefix("\(registryHost)/\(projectId)/") ? "tagged \(reference) in the project registry" : "pushed \(reference)")
            }
            let notPushed = destinations.tags.filter { tag in
                !landed.contains { $0.reference == Self.destination(tag, projectId: projectId, registryHost: registryHost) }
            }
            for tag in notPushed { ui.info("not pushed: \(tag) is on another registry; add --push to push it there") }
        }
    }

    func buildRequest(contextDigest: String, contextURL: URL, dockerfile: URL, destinations: Destinations,
                      credentials: [Components.Schemas.RegistryCredential]) throws -> Components.Schemas.BuildCreate {
        var args: [String: String] = [:]
        for raw in buildArgs {
            if let eq = raw.firstIndex(of: "=") {
                args[String(raw[..<eq])] = String(raw[raw.index(after: eq)...])
            } else if let value = ProcessInfo.processInfo.environment[raw] {
                args[raw] = value  // docker: KEY alone takes the value from the environment
            }
        }
        var labelMap: [String: String] = [:]
        for raw in labels {
            guard let eq = raw.firstIndex(of: "=") else { throw CLIError("--label '\(raw)': use KEY=VALUE") }
            labelMap[String(raw[..<eq])] = String(raw[raw.index(after: eq)...])
        }
        let secretList = try secrets.map(Self.secret)
        let dockerfilePath = dockerfile.path.hasPrefix(contextURL.path + "/")
            ? String(dockerfile.path.dropFirst(contextURL.path.count + 1)) : dockerfile.lastPathComponent
        return .init(
            contextDigest: contextDigest, dockerfile: dockerfilePath,
            buildArgs: args.isEmpty ? nil : .init(additionalProperties: args), target: target,
            platforms: platform.isEmpty ? nil : try platforms().map(\.description),
            tags: destinations.tags.isEmpty ? nil : destinations.tags, labels: labelMap.isEmpty ? nil : .init(additionalProperties: labelMap),
            noCache: noCache, pull: pull ? .always : .missing, push: destinations.push,
            insecureRegistries: destinations.insecure.isEmpty ? nil : destinations.insecure,
            secrets: secretList.isEmpty ? nil : secretList, registryCredentials: credentials.isEmpty ? nil : credentials,
            attestations: try attestations(), imageFormat: try imageFormat(),
            annotations: try annotations().isEmpty ? nil : .init(additionalProperties: try annotations()))
    }

    /// `id=ID,src=FILE`, `id=ID,env=VAR` (also `type=file|env`, `source=`), read now, sent for this build only.
    static func secret(_ raw: String) throws -> Components.Schemas.BuildSecret {
        var fields: [String: String] = [:]
        for part in raw.split(separator: ",") {
            guard let eq = part.firstIndex(of: "=") else { throw CLIError("--secret '\(raw)': use id=ID,src=FILE or id=ID,env=VAR") }
            fields[String(part[..<eq])] = String(part[part.index(after: eq)...])
        }
        guard let id = fields["id"], !id.isEmpty else { throw CLIError("--secret '\(raw)': id= is required") }
        let source = fields["src"] ?? fields["source"]
        if let env = fields["env"] ?? (fields["type"] == "env" ? source ?? id : nil) {
            guard let value = ProcessInfo.processInfo.environment[env] else { throw CLIError("--secret \(id): the environment variable \(env) is not set") }
            return .init(id: id, value: Data(value.utf8).base64EncodedString())
        }
        let path = source ?? id
        guard let data = FileManager.default.contents(atPath: (path as NSString).expandingTildeInPath) else {
            throw CLIError("--secret \(id): cannot read '\(path)'")
        }
        guard data.count <= 500_000 else { throw CLIError("--secret \(id): secrets are limited to 500 KB") }
        return .init(id: id, value: data.base64EncodedString())
    }

    /// Why a context is refused, with what to leave out: every size in the limit's unit.
    static func tooLarge(_ packed: PackedContext, limit: Int64, context: String) -> String {
        let unit = Output.unit(for: limit)
        var message = "the build context (\(context)) is \(Output.bytes(packed.size, unit: unit)), over this server's limit of \(Output.bytes(limit, unit: unit))."
        if !packed.largestFiles.isEmpty {
            let largest = packed.largestFiles.map { "\($0.path) (\(Output.bytes($0.size, unit: unit)))" }.joined(separator: ", ")
            message += " Largest files: \(largest)."
        }
        return message + " Leave out what the build does not need with a .dockerignore file."
    }

    static func localName(_ tag: String) -> String {
        tag.contains(":") && !tag.hasSuffix("]") ? tag : tag + ":latest"
    }

    static func destination(_ tag: String, projectId: String, registryHost: String) -> String {
        guard let reference = ImageReference(tag) else { return tag }
        return reference.host == nil ? "\(registryHost)/\(reference.resolved(inProject: projectId))" : reference.resolved(inProject: projectId)
    }

    /// Follows the log until the build ends (the client resumes after a dropped connection).
    func follow(_ id: String, client: DrydockClient, ui: ProgressUI) async throws -> Components.Schemas.Build {
        let streaming = DrydockClient(baseURL: client.baseURL, token: client.token, timeout: .seconds(7 * 24 * 3600))
        for try await entry in streaming.followBuildLog(id) { ui.handle(entry) }
        return try await client.build(id)
    }
}
