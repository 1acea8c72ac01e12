import ArgumentParser
import DrydockBake
import DrydockBuildContext
import DrydockClient
import DrydockProcess
import DrydockWireFormats
import Foundation
import Synchronization

/// `drydock bake`: `docker buildx bake`, every target built on Drydock's builders.
struct BakeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bake",
        abstract: "Build several images from a bake file (docker-bake.hcl, JSON or compose), all on remote builders.",
        discussion: HelpText.reflow("""
            Without -f, the files buildx looks for are read and merged in its order: compose.yaml, \
            compose.yml, docker-compose.yml, docker-compose.yaml, docker-bake.json, docker-bake.hcl, \
            docker-bake.override.json, docker-bake.override.hcl. With no TARGET, the 'default' group.

            Every context is uploaded first (once when targets share it), then one request queues \
            every target. Targets run in parallel; the server holds back one whose contexts name \
            target:OTHER until OTHER has built, and builds it FROM OTHER's image. Every line is \
            prefixed with its target; a summary table ends the run. The exit code is non-zero if any \
            target failed (the others are then canceled); Ctrl-C cancels all.

            Examples:
              drydock bake
              drydock bake -f docker-bake.hcl api web --push
              drydock bake --set '*.platform=linux/arm64' --set api.tags=reg/api:dev
              TAG=v2 drydock bake --print
            """))

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var projectOption: ProjectOption

    @Option(name: [.short, .customLong("file")], help: "A bake file (HCL, JSON or compose); repeat to merge several in order.")
    var files: [String] = []

    @Argument(help: "Targets or groups to build (default: the 'default' group).")
    var targets: [String] = []

    @Flag(help: "Print the resolved definition as JSON (as 'docker buildx bake --print') and build nothing.")
    var print = false

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a target's attribute: PATTERN.KEY=VALUE (e.g. '*.platform=linux/arm64', 'api.args.V=1').", valueName: "PATTERN.KEY=VALUE"))
    var overrides: [String] = []

    @Flag(help: "Also push tags that name another registry (as --set '*.output=type=registry').")
    var push = false

    @Flag(help: "Load every target's image into the local Docker engine, or else into containers-storage (as 'drydock build --load'; as --set '*.output=type=docker').")
    var load = false

    @Flag(name: .customLong("no-cache"), help: "Do not use the cache for any target.")
    var noCache = false

    @Flag(help: "Always check for newer base images.")
    var pull = false

    @Option(help: "plain, tty or auto: every target's lines, prefixed with its name.")
    var progress: String = "auto"

    func validate() throws {
        guard ["auto", "plain", "tty"].contains(progress) else { throw ValidationError("--progress takes plain, tty or auto") }
    }

    func definition() throws -> BakeDefinition {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let urls = files.isEmpty ? Bake.defaultFiles(in: cwd) : files.map { URL(fileURLWithPath: $0, relativeTo: cwd).standardizedFileURL }
        guard !urls.isEmpty else {
            throw CLIError("no bake file here: looked for \(Bake.defaultFileNames.joined(separator: ", ")); pass one with -f")
        }
        var sources: [BakeFileSource] = []
        for (i, url) in urls.enumerated() {
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw CLIError("cannot read the bake file \(files.isEmpty ? url.lastPathComponent : files[i])")
            }
            sources.append(BakeFileSource(name: files.isEmpty ? url.lastPathComponent : files[i], text: text))
        }
        do {
            return try Bake.load(sources, names: targets, options: BakeOptions(
                environment: ProcessInfo.processInfo.environment, overrides: overrides, localPlatform: Platform.host.description))
        } catch let error as BakeError {
            throw CLIError(error.description)
        }
    }

    func run() async throws {
        let definition = try definition()
        if print {
            Swift.print(try definition.printed())
            return
        }
        let order: [String]
        do { order = try definition.buildOrder() } catch let error as BakeError { throw CLIError(error.description) }
        // Refuse what cannot be built, before anything is queued.
        for name in order { try Self.check(definition.targets[name]!) }

        let client = try await connection.client()
        let projectId = try await client.projectId(for: try projectOption.resolved())
        let out = BakeOutput()
        let run = BakeRun()
        let started = ContinuousClock.now

        // Every context packed and sent first (a digest shared by several targets once): a
        // target that cannot be prepared stops the bake before anything is queued.
        let requests = try await withThrowingTaskGroup(of: (String, Components.Schemas.BuildCreate).self) { group in
            for name in order {
                let target = definition.targets[name]!
                group.addTask { (name, try await self.prepare(target, run: run, client: client, projectId: projectId, out: out)) }
            }
            var out: [String: Components.Schemas.BuildCreate] = [:]
            for try await (name, request) in group { out[name] = request }
            return out
        }
        // One request queues them all; the server holds back a target until the targets it
        // names in contexts have built.
        let bake = try await client.createBake(projectId: projectId, .init(targets: order.map { .init(name: $0, build: requests[$0]!) }))
        await run.queued(bake)
        out.line("bake \(bake.id): \(order.count) target\(order.count == 1 ? "" : "s") queued in project \(projectId): \(order.joined(separator: ", "))")
        for (name, build) in zip(order, bake.builds) {
            let waits = (build.waitingFor ?? []).compactMap { id in zip(order, bake.builds).first { $0.1.id == id }?.0 }
            out.line("[\(name)] build \(build.id) queued" + (waits.isEmpty ? "" : ", after \(waits.joined(separator: ", "))"))
        }
        let interrupt = InterruptHandler { [client] in
            out.line("canceling every target… (Ctrl-C again to stop waiting)")
            await run.cancelAll(client)
        }
        defer { interrupt.remove() }

        await withTaskGroup(of: Void.self) { group in
            for (name, build) in zip(order, bake.builds) {
                let target = definition.targets[name]!
                group.addTask { await self.follow(target, buildId: build.id, run: run, client: client, out: out) }
            }
        }
        let results = await run.results
        out.summary(order.map { results[$0] ?? BakeRun.Result(status: "unknown", detail: "not followed") }, names: order,
                    total: ContinuousClock.now - started)
        if order.contains(where: { results[$0]?.status != "succeeded" }) { throw ExitCode(1) }
    }

    /// Follows one target's build to its end and records the result; a failure cancels the bake.
    func follow(_ target: BakeTarget, buildId: String, run: BakeRun, client: DrydockClient, out: BakeOutput) async {
        let name = target.name
        do {
            let multi = target.platforms.count > 1
            let streaming = DrydockClient(baseURL: client.baseURL, token: client.token, timeout: .seconds(7 * 24 * 3600))
            // Time on a builder: from the moment a builder picked it up (a target that waited for
            // another starts late) to its end, as this client saw them.
            var pickedUp: ContinuousClock.Instant?
            for try await entry in streaming.followBuildLog(buildId) {
                if pickedUp == nil, entry.kind == .step || (entry.kind == .status && entry.status == .running) {
                    pickedUp = .now
                }
                out.entry(entry, target: name, multiPlatform: multi)
            }
            let duration = pickedUp.map { ContinuousClock.now - $0 }
            let final = try await client.build(buildId)
            if final.status == .succeeded {
                try await deliver(target, final, client: client, out: out)
                await run.record(name, .init(status: "succeeded", detail: "\(client.baseURL.registryHost)/\(final.image)", duration: duration, buildId: final.id))
            } else {
                await run.record(name, .init(status: final.status.rawValue, detail: final.error ?? final.status.rawValue, duration: duration, buildId: final.id))
                if final.status == .failed {
                    out.line("[\(name)] failed: \(final.error ?? "")")
                    if await run.stop() {
                        out.line("a target failed: canceling the others")
                        await run.cancelAll(client)
                    }
                }
            }
        } catch {
            out.line("[\(name)] error: \(error)")
            await run.record(name, .init(status: "failed", detail: "\(error)"))
            if await run.stop() { await run.cancelAll(client) }
        }
    }

    /// A built target's file outputs (`type=oci|docker|local|tar,dest=…`) written here, and its
    /// image loaded into a local store with --load (one platform: this machine's, or the first).
    func deliver(_ target: BakeTarget, _ final: Components.Schemas.Build, client: DrydockClient, out: BakeOutput) async throws {
        let files = try target.output.filter { !Self.isImageOutput($0) }.map { try OutputSpec($0) }
        guard load || !files.isEmpty, let digest = final.digest else { return }
        let registryHost = client.baseURL.registryHost
        let insecure = client.baseURL.scheme == "http"
        let repository = "\(registryHost)/\(final.image.split(separator: ":").first.map(String.init) ?? final.image)"
        let localName = target.tags.first.map { Build.localName($0) } ?? "drydock/\(target.name):latest"
        let multiPlatform = final.jobs.count > 1
        for spec in files {
            out.line("[\(target.name)] exporting \(spec.type) to \(spec.dest)\(multiPlatform ? " (every platform)" : "")")
            try await ImageExport.export(image: "\(repository)@\(digest)", to: spec, name: localName, registryHost: registryHost,
                                         insecure: insecure, token: client.token ?? "", allPlatforms: multiPlatform)
        }
        if load {
            var image = "\(repository)@\(digest)"
            if multiPlatform {
                let pick = final.jobs.first { $0.platform == Platform.host.description } ?? final.jobs.first
                guard let pick, let platformDigest = pick.digest else { throw CLIError("--load: the build has no image for \(Platform.host)") }
                image = "\(repository)@\(platformDigest)"
            }
            let destination = try await ImageExport.load(image: image, name: localName, registryHost: registryHost, insecure: insecure,
                                                         token: client.token ?? "")
            out.line("[\(target.name)] loaded into \(destination) as \(localName)")
        }
    }

    /// Sends a packed context unless the server has it; a digest several targets share is sent
    /// once (the others wait for that upload).
    func send(_ packed: PackedContext, what: String, target: String, run: BakeRun, client: DrydockClient, projectId: String, out: BakeOutput) async throws {
        guard await run.shouldUpload(packed.digest) else {
            await run.waitUploaded(packed.digest)
            out.line("[\(target)] \(what) shared with another target")
            return
        }
        do {
            if try await client.hasContext(projectId: projectId, digest: packed.digest) {
                out.line("[\(target)] \(what) \(String(packed.digest.prefix(19)))… already on the server")
            } else {
                out.line("[\(target)] uploading \(what) (\(Output.bytes(packed.size)))")
                _ = try await client.uploadContext(projectId: projectId, digest: packed.digest, file: packed.file) { _ in }
            }
            await run.uploaded(packed.digest)
        } catch {
            await run.uploaded(packed.digest)  // nobody waits forever on an upload that failed
            throw error
        }
    }

    static func isImageOutput(_ raw: String) -> Bool {
        let type = raw.split(separator: ",").first { $0.hasPrefix("type=") }.map { String($0.dropFirst(5)) }
        return type == "image" || type == "registry"
    }

    /// The target's context packed and sent (unless the server has it) and its build request.
    func prepare(_ target: BakeTarget, run: BakeRun, client: DrydockClient, projectId: String, out: BakeOutput) async throws -> Components.Schemas.BuildCreate {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let contextURL = URL(fileURLWithPath: target.context ?? ".", relativeTo: cwd).standardizedFileURL
        var dockerfile = URL(fileURLWithPath: target.dockerfile ?? "Dockerfile", relativeTo: contextURL).standardizedFileURL
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-bake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        if let inline = target.dockerfileInline {
            dockerfile = scratch.appendingPathComponent("Dockerfile")
            try inline.write(to: dockerfile, atomically: true, encoding: .utf8)
        }
        let packed: PackedContext
        do {
            packed = try ContextPacker.pack(directory: contextURL, dockerfile: dockerfile, into: scratch.appendingPathComponent("context.tar"))
        } catch let error as ContextError {
            throw CLIError("[\(target.name)] \(error.description)")
        }
        try await send(packed, what: "context", target: target.name, run: run, client: client, projectId: projectId, out: out)
        // target:OTHER and docker-image://REF go as they are (the server makes this build wait
        // for OTHER's); a local directory is sent as a context of its own.
        var contexts: [String: String] = [:]
        for (name, value) in target.contexts.sorted(by: { $0.key < $1.key }) {
            if value.hasPrefix("target:") || value.hasPrefix("docker-image://") {
                contexts[name] = value
                continue
            }
            let directory = URL(fileURLWithPath: value, relativeTo: cwd).standardizedFileURL
            let empty = scratch.appendingPathComponent("Dockerfile.\(contexts.count)")
            try Data().write(to: empty)
            let packedNamed: PackedContext
            do {
                packedNamed = try ContextPacker.pack(directory: directory, dockerfile: empty,
                                                     into: scratch.appendingPathComponent("named-\(contexts.count).tar"))
            } catch let error as ContextError {
                throw CLIError("[\(target.name)] contexts.\(name): \(error.description)")
            }
            try await send(packedNamed, what: "named context '\(name)'", target: target.name, run: run, client: client, projectId: projectId, out: out)
            contexts[name] = "context:\(packedNamed.digest)"
        }
        let secrets = try target.secret.map(Build.secret)
        let dockerfilePath = dockerfile.path.hasPrefix(contextURL.path + "/") ? String(dockerfile.path.dropFirst(contextURL.path.count + 1)) : dockerfile.lastPathComponent
        let args = target.args.compactMapValues { $0 }
        let labels = target.labels.compactMapValues { $0 }
        let pushOutside = push || target.output.contains { $0.contains("type=registry") || $0.contains("push=true") }
        let annotations = try Build.annotations(target.annotations, platformCount: target.platforms.count)
        return .init(
            contextDigest: packed.digest, dockerfile: dockerfilePath, buildArgs: args.isEmpty ? nil : .init(additionalProperties: args),
            target: target.target, platforms: target.platforms.isEmpty ? nil : target.platforms, tags: target.tags.isEmpty ? nil : target.tags,
            labels: labels.isEmpty ? nil : .init(additionalProperties: labels), noCache: noCache || target.noCache == true,
            pull: (pull || target.pull == true) ? .always : .missing, push: pushOutside, secrets: secrets.isEmpty ? nil : secrets,
            contexts: contexts.isEmpty ? nil : .init(additionalProperties: contexts),
            attestations: try Build.attestations(provenance: nil, sbom: nil, attest: target.attest),
            imageFormat: try Build.imageFormat(outputs: target.output.filter(Self.isImageOutput)),
            annotations: annotations.isEmpty ? nil : .init(additionalProperties: annotations))
    }

    /// What a target asks that Drydock cannot do: refused before anything is queued.
    static func check(_ t: BakeTarget) throws {
        func refuse(_ what: String, _ why: String) throws { throw CLIError("target '\(t.name)': \(what) \(why)") }
        if !t.ssh.isEmpty { try refuse("ssh", "is not supported: SSH agent forwarding to a remote builder; use secret") }
        if !t.entitlements.isEmpty { try refuse("entitlements", "are not granted: builds never get extra privileges") }
        if !t.noCacheFilter.isEmpty { try refuse("no-cache-filter", "is not supported: use no-cache") }
        if let network = t.network, network != "default" { try refuse("network = \"\(network)\"", "is not supported: builds use the builder's network") }
        do {
            _ = try Build.attestations(provenance: nil, sbom: nil, attest: t.attest)
            _ = try Build.annotations(t.annotations, platformCount: t.platforms.count)
            _ = try Build.imageFormat(outputs: t.output.filter(isImageOutput))
        } catch let error as ValidationError {
            throw CLIError("target '\(t.name)': \(error.message)")
        }
        for output in t.output where !isImageOutput(output) {
            do { _ = try OutputSpec(output) } catch let error as CLIError {
                throw CLIError("target '\(t.name)': \(error.description)")
            }
        }
        for (name, value) in t.contexts where !value.hasPrefix("target:") && !value.hasPrefix("docker-image://") && value.contains("://") {
            try refuse("contexts.\(name) = \"\(value)\"", "is not supported: named contexts are target:OTHER, docker-image://REF or a local directory")
        }
    }
}

/// A bake in progress: builds started, results, the contexts uploaded, whether it is stopping.
actor BakeRun {
    struct Result: Sendable {
        var status: String
        var detail: String
        var duration: Duration?
        var buildId: String?
    }

    private(set) var results: [String: Result] = [:]
    private var bakeId: String?
    private var uploading: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var uploadedDigests: Set<String> = []
    private(set) var stopping = false

    func queued(_ bake: Components.Schemas.Bake) { bakeId = bake.id }
    func record(_ target: String, _ result: Result) { results[target] = result }

    /// True for the first caller: the bake is now stopping.
    func stop() -> Bool {
        defer { stopping = true }
        return !stopping
    }

    /// Cancels every unfinished build of the bake (one request).
    func cancelAll(_ client: DrydockClient) async {
        stopping = true
        guard let bakeId else { return }
        _ = try? await client.cancelBake(bakeId)
    }

    /// Whether this caller uploads `digest` (the first one does; the others wait for it).
    func shouldUpload(_ digest: String) -> Bool {
        if uploading[digest] != nil || uploadedDigests.contains(digest) { return false }
        uploading[digest] = []
        return true
    }

    func uploaded(_ digest: String) {
        uploadedDigests.insert(digest)
        uploading.removeValue(forKey: digest)?.forEach { $0.resume() }
    }

    func waitUploaded(_ digest: String) async {
        guard !uploadedDigests.contains(digest), uploading[digest] != nil else { return }
        await withCheckedContinuation { continuation in uploading[digest, default: []].append(continuation) }
    }
}

/// Every target's lines on stderr, prefixed with its name (and platform), then the summary.
final class BakeOutput: Sendable {
    private let lock = Mutex(())

    func line(_ text: String) {
        lock.withLock { _ in FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }

    func entry(_ entry: Components.Schemas.BuildLogEntry, target: String, multiPlatform: Bool) {
        let prefix = multiPlatform && entry.platform != nil ? "[\(target) \(entry.platform!)]" : "[\(target)]"
        switch entry.kind {
        case .log:
            if let text = entry.line { line("\(prefix) \(text)") }
        case .step:
            guard let step = entry.step else { return }
            switch step.status {
            case .running: line("\(prefix) #\(step.number) \(step.instruction)")
            case .done: if step.cached { line("\(prefix) #\(step.number) CACHED") }
            case .failed: line("\(prefix) #\(step.number) ERROR")
            case .canceled: line("\(prefix) #\(step.number) CANCELED")
            }
        case .status:
            if let status = entry.status, status != .running { line("\(prefix) \(status.rawValue)" + (entry.error.map { ": \($0)" } ?? "")) }
        }
    }

    func summary(_ results: [BakeRun.Result], names: [String], total: Duration) {
        var rows: [[String]] = []
        for (name, result) in zip(names, results) {
            let seconds = result.duration.map { String(format: "%.1fs", Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) } ?? "-"
            rows.append([name, result.status, seconds, result.detail])
        }
        lock.withLock { _ in
            var text = "\n"
            let headers = ["TARGET", "STATUS", "DURATION", "IMAGE"]
            let widths = headers.indices.map { i in ([headers[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
            for row in [headers] + rows {
                text += row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ") + "\n"
            }
            let seconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18
            text += String(format: "%d target(s) in %.1fs\n", names.count, seconds)
            FileHandle.standardError.write(Data(text.utf8))
        }
    }
}

/// The command's options are plain values read by the per-target tasks, never written.
extension BakeCommand: @unchecked Sendable {}
