import DrydockClient
import DrydockProcess
import Foundation

/// Helper programs the CLI runs (skopeo, tar, docker), through the one process runner.
enum Helper {
    /// Runs `executable` and returns its standard output; throws a CLIError with its output when it fails.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) async throws -> String {
        let name = (executable as NSString).lastPathComponent
        let outcome: ProcessOutcome
        do {
            outcome = try await ChildProcess.run([executable] + arguments)
        } catch {
            throw CLIError("\(error)")
        }
        guard outcome.succeeded else {
            throw CLIError("\(name) failed (exit \(outcome.status)): \(outcome.failureText())")
        }
        return outcome.output
    }
}
