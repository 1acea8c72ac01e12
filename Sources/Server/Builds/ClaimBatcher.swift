import Synchronization

/// Claims that wait at the same time for the same jobs (equal `Key`) are answered
/// together: a batch of up to `maxBatch` waiting claims is one transaction that picks that many
/// jobs. At most `concurrentBatches` batches of one key run at once; claims arriving meanwhile
/// wait for the next one.
///
/// Without it, fifty builders woken at once by new work (or started together) sent fifty
/// transactions, which queued for pooled connections and cores: the last answers took 100–250 ms
/// on a two-core machine, where a batch of them takes about as long as one claim.
///
/// Claims that come after a quiet spell (none of the key for `quietSpell`) open a gathering
/// window: until `Gathering.longest` after that first claim, a batch about to take its claims
/// waits while more keep arriving (one within `Gathering.gap` of the last). Fifty builders started
/// together (or woken by new work) reach the queue over several milliseconds while the server
/// reads their requests; without the window the first two batches took the first dozen, and the
/// rest waited for them, three rounds of transactions in all on two cores. Steady claiming never
/// has such a spell, so it never waits. Measured: README, "an eighth sitting".
///
/// A batch runs in a task of its own, so a claim whose client goes away does not cancel the
/// others' transaction; a claim canceled while it still waits leaves the queue with no job.
final class ClaimBatcher<Key: Hashable & Sendable, Request: Sendable, Answer: Sendable>: Sendable {
    /// Answers a batch: the i-th answer is the i-th request's; fewer answers than requests: the
    /// last ones get nil.
    typealias Run = @Sendable (Key, [Request]) async throws -> [Answer]

    private struct Waiter {
        var id: UInt64
        var request: Request
        var continuation: CheckedContinuation<Answer?, any Error>
    }

    private struct Queue {
        var running = 0
        var waiting: [Waiter] = []
        /// Batches may wait for more claims until then (a burst after a quiet spell).
        var gatherUntil: ContinuousClock.Instant?
    }

    private struct State {
        var queues: [Key: Queue] = [:]
        var nextId: UInt64 = 0
        /// When each key's last claim came.
        var arrivals: [Key: ContinuousClock.Instant] = [:]
        /// Times a batch waited for more of a burst (for tests: whether a claim gathered).
        var gatheringWaits = 0
    }

    /// How long a batch may wait for the rest of a burst.
    struct Gathering: Sendable {
        /// No claim of the key for this long, and the next one opens a window.
        var quietSpell: Duration = .milliseconds(50)
        /// Claims still arriving: the last one came within this.
        var gap: Duration = .milliseconds(1)
        /// The window's length from its first claim.
        var longest: Duration = .milliseconds(4)
    }

    private let state = Mutex(State())
    let maxBatch: Int
    let concurrentBatches: Int
    let gathering: Gathering?

    init(maxBatch: Int = 32, concurrentBatches: Int = 2, gathering: Gathering? = Gathering()) {
        self.maxBatch = max(1, maxBatch)
        self.concurrentBatches = max(1, concurrentBatches)
        self.gathering = gathering
    }

    /// This request's answer (the job a worker gets), or nil: none was queued when its batch looked.
    func claim(_ key: Key, _ request: Request, run: @escaping Run) async throws -> Answer? {
        let id = state.withLock { state -> UInt64 in
            state.nextId &+= 1
            return state.nextId
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Answer?, any Error>) in
                let startsBatch = state.withLock { state -> Bool? in
                    if Task.isCancelled { return nil }
                    var queue = state.queues[key] ?? Queue()
                    if let gathering {
                        let now = ContinuousClock.now
                        if state.arrivals[key].map({ now - $0 >= gathering.quietSpell }) ?? true {
                            queue.gatherUntil = now + gathering.longest
                        }
                        if state.arrivals.count >= 10_000, state.arrivals[key] == nil {
                            state.arrivals = state.arrivals.filter { now - $0.value < gathering.quietSpell }
                        }
                        state.arrivals[key] = now
                    }
                    queue.waiting.append(Waiter(id: id, request: request, continuation: continuation))
                    let starts = queue.running < concurrentBatches
                    if starts { queue.running += 1 }
                    state.queues[key] = queue
                    return starts
                }
                guard let startsBatch else { return continuation.resume(returning: nil) }
                if startsBatch { Task { await self.drain(key, run: run) } }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<Answer?, any Error>? in
                guard var queue = state.queues[key], let index = queue.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                let waiter = queue.waiting.remove(at: index)
                state.queues[key] = queue
                return waiter.continuation
            }
            waiting?.resume(returning: nil)
        }
    }

    /// Claims of this key waiting for a batch (not those in one).
    func waitingCount(_ key: Key) -> Int {
        state.withLock { $0.queues[key]?.waiting.count ?? 0 }
    }

    /// Batches of this key running now.
    func runningBatches(_ key: Key) -> Int {
        state.withLock { $0.queues[key]?.running ?? 0 }
    }

    /// Times a batch of any key waited for more claims of a burst.
    var gatheringWaits: Int { state.withLock { $0.gatheringWaits } }

    /// Runs batches of this key's waiting claims until none wait.
    private func drain(_ key: Key, run: Run) async {
        while true {
            await gather(key)
            let batch = state.withLock { state -> [Waiter] in
                guard var queue = state.queues[key] else { return [] }
                guard !queue.waiting.isEmpty else {
                    queue.running -= 1
                    state.queues[key] = queue.running == 0 ? nil : queue
                    return []
                }
                let taken = Array(queue.waiting.prefix(maxBatch))
                queue.waiting.removeFirst(taken.count)
                state.queues[key] = queue
                return taken
            }
            if batch.isEmpty { return }
            Observability.claimBatches.increment()
            Observability.claimsInBatches.increment(by: batch.count)
            do {
                let claimed = try await run(key, batch.map(\.request))
                for (index, waiter) in batch.enumerated() {
                    waiter.continuation.resume(returning: index < claimed.count ? claimed[index] : nil)
                }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }

    /// Waits while a burst's claims keep arriving (see the type's comment), up to a full batch.
    private func gather(_ key: Key) async {
        guard let gathering else { return }
        while true {
            let now = ContinuousClock.now
            let waits = state.withLock { state -> Bool in
                guard let queue = state.queues[key], let until = queue.gatherUntil, now < until, !queue.waiting.isEmpty,
                      queue.waiting.count < maxBatch, let last = state.arrivals[key], now - last < gathering.gap else { return false }
                state.gatheringWaits += 1
                return true
            }
            guard waits else { return }
            // Looks again at least every millisecond: a batch that fills stops waiting.
            do { try await Task.sleep(for: min(gathering.gap, .milliseconds(1))) } catch { return }
        }
    }
}
