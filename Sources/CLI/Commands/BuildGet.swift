import ArgumentParser
import DrydockClient
import Foundation

struct BuildGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a build: status, image, steps.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: FormatOption

    @Argument(help: "Build ID.")
    var id: String

    func run() async throws {
        let client = try await connection.client()
        let build = try await client.build(id)
        do {
            var pairs: [(String, String)] = [
                ("ID", build.id), ("Project", build.projectId), ("Status", build.status.rawValue),
                ("Image", "\(client.baseURL.registryHost)/\(build.image)"), ("Digest", build.digest ?? "-"),
                ("Dockerfile", build.dockerfile), ("Platforms", build.platforms.joined(separator: ",")),
                ("Tags", build.tags.isEmpty ? "-" : build.tags.joined(separator: ", ")),
                ("Isolated", build.isolated == true ? "yes (no project cache, secrets or tags)" : "no"),
                ("Created", Output.date(build.createdAt)), ("Duration", build.duration),
            ]
            if let error = build.error { pairs.append(("Error", error)) }
            for job in build.jobs {
                let how = job.workerName == nil ? "" : (job.emulated == true ? " (emulated)" : " (native)")
                pairs.append(("Job \(job.platform)", "\(job.status.rawValue) on \(job.workerName ?? "-")\(how)\(job.digest.map { ", \($0)" } ?? "")"))
            }
            try output.details(build, pairs)
            if output.format == .table, !build.steps.isEmpty {
                print("")
                Output.table(["STEP", "INSTRUCTION", "RESULT"], build.steps.map {
                    [$0.label, $0.instruction, $0.cached ? "CACHED" : ($0.status == .running ? "running" : "\($0.status.rawValue) \(ProgressUI.ms($0.durationMs))")]
                }, empty: "")
            }
        }
    }
}
