import DrydockProcess
import Foundation
import Synchronization

/// Ctrl-C (SIGINT) or SIGTERM (what CI runners send on a timeout) during a build: the first
/// cancels the remote build and keeps following it to its end; the second exits at once.
/// Signals come through `SignalPipe`, as in the server and the workers; once removed, a signal
/// does what it does by default.
final class InterruptHandler: Sendable {
    private final class Count: Sendable { let value = Atomic<Int>(0) }
    private let count = Count()
    private let listener: Task<Void, Never>

    var fired: Bool { count.value.load(ordering: .relaxed) > 0 }

    init(onFirst: @escaping @Sendable () async -> Void) {
        let count = self.count
        // Only if the handlers cannot be installed (no pipe): then no signal is trapped.
        let signals = (try? SignalPipe.signals([SIGINT, SIGTERM])) ?? AsyncStream { $0.finish() }
        listener = Task {
            for await _ in signals {
                if count.value.wrappingAdd(1, ordering: .relaxed).newValue == 1 {
                    Task { await onFirst() }
                } else {
                    Foundation.exit(130)
                }
            }
        }
    }

    func remove() {
        listener.cancel()
    }
}
