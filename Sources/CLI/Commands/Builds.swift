import ArgumentParser
import DrydockClient
import Foundation

struct BuildCommands: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "builds",
        abstract: "List, inspect, follow and cancel builds.",
        subcommands: [BuildList.self, BuildGet.self, BuildLogs.self, BuildCancel.self]
    )
}

extension Components.Schemas.Build {
    var duration: String {
        guard let startedAt else { return "-" }
        let seconds = (finishedAt ?? Date()).timeIntervalSince(startedAt)
        return String(format: "%.1fs", seconds)
    }

    var tableRow: [String] {
        [id, status.rawValue, tags.first ?? "-", platforms.joined(separator: ","), duration, Output.date(createdAt)]
    }
    static let tableHeaders = ["ID", "STATUS", "TAG", "PLATFORM", "DURATION", "CREATED"]
}

struct BuildList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the project's builds, newest first.", aliases: ["ls"])

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var project: ProjectOption
    @OptionGroup var output: FormatOption

    @Option(help: "Only builds with this status: queued, running, succeeded, failed or canceled.")
    var status: String?

    @Option(help: "How many (1-200).")
    var limit: Int = 20

    func run() async throws {
        var statusFilter: Components.Schemas.BuildStatus?
        if let status {
            guard let parsed = Components.Schemas.BuildStatus(rawValue: status) else {
                throw ValidationError("--status must be queued, running, succeeded, failed or canceled")
            }
            statusFilter = parsed
        }
        let page = try await connection.client().builds(projectId: try project.resolved(), status: statusFilter, limit: limit)
        switch output.format {
        case .json: try Output.json(page)
        case .table: Output.table(Components.Schemas.Build.tableHeaders, page.items.map(\.tableRow), empty: "No builds yet. Start one with 'drydock build .'.")
        }
    }
}

struct BuildGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a build: status, image, steps.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Build ID.")
    var id: String

    func run() async throws {
        let client = try connection.client()
        let build = try await client.build(id)
        switch output.format {
        case .json: try Output.json(build)
        case .table:
            var pairs: [(String, String)] = [
                ("ID", build.id), ("Project", build.projectId), ("Status", build.status.rawValue),
                ("Image", "\(client.baseURL.registryHost)/\(build.image)"), ("Digest", build.digest ?? "-"),
                ("Dockerfile", build.dockerfile), ("Platforms", build.platforms.joined(separator: ",")),
                ("Tags", build.tags.isEmpty ? "-" : build.tags.joined(separator: ", ")),
                ("Created", Output.date(build.createdAt)), ("Duration", build.duration),
            ]
            if let error = build.error { pairs.append(("Error", error)) }
            for job in build.jobs { pairs.append(("Job \(job.platform)", "\(job.status.rawValue) on \(job.workerName ?? "-")")) }
            Output.keyValues(pairs)
            if !build.steps.isEmpty {
                print("")
                Output.table(["STEP", "INSTRUCTION", "RESULT"], build.steps.map {
                    ["\($0.number)", $0.instruction, $0.cached ? "CACHED" : ($0.status == .running ? "running" : "\($0.status.rawValue) \(ProgressUI.ms($0.durationMs))")]
                }, empty: "")
            }
        }
    }
}

struct BuildLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a build's log; --follow waits for more until it ends.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(name: [.short, .customLong("follow")], help: "Keep printing until the build ends.")
    var follow = false

    @Option(help: "Start at this log entry (0 is the first).")
    var offset: Int64 = 0

    @Argument(help: "Build ID.")
    var id: String

    func run() async throws {
        let base = try connection.client()
        let client = DrydockClient(baseURL: base.baseURL, token: connection.resolvedToken(), timeout: .seconds(7 * 24 * 3600))
        for try await entry in try await client.buildLogs(id, offset: offset, follow: follow) {
            switch entry.kind {
            case .log: print(entry.line ?? "")
            case .step:
                if let step = entry.step, step.status != .running {
                    print("#\(step.number) \(step.cached ? "CACHED" : "\(step.status.rawValue.uppercased()) \(ProgressUI.ms(step.durationMs))") \(step.instruction)")
                }
            case .status:
                print("== \(entry.status?.rawValue ?? "?")\(entry.line.map { ": \($0)" } ?? "")\(entry.error.map { ": \($0)" } ?? "")\(entry.digest.map { " \($0)" } ?? "")")
            }
        }
    }
}

struct BuildCancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a build (queued at once, running within seconds).")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Build ID.")
    var id: String

    func run() async throws {
        let build = try await connection.client().cancelBuild(id)
        print("build \(build.id): \(build.status.rawValue)\(build.status == .running ? " (cancel requested; stops within seconds)" : "")")
    }
}
