import DrydockProcess
import Foundation

/// The containers buildah's OCI isolation has runc start for RUN steps. runc keeps them in its
/// own state (`/run/runc`), in a session of their own: stopping buildah's process group does not
/// reach them, so a canceled or killed build would leave its RUN step running (or a `runc init`
/// waiting forever). Each container's bundle is in the job's TMPDIR, which identifies its job.
enum RuncContainers {
    struct Entry: Decodable {
        let id: String
        let bundle: String
    }

    /// Kills and deletes every runc container whose bundle lies under `directory`.
    static func remove(under directory: String, environment: [String: String]) async {
        guard let listed = try? await ChildProcess.run(["runc", "list", "--format", "json"], environment: environment),
              listed.status == 0
        else { return }
        // `null` when there are none.
        let entries = (try? JSONDecoder().decode([Entry]?.self, from: Data(listed.output.utf8))) ?? nil
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        for entry in entries ?? [] where entry.bundle.hasPrefix(prefix) {
            _ = try? await ChildProcess.run(["runc", "kill", entry.id, "KILL"], environment: environment)
            _ = try? await ChildProcess.run(["runc", "delete", "--force", entry.id], environment: environment)
        }
    }
}
