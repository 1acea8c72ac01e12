import Foundation
import Synchronization

/// Ctrl-C during a build: the first cancels the remote build (and keeps following it to its end);
/// the second exits at once.
final class InterruptHandler: @unchecked Sendable {
    private var source: (any DispatchSourceSignal)?
    private let count = Atomic<Int>(0)

    var fired: Bool { count.load(ordering: .relaxed) > 0 }

    init(onFirst: @escaping @Sendable () async -> Void) {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT)
        self.source = source
        source.setEventHandler { [self] in
            let n = count.wrappingAdd(1, ordering: .relaxed).newValue
            if n == 1 {
                Task { await onFirst() }
            } else {
                Foundation.exit(130)
            }
        }
        source.resume()
    }

    func remove() {
        source?.cancel()
        source = nil
        signal(SIGINT, SIG_DFL)
    }
}
