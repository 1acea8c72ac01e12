import Synchronization

/// The pooled connections ordinary work may hold at once: all but a few, which the pool keeps
/// for urgent work (job heartbeats and claims). Under load, log events, finishes, build creation
/// and the API queue here, first come first served, while a heartbeat finds a connection at once:
/// a lease renewed late fails a healthy build, and a claim answered late idles a builder.
final class ConnectionLane: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextId: UInt64 = 0
    }

    private let state: Mutex<State>

    init(permits: Int) {
        state = Mutex(State(free: max(1, permits)))
    }

    /// Waits for a permit; throws `CancellationError` if the task is canceled first.
    func acquire() async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextId &+= 1
            return state.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.free > 0, state.waiters.isEmpty {
                        state.free -= 1
                        return .success(())
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    /// Returns a permit: to the first waiter, or to the free ones.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }

    var waiting: Int { state.withLock { $0.waiters.count } }
}
