import Logging
import PostgresNIO

extension PostgresClient {
    /// `withTransaction`, but a failure of `body` is rethrown as itself rather than wrapped in
    /// `PostgresTransactionError`, so callers and error mapping see the domain error they threw.
    func transaction<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, isolation: isolation, body)
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error
        }
    }
}
