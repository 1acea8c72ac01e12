@testable import DrydockServer
import Synchronization
import Testing

/// The cache in front of token grants and project records: what requests rely on is that a burst
/// of them costs one database read, and that a revocation or deletion is never undone by a read
/// that was already under way.
@Suite("Expiring cache (token grants, projects)")
struct CacheTests {
    final class Loads: Sendable {
        let count = Atomic<Int>(0)
        func next() -> Int { count.add(1, ordering: .relaxed).newValue }
    }

    @Test("50 concurrent misses on one key cost one load, and all get its value")
    func singleFlight() async throws {
        let cache = ExpiringCache<String, Int>(ttl: .seconds(60), capacity: 100)
        let loads = Loads()
        let values = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    try await cache.value(for: "k") {
                        try await Task.sleep(for: .milliseconds(100))
                        return loads.next()
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(values == Array(repeating: 1, count: 50))
        #expect(loads.count.load(ordering: .relaxed) == 1)
        #expect(cache.cachedValue(for: "k") == 1)
    }

    @Test("a remove during a load: the load answers its callers but does not put its value back")
    func removeDuringLoad() async throws {
        let cache = ExpiringCache<String, String>(ttl: .seconds(60), capacity: 100)
        let started = AsyncStream<Void>.makeStream()
        let inFlight = Task {
            try await cache.value(for: "token") {
                started.continuation.yield()
                try await Task.sleep(for: .milliseconds(200))
                return "granted before the revocation"
            }
        }
        for await _ in started.stream { break }
        cache.remove("token")  // e.g. the token was revoked while its grant was being read
        #expect(try await inFlight.value == "granted before the revocation")
        #expect(cache.cachedValue(for: "token") == nil)
        let fresh = try await cache.value(for: "token") { "revoked" }
        #expect(fresh == "revoked")
    }

    @Test("entries expire after the ttl, failed loads are not cached, removeAll empties it")
    func expiryAndFailures() async throws {
        // Kept: a ttl no stall of a loaded machine reaches (a 100 ms one failed when the machine
        // paused between two reads).
        let cache = ExpiringCache<String, Int>(ttl: .seconds(60), capacity: 100)
        let loads = Loads()
        #expect(try await cache.value(for: "k") { loads.next() } == 1)
        #expect(try await cache.value(for: "k") { loads.next() } == 1)
        // Expired: any delay only adds to the wait.
        let short = ExpiringCache<String, Int>(ttl: .milliseconds(100), capacity: 100)
        let shortLoads = Loads()
        #expect(try await short.value(for: "k") { shortLoads.next() } == 1)
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await short.value(for: "k") { shortLoads.next() } == 2)

        struct Down: Error {}
        await #expect(throws: Down.self) { try await cache.value(for: "other") { throw Down() } }
        #expect(try await cache.value(for: "other") { 7 } == 7)

        cache.removeAll()
        #expect(cache.cachedValue(for: "k") == nil && cache.cachedValue(for: "other") == nil)
    }
}
