import Synchronization

/// A small in-memory cache whose entries live for `ttl`, with single-flight loading: when an
/// entry is missing or expired, the first caller loads it and every concurrent caller for the
/// same key awaits that one load. Without this, every request in flight misses at the same moment
/// when a hot entry expires and all of them queue for the database at once, which is what a busy
/// client sees as its slowest requests.
///
/// `remove` and `removeAll` take effect at once: a load that was already running when they were
/// called still answers its own callers but does not put its (possibly older) value back.
final class ExpiringCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private enum Slot {
        case ready(Value, expires: ContinuousClock.Instant)
        case loading(Task<Value, any Error>, id: UInt64)
    }

    private struct State {
        var slots: [Key: Slot] = [:]
        var nextLoad: UInt64 = 0
    }

    let ttl: Duration
    let capacity: Int
    private let state = Mutex(State())

    init(ttl: Duration, capacity: Int) {
        self.ttl = ttl
        self.capacity = capacity
    }

    private enum Lookup {
        case hit(Value)
        case wait(Task<Value, any Error>)
        case load(Task<Value, any Error>, id: UInt64)
    }

    func value(for key: Key, load: @escaping @Sendable () async throws -> Value) async throws -> Value {
        let now = ContinuousClock.now
        let lookup: Lookup = state.withLock { state in
            switch state.slots[key] {
            case .ready(let value, let expires) where now < expires:
                return .hit(value)
            case .loading(let task, _):
                return .wait(task)
            default:
                if state.slots.count >= capacity { state.slots.removeAll() }
                state.nextLoad += 1
                let task = Task { try await load() }
                state.slots[key] = .loading(task, id: state.nextLoad)
                return .load(task, id: state.nextLoad)
            }
        }
        switch lookup {
        case .hit(let value):
            return value
        case .wait(let task):
            return try await task.value
        case .load(let task, let loadId):
            do {
                let value = try await task.value
                settle(key, loadId) { .ready(value, expires: ContinuousClock.now + ttl) }
                return value
            } catch {
                settle(key, loadId) { nil }
                throw error
            }
        }
    }

    /// A fresh cached value, without loading.
    func cachedValue(for key: Key) -> Value? {
        let now = ContinuousClock.now
        return state.withLock { state in
            if case .ready(let value, let expires) = state.slots[key], now < expires { return value }
            return nil
        }
    }

    /// Stores a value computed without `value(for:load:)` (for checks that need no I/O).
    func insert(_ value: Value, for key: Key) {
        let expires = ContinuousClock.now + ttl
        state.withLock { state in
            if state.slots.count >= capacity { state.slots.removeAll() }
            state.slots[key] = .ready(value, expires: expires)
        }
    }

    func remove(_ key: Key) {
        _ = state.withLock { $0.slots.removeValue(forKey: key) }
    }

    func removeAll() {
        state.withLock { $0.slots.removeAll() }
    }

    /// Removes the cached values `matches` picks, and every load in flight (it may have read
    /// what is being taken away).
    func removeAll(where matches: (Value) -> Bool) {
        state.withLock { state in
            state.slots = state.slots.filter { _, slot in
                if case .ready(let value, _) = slot { return !matches(value) }
                return false
            }
        }
    }

    /// Replaces the slot of load `loadId` unless something removed or replaced it meanwhile.
    private func settle(_ key: Key, _ loadId: UInt64, _ slot: () -> Slot?) {
        state.withLock { state in
            guard case .loading(_, let id) = state.slots[key], id == loadId else { return }
            state.slots[key] = slot()
        }
    }
}
