@testable import DrydockServer
import Synchronization
import Testing

/// The dashboard's registry page loads each repository's tags a few at a time.
@Suite("Bounded concurrent map")
struct ConcurrentMapTests {
    @Test("answers in the elements' order, runs at most the limit at once, and stops at the first error")
    func orderAndLimit() async throws {
        let running = Mutex((now: 0, most: 0))
        let out = try await Dashboard.concurrentMap(Array(0..<40), limit: 8) { n in
            running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            // Later elements finish first, so answers arrive out of order.
            try await Task.sleep(for: .milliseconds(40 - n))
            running.withLock { $0.now -= 1 }
            return n * n
        }
        #expect(out == (0..<40).map { $0 * $0 })
        let most = running.withLock { $0.most }
        #expect(most <= 8 && most > 1, "at most \(most) at once")

        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            _ = try await Dashboard.concurrentMap(Array(0..<10), limit: 3) { n in
                if n == 4 { throw Refused() }
                return n
            }
        }
        #expect(try await Dashboard.concurrentMap([Int](), limit: 8) { $0 }.isEmpty)
    }
}
