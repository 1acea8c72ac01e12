import Foundation
import Synchronization
import Testing
@testable import DrydockServer

/// Waits (bounded) until `condition` holds; records an issue if it never does.
func eventually(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else { Issue.record("condition not met within 10 s"); return }
        try await Task.sleep(for: .milliseconds(5))
    }
}

final class Order: Sendable {
    private let list = Mutex<[Int]>([])
    func append(_ n: Int) { list.withLock { $0.append(n) } }
    var values: [Int] { list.withLock { $0 } }
}

@Suite("The connection lane: ordinary work gives way to heartbeats and claims")
struct ConnectionLaneTests {
    @Test("at most the lane's permits run at once; the others wait their turn, first come first served")
    func permitsAndOrder() async throws {
        let lane = ConnectionLane(idleLimit: 2, busyLimit: 2)
        try await lane.acquire()
        try await lane.acquire()
        let order = Order()
        var tasks: [Task<Void, any Error>] = []
        for n in 0..<3 {
            tasks.append(Task {
                try await lane.acquire()
                order.append(n)
            })
            // Queued one at a time so their order is known.
            try await eventually { lane.waiting == n + 1 }
        }
        #expect(order.values.isEmpty)
        lane.release()
        try await tasks[0].value
        #expect(order.values == [0])
        // One permit at a time, so which waiter got it is known (two woken together may record
        // themselves in either order).
        lane.release()
        try await tasks[1].value
        #expect(order.values == [0, 1])
        lane.release()
        try await tasks[2].value
        #expect(order.values == [0, 1, 2])
        #expect(lane.waiting == 0)
    }

    @Test("a waiter whose task is canceled (its request gave up) leaves the queue and takes no permit")
    func cancellation() async throws {
        let lane = ConnectionLane(idleLimit: 1, busyLimit: 1)
        try await lane.acquire()
        let gaveUp = Task { try await lane.acquire() }
        try await eventually { lane.waiting == 1 }
        gaveUp.cancel()
        await #expect(throws: CancellationError.self) { try await gaveUp.value }
        #expect(lane.waiting == 0)
        // The permit went back to the lane, not to the canceled waiter.
        lane.release()
        try await lane.acquire()
        let next = Task { try await lane.acquire() }
        try await eventually { lane.waiting == 1 }
        lane.release()
        try await next.value
    }

    @Test("ordinary work may use the whole pool until urgent work runs; then it keeps to the busy limit, and again the whole pool a moment after")
    func busyLimit() async throws {
        // A window no delay of a loaded machine reaches: the busy limit holds throughout.
        let busy = ConnectionLane(idleLimit: 3, busyLimit: 1, urgentWindow: .seconds(60))
        for _ in 0..<3 { try await busy.acquire() }
        for _ in 0..<3 { busy.release() }
        busy.markUrgent()
        try await busy.acquire()
        let second = Task { try await busy.acquire() }
        try await eventually { busy.waiting == 1 }
        busy.release()
        try await second.value
        // Urgent work stopped: once its short window has passed (any delay only adds to it), three at once again.
        let calm = ConnectionLane(idleLimit: 3, busyLimit: 1, urgentWindow: .milliseconds(100))
        calm.markUrgent()
        try await Task.sleep(for: .milliseconds(200))
        for _ in 0..<3 { try await calm.acquire() }
        #expect(calm.waiting == 0)
    }

    @Test("job heartbeats and claims are urgent; their log events, finishes and everything else are not")
    func urgentRequests() {
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/workers/claim") == .claim)
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/jobs/j123/heartbeat") == .heartbeat)
        #expect(UrgentRequests.kind(method: "GET", path: "/api/v1/workers/claim") == nil)
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/jobs/j123/events") == nil)
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/jobs/j123/finish") == nil)
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/jobs//heartbeat") == nil)
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/jobs/a/b/heartbeat") == nil)
        #expect(UrgentRequests.kind(method: "POST", path: "/api/v1/projects/p/builds") == nil)
    }
}
