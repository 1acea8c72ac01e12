import DrydockClient
import Foundation

extension DrydockClient {
    /// The id of a project named by its id or its name (as users type either, anywhere a project
    /// is taken). Names match exactly, then ignoring case; several matches are refused with the
    /// candidates listed.
    func projectId(for reference: String) async throws -> String {
        let reference = reference.trimmingCharacters(in: .whitespaces)
        guard !reference.isEmpty else { throw CLIError("the project is empty: name one by ID or name (see 'drydock projects list')") }
        if Self.looksLikeId(reference) {
            do {
                return try await project(reference).id
            } catch let error as DrydockClientError where error.status == 404 {
                // Not an id after all: a project may be named like one.
            }
        }
        let projects = try await allProjects()
        if let match = projects.first(where: { $0.id == reference }) { return match.id }
        let exact = projects.filter { $0.name == reference }
        if exact.count == 1 { return exact[0].id }
        let folded = exact.isEmpty ? projects.filter { $0.name.lowercased() == reference.lowercased() } : exact
        if folded.count == 1 { return folded[0].id }
        if folded.count > 1 {
            let candidates = folded.map { "\($0.name) (\($0.id))" }.joined(separator: ", ")
            throw CLIError("'\(reference)' could be several projects: \(candidates); name one by its ID")
        }
        if projects.isEmpty { throw CLIError("no project '\(reference)': there are none yet; create one with 'drydock projects create NAME'") }
        let known = projects.prefix(10).map { "\($0.name) (\($0.id))" }.joined(separator: ", ")
        throw CLIError("no project '\(reference)'. Projects: \(known)\(projects.count > 10 ? ", …" : "")")
    }

    /// Project ids are 16 lowercase letters and digits.
    static func looksLikeId(_ text: String) -> Bool {
        text.count == 16 && text.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
    }
}

extension ProjectOption {
    /// The project's id: `--project` (an id or a name), DRYDOCK_PROJECT, or drydock.json.
    func id(using client: DrydockClient, from directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) async throws -> String {
        let reference = try resolved(from: directory)
        return try await client.projectId(for: reference)
    }
}
