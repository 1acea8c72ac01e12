import Foundation
import Synchronization
import UnixSignals

/// Ctrl-C (SIGINT) or SIGTERM (what CI runners send on a timeout) during a build: the first
/// cancels the remote build and keeps following it to its end; the second exits at once.
/// Signals come through swift-service-lifecycle's `UnixSignalsSequence`, the same mechanism the
/// server and the builder use.
final class InterruptHandler: Sendable {
    private final class Count: Sendable { let value = Atomic<Int>(0) }
    private let count = Count()
    private let listener: Task<Void, Never>

    var fired: Bool { count.value.load(ordering: .relaxed) > 0 }

    init(onFirst: @escaping @Sendable () async -> Void) {
        let count = self.count
        listener = Task {
            for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
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
