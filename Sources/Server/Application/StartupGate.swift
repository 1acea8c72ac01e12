import Synchronization

/// A one-time signal between start-up steps: the private PostgreSQL is up, the schema is
/// migrated. Services that need a step `wait()` for it instead of sleeping and hoping; if the
/// step fails, every waiter gets its error.
public final class StartupGate: Sendable {
    private enum State {
        case waiting([CheckedContinuation<Void, any Error>])
        case open
        case failed(any Error)
    }

    private let state = Mutex<State>(.waiting([]))
    let name: String

    public init(_ name: String) {
        self.name = name
    }

    /// An already-open gate, for steps that have nothing to wait for.
    public static func opened(_ name: String) -> StartupGate {
        let gate = StartupGate(name)
        gate.open()
        return gate
    }

    public func wait() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let result: Result<Void, any Error>? = state.withLock { state in
                switch state {
                case .waiting(var waiters):
                    waiters.append(continuation)
                    state = .waiting(waiters)
                    return nil
                case .open: return .success(())
                case .failed(let error): return .failure(error)
                }
            }
            if let result { continuation.resume(with: result) }
        }
    }

    public func open() { finish(.success(())) }

    public func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ result: Result<Void, any Error>) {
        let waiters: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            guard case .waiting(let waiters) = state else { return [] }
            switch result {
            case .success: state = .open
            case .failure(let error): state = .failed(error)
            }
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}
