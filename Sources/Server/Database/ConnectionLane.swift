import Dispatch
import Synchronization

/// How many pooled connections ordinary work may hold at once. While urgent work (job heartbeats
/// and claims) has run within the last second, ordinary work gets a few (`busyLimit`) and queues
/// for them, first come first served; otherwise it may use the whole pool (`idleLimit`).
///
/// Under load, log events, finishes, build creation and the API then wait here, not in
/// PostgreSQL's and the server's run queues, so a heartbeat finds a connection and a core at
/// once: a lease renewed late fails a healthy build, and a claim answered late idles a builder.
/// With no builders at work nothing is held back.
final class ConnectionLane: Sendable {
    private struct State {
        var inUse = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())
    private let idleLimit: Int
    private let busyLimit: Int
    private let window: UInt64
    /// When urgent work last ran (`DispatchTime` nanoseconds; 0: never).
    private let lastUrgent = Atomic<UInt64>(0)

    init(idleLimit: Int, busyLimit: Int, urgentWindow: Duration = .seconds(1)) {
        self.idleLimit = max(1, idleLimit)
        self.busyLimit = max(1, min(busyLimit, idleLimit))
        self.window = UInt64(urgentWindow.nanoseconds)
    }

    /// Urgent work is running: ordinary work keeps to the busy limit for the next second.
    func markUrgent() {
        lastUrgent.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
    }

    private var limit: Int {
        let last = lastUrgent.load(ordering: .relaxed)
        return last != 0 && DispatchTime.now().uptimeNanoseconds &- last < window ? busyLimit : idleLimit
    }

    /// Waits for a permit; throws `CancellationError` if the task is canceled first.
    func acquire() async throws {
        let id = state.withLock { state -> UInt64 in
            state.nextId &+= 1
            return state.nextId
        }
        let limit = self.limit
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.inUse < limit, state.waiters.isEmpty {
                        state.inUse += 1
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

    /// Returns a permit; wakes waiters, in order, while they fit under the limit.
    func release() {
        let limit = self.limit
        let woken = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.inUse -= 1
            var woken: [CheckedContinuation<Void, any Error>] = []
            while !state.waiters.isEmpty, state.inUse < limit {
                woken.append(state.waiters.removeFirst().continuation)
                state.inUse += 1
            }
            return woken
        }
        for continuation in woken { continuation.resume() }
    }

    var waiting: Int { state.withLock { $0.waiters.count } }
}
