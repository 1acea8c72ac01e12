@testable import DrydockServer
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Testing

/// How failures that are nobody's bug reach clients, and the settings that bound connections.
@Suite("Unit: failure mapping and limits")
struct FailureMappingTests {
    let logger = Logger(label: "unit")

    @Test("a database that does not answer is a 503 with Retry-After, in problem+json")
    func databaseUnavailable() {
        let problem = ProblemMiddleware.problem(for: DatabaseUnavailable(waited: .seconds(5)), operationID: "listProjects", logger: logger)
        #expect(problem.status == .serviceUnavailable)
        #expect(problem.code == "database_unavailable")
        let (head, _) = ProblemMiddleware.response(problem, path: "/api/v1/projects")
        #expect(head.headerFields[.retryAfter] == "5")
        #expect(head.headerFields[.contentType] == "application/problem+json")
    }

    @Test("a full disk is a 507 naming storage, whichever layer noticed it", arguments: [
        BlobStoreError.storageFull as any Error, IOError(errnoCode: ENOSPC, reason: "write") as any Error,
        POSIXError(.EDQUOT) as any Error,
    ])
    func storageFull(error: any Error) {
        #expect(ServiceFault(error) == .storageFull)
        let problem = ProblemMiddleware.problem(for: error, operationID: "uploadBuildContext", logger: logger)
        #expect(problem.status.code == 507)
        #expect(problem.detail.contains("storage is full"))
    }

    @Test("domain errors map to one status each, with the field named", arguments: [
        (DomainError.invalidField("limit", "must be between 1 and 200"), 400), (DomainError.invalidToken, 401),
        (DomainError.forbidden("no"), 403), (DomainError.notFound("project", "x"), 404), (DomainError.conflict("taken"), 409),
        (DomainError.limit("usage_limit", "cap reached"), 402),
    ])
    func domainErrors(error: DomainError, status: Int) {
        let problem = ProblemMiddleware.problem(for: error, operationID: "op", logger: logger)
        #expect(problem.status.code == status)
        #expect(problem.code == error.code)
        if let field = error.field {
            #expect(problem.fieldErrors == [.init(field: field, message: "must be between 1 and 200")])
        }
    }

    @Test("an internal domain error answers 500 without its details")
    func internalError() {
        let problem = ProblemMiddleware.problem(for: DomainError.internal("row vanished"), operationID: "op", logger: logger)
        #expect(problem.status == .internalServerError)
        #expect(!problem.detail.contains("vanished"))
    }

    @Test("other errors are not service faults")
    func otherErrors() {
        #expect(ServiceFault(CancellationError()) == nil)
        #expect(ServiceFault(IOError(errnoCode: EACCES, reason: "open")) == nil)
    }

    @Test("dollar amounts parse exactly and refuse what is not ASCII digits", arguments: [
        ("250", Int64?.some(25000)), ("250.5", 25050), ("250.05", 25005), ("0.99", 99),
        ("1.٣", nil), ("٣", nil), ("-1", nil), ("1.234", nil), ("1.", nil), (".5", nil), ("", nil), ("1e3", nil), ("1000000000", nil),
    ])
    func cents(text: String, expected: Int64?) {
        #expect((try? APIHandler.cents(fromDollars: text, field: "spendPerMonth")) == expected)
    }

    @Test("connection settings come from the environment, with clear refusals")
    func connectionSettings() throws {
        let configured = try ServerConfiguration.fromEnvironment([
            "DRYDOCK_IDLE_TIMEOUT_SECONDS": "30", "DRYDOCK_HEADER_TIMEOUT_SECONDS": "4", "DRYDOCK_MAX_CONNECTIONS": "500",
            "DRYDOCK_DATABASE_WAIT_SECONDS": "3", "DRYDOCK_DATABASE_MIN_CONNECTIONS": "0", "DRYDOCK_DATA_DIR": "/tmp/x",
        ])
        #expect(configured.databaseMinConnections == 0)
        #expect(configured.idleTimeout == .seconds(30))
        #expect(configured.headerTimeout == .seconds(4))
        #expect(configured.maxConnections == 500)
        #expect(configured.databaseWaitLimit == .seconds(3))
        let defaults = try ServerConfiguration.fromEnvironment(["DRYDOCK_DATA_DIR": "/tmp/x"])
        #expect(defaults.idleTimeout == .seconds(60))
        #expect(defaults.headerTimeout == .seconds(10))
        #expect(defaults.maxConnections == nil)
        #expect(defaults.databaseWaitLimit == .seconds(5))
        #expect(defaults.databaseMinConnections == 8)
        for (name, value) in [("DRYDOCK_IDLE_TIMEOUT_SECONDS", "0"), ("DRYDOCK_HEADER_TIMEOUT_SECONDS", "x"), ("DRYDOCK_MAX_CONNECTIONS", "-5"),
                              ("DRYDOCK_DATABASE_MIN_CONNECTIONS", "21"), ("DRYDOCK_DATABASE_MIN_CONNECTIONS", "-1"), ("DRYDOCK_DATABASE_MIN_CONNECTIONS", "many")] {
            #expect(throws: ConfigurationError.self) { try ServerConfiguration.fromEnvironment([name: value, "DRYDOCK_DATA_DIR": "/tmp/x"]) }
        }
    }

    @Test("the default connection cap leaves descriptors for files and PostgreSQL", arguments: [
        (1024, 448), (128, 16), (100, 16), (20000, 9936), (1_048_576, 10_000),
    ])
    func defaultCap(descriptors: Int, cap: Int) {
        #expect(ConnectionLimits.defaultMaxConnections(descriptorLimit: descriptors) == cap)
    }
}
