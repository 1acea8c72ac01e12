import DrydockClient
import Foundation

/// Runs a helper program off Swift's cooperative pool and returns its output; throws with its
/// output when it fails.
enum Subprocess {
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                let output = FileManager.default.temporaryDirectory.appendingPathComponent("drydock-out-\(UUID().uuidString)")
                FileManager.default.createFile(atPath: output.path, contents: nil)
                defer { try? FileManager.default.removeItem(at: output) }
                do {
                    let handle = try FileHandle(forWritingTo: output)
                    process.standardOutput = handle
                    process.standardError = handle
                    try process.run()
                    process.waitUntilExit()
                    try? handle.close()
                    let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                    if process.terminationStatus == 0 {
                        continuation.resume(returning: text)
                    } else {
                        let name = (executable as NSString).lastPathComponent
                        continuation.resume(throwing: CLIError("\(name) failed (exit \(process.terminationStatus)): \(text.trimmingCharacters(in: .whitespacesAndNewlines).suffix(500))"))
                    }
                } catch {
                    continuation.resume(throwing: CLIError("could not run \(executable): \(error)"))
                }
            }
        }
    }
}
