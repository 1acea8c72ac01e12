import ArgumentParser
import DrydockClient
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write drydock.json, linking this directory to a project.",
        discussion: "Without --project, asks which project when run in a terminal.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The project to link: its ID or name.")
    var project: String?

    @Option(help: "Directory to write drydock.json in.")
    var directory: String = "."

    @Flag(help: "Replace an existing drydock.json.")
    var force = false

    func run() async throws {
        let dir = URL(fileURLWithPath: directory, isDirectory: true)
        let existing = dir.appendingPathComponent(ProjectFile.name)
        if FileManager.default.fileExists(atPath: existing.path), !force {
            throw CLIError("\(existing.path) already exists; pass --force to replace it")
        }
        let client = try await connection.client()
        let chosen: Components.Schemas.Project
        if let project {
            chosen = try await client.project(try await client.projectId(for: project))
        } else {
            let projects = try await client.allProjects()
            guard !projects.isEmpty else {
                throw CLIError("this organization has no projects yet; create one with 'drydock projects create NAME'")
            }
            guard isatty(STDIN_FILENO) == 1 else {
                let list = projects.prefix(10).map { "\($0.id) (\($0.name))" }.joined(separator: ", ")
                throw CLIError("pass --project ID (not asking: standard input is not a terminal). Projects: \(list)")
            }
            for (index, project) in projects.enumerated() {
                print("  \(index + 1)) \(project.name)  \(project.id)")
            }
            print("Which project? [1-\(projects.count)]: ", terminator: "")
            fflush(nil)
            guard let answer = readLine(), let number = Int(answer.trimmingCharacters(in: .whitespaces)),
                  (1...projects.count).contains(number)
            else { throw CLIError("no project chosen") }
            chosen = projects[number - 1]
        }
        let file = try ProjectFile.write(id: chosen.id, in: dir)
        print("Wrote \(file.path) for project \(chosen.name) (\(chosen.id)).")
    }
}
