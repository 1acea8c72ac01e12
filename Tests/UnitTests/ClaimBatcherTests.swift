import Foundation
import Synchronization
import Testing
@testable import DrydockServer

/// A stand-in for the queue: hands out numbered jobs while it has any, records each batch, and
/// holds a batch while told to (as a slow transaction would).
final class FakeQueue: Sendable {
    private struct State {
        var next = 0
        var remaining: Int
        var batches: [[String]] = []
        var held = true
        var heldRequests = 0
        var waitingForRelease: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>

    init(jobs: Int) { state = Mutex(State(remaining: jobs)) }

    var batches: [[String]] { state.withLock { $0.batches } }
    /// Requests in batches held back.
    var heldRequests: Int { state.withLock { $0.heldRequests } }

    func release() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.held = false
            defer { state.waitingForRelease = [] }
            return state.waitingForRelease
        }
        for continuation in waiting { continuation.resume() }
    }

    func run(_ key: String, _ workers: [String]) async throws -> [String] {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let held = state.withLock { state -> Bool in
                if state.held {
                    state.waitingForRelease.append(continuation)
                    state.heldRequests += workers.count
                }
                return state.held
            }
            if !held { continuation.resume() }
        }
        return state.withLock { state -> [String] in
            state.batches.append(workers)
            let count = min(workers.count, state.remaining)
            state.remaining -= count
            defer { state.next += count }
            return (0..<count).map { "\(key)-job\(state.next + $0)" }
        }
    }
}

@Suite("Claims waiting together are answered together")
struct ClaimBatcherTests {
    @Test("fifty claims at once: a few batches, each claim its own job, none twice; claims past the queued jobs get none")
    func burst() async throws {
        let batcher = ClaimBatcher<String, String, String>(maxBatch: 32, concurrentBatches: 2)
        let queue = FakeQueue(jobs: 45)
        let answers = try await withThrowingTaskGroup(of: (String, String?).self) { group in
            for n in 0..<50 {
                group.addTask {
                    let worker = "w\(n)"
                    return (worker, try await batcher.claim("linux/amd64", worker) { key, workers in try await queue.run(key, workers) })
                }
            }
            // The first batches are held (a slow transaction) until every claim waits, in them or for the next.
            try await eventually { batcher.waitingCount("linux/amd64") + queue.heldRequests == 50 }
            queue.release()
            return try await group.reduce(into: [String: String?]()) { $0[$1.0] = $1.1 }
        }
        let jobs = answers.values.compactMap { $0 }
        #expect(answers.count == 50)
        #expect(jobs.count == 45 && Set(jobs).count == 45, "\(jobs)")
        let batches = queue.batches
        #expect(batches.count <= 5, "\(batches.map(\.count))")
        #expect(batches.allSatisfy { $0.count <= 32 })
        #expect(batches.flatMap { $0 }.sorted() == (0..<50).map { "w\($0)" }.sorted(), "each claim in exactly one batch")
        #expect(batcher.waitingCount("linux/amd64") == 0)
    }

    @Test("claims for different jobs are not mixed; a claim canceled while it waits gets none and is not in any batch")
    func keysAndCancel() async throws {
        let batcher = ClaimBatcher<String, String, String>(maxBatch: 32, concurrentBatches: 1)
        let queue = FakeQueue(jobs: 10)
        let first = Task { try await batcher.claim("arm64", "a0") { key, workers in try await queue.run(key, workers) } }
        // The first claim's batch runs (held, as a slow transaction) before the next claims come.
        try await eventually { queue.heldRequests == 1 }
        let canceled = Task { try await batcher.claim("arm64", "gone") { key, workers in try await queue.run(key, workers) } }
        let other = Task { try await batcher.claim("amd64", "b0") { key, workers in try await queue.run(key, workers) } }
        try await eventually { batcher.waitingCount("arm64") == 1 }
        canceled.cancel()
        #expect(try await canceled.value == nil)
        queue.release()
        #expect(try await first.value?.hasPrefix("arm64-") == true)
        #expect(try await other.value?.hasPrefix("amd64-") == true)
        #expect(!queue.batches.contains { $0.contains("gone") }, "\(queue.batches)")
        #expect(queue.batches.allSatisfy { Set($0.map(\.first)).count == 1 }, "\(queue.batches)")
    }

    @Test("claims that keep arriving after a quiet spell are gathered into one batch; without gathering the first claim's batch starts alone")
    func burstAfterQuiet() async throws {
        // The claims come 10 ms apart; a batch waits while the last came within 30 s, or until it
        // is full (8), so a loaded machine's stalls cannot split it.
        let gathering = ClaimBatcher<String, String, String>.Gathering(quietSpell: .seconds(60), gap: .seconds(30), longest: .seconds(60))
        let batcher = ClaimBatcher<String, String, String>(maxBatch: 8, concurrentBatches: 1, gathering: gathering)
        let queue = FakeQueue(jobs: 8)
        queue.release()
        let answers = try await withThrowingTaskGroup(of: String?.self) { group in
            for n in 0..<8 {
                group.addTask { try await batcher.claim("k", "w\(n)") { key, workers in try await queue.run(key, workers) } }
                try await Task.sleep(for: .milliseconds(10))
            }
            return try await group.reduce(into: [String?]()) { $0.append($1) }
        }
        #expect(answers.compactMap { $0 }.count == 8)
        #expect(queue.batches.map(\.count) == [8], "\(queue.batches)")
        #expect(batcher.gatheringWaits > 0)

        // Without gathering, the first claim's batch runs (held, as a slow transaction) before
        // the next claim comes; the rest form the next batch.
        let plain = ClaimBatcher<String, String, String>(maxBatch: 8, concurrentBatches: 1, gathering: nil)
        let held = FakeQueue(jobs: 8)
        let plainAnswers = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await plain.claim("k", "w0") { key, workers in try await held.run(key, workers) } }
            try await eventually { held.heldRequests == 1 }
            for n in 1..<8 {
                group.addTask { try await plain.claim("k", "w\(n)") { key, workers in try await held.run(key, workers) } }
            }
            try await eventually { plain.waitingCount("k") == 7 }
            held.release()
            return try await group.reduce(into: [String?]()) { $0.append($1) }
        }
        #expect(plainAnswers.compactMap { $0 }.count == 8)
        #expect(held.batches.map(\.count) == [1, 7], "\(held.batches)")
        #expect(plain.gatheringWaits == 0)
    }

    @Test("a claim soon after the last one does not wait to gather: only a claim after a quiet spell does")
    func steadyClaimsDoNotWait() async throws {
        // Counted, not timed: a loaded machine's stall (CI saw 1.6 s) must not decide it.
        let batcher = ClaimBatcher<String, String, String>(
            maxBatch: 8, concurrentBatches: 1, gathering: .init(quietSpell: .seconds(60), gap: .milliseconds(200), longest: .seconds(60)))
        let queue = FakeQueue(jobs: 2)
        queue.release()
        let clock = ContinuousClock()
        var first: String?
        let waited = try await clock.measure { first = try await batcher.claim("k", "w1") { key, workers in try await queue.run(key, workers) } }
        let waitsAfterFirst = batcher.gatheringWaits
        // The first batch has ended (as between two claims of a steady stream).
        try await eventually { batcher.runningBatches("k") == 0 }
        let second = try await batcher.claim("k", "w2") { key, workers in try await queue.run(key, workers) }
        #expect(first != nil && second != nil)
        #expect(waitsAfterFirst > 0 && waited >= .milliseconds(200), "the first claim after a quiet spell gathers for the gap: \(waited)")
        #expect(batcher.gatheringWaits == waitsAfterFirst, "a claim right after another waited to gather")
        #expect(queue.batches.map(\.count) == [1, 1])
    }

    @Test("a failed batch fails its claims only; the next batch runs")
    func failure() async throws {
        struct Broken: Error {}
        let batcher = ClaimBatcher<String, String, String>(maxBatch: 4, concurrentBatches: 1)
        let calls = Mutex(0)
        let run: ClaimBatcher<String, String, String>.Run = { _, workers in
            let call = calls.withLock { $0 += 1; return $0 }
            if call == 1 { throw Broken() }
            return workers.map { "job-for-\($0)" }
        }
        await #expect(throws: Broken.self) { try await batcher.claim("k", "w1", run: run) }
        #expect(try await batcher.claim("k", "w2", run: run) == "job-for-w2")
    }
}
