import AsyncHTTPClient
import DrydockServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import Testing

/// The PostgreSQL server the test command started (scripts/test.sh). Each test gets a database
/// of its own, created empty, so tests run in parallel and migrations start from nothing.
enum TestDatabase {
    static var adminURL: DatabaseURL {
        get throws {
            guard let raw = ProcessInfo.processInfo.environment["DRYDOCK_TEST_DATABASE_URL"], !raw.isEmpty else {
                throw ConfigurationError("DRYDOCK_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
            }
            return try DatabaseURL(raw)
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "drydock-test")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    /// The harness's own statements (creating a test's database, reading and writing rows) may
    /// wait this long: when every suite starts at once, a `CREATE DATABASE` can queue behind the
    /// others for more than the server's 5 seconds.
    static let setupWaitLimit: Duration = .seconds(120)

    /// A new, empty database; returns its URL.
    static func create() async throws -> DatabaseURL {
        let admin = try adminURL
        let name = "drydock_test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased())"
        try await ServerRunner.withDatabase(admin, logger: logger, waitLimit: setupWaitLimit) { client in
            try await client.query("CREATE DATABASE \(unescaped: name)", logger: logger)
        }
        return admin.with(database: name)
    }

    static func execute(_ url: DatabaseURL, _ query: PostgresQuery) async throws {
        try await ServerRunner.withDatabase(url, logger: logger, waitLimit: setupWaitLimit) { client in
            try await client.query(query, logger: logger)
        }
    }
}

struct JSONResponse: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let text: String

    /// The body as one of the API's generated types (dates as the API writes them).
    func decoded<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        do {
            return try APIJSON.decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw CLITestError("the answer is not a \(T.self) (\(error)): \(status) \(text)")
        }
    }

    /// The body as an RFC 9457 problem, if it is one.
    var problem: Components.Schemas.Problem? { try? decoded() }
}

/// Decodes what the API and the CLI's `--format json` write, with the generated types.
enum APIJSON {
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = RFC3339DateTranscoder.decodingStrategy
        return decoder
    }()

    static func decode<T: Decodable>(_ type: T.Type = T.self, _ text: String) throws -> T {
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw CLITestError("not a \(T.self) (\(error)): \(text)")
        }
    }
}

typealias Schemas = Components.Schemas

/// The metrics backend of the test process, installed once (as `main` does for the server).
enum TestMetrics {
    static let registry = Observability.bootstrap()
}

/// A live server on an ephemeral port, on its own database, with one bootstrapped organization.
struct TestServer: Sendable {
    let client: any TestClientProtocol
    let database: DatabaseURL
    let port: Int
    let ownerToken: String
    let organizationId: String
    let dataDirectory: URL

    var baseURL: String { "http://127.0.0.1:\(port)" }

    @discardableResult
    func request(_ method: HTTPRequest.Method, _ path: String, token: String? = nil, json: String? = nil,
                 headers extra: HTTPFields = [:]) async throws -> JSONResponse {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        // The long-polls answer `Connection: close` (the server watches the connection to stop
        // waiting when the client goes away): they get a connection of their own.
        if path.hasPrefix("/api/v1/workers/claim") || path.hasPrefix("/api/v1/agents/poll") {
            return try await ownConnection(method, path, headers: headers, body: json.map { ByteBuffer(string: $0) })
        }
        let response = try await client.executeRequest(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        return JSONResponse(status: response.status, headers: response.headers, text: String(buffer: response.body))
    }

    /// A request on a connection of its own (AsyncHTTPClient's pool), as separate clients send them:
    /// for bursts of concurrent requests, which the test client would queue on its one connection.
    func requestOwn(_ method: HTTPRequest.Method, _ path: String, token: String? = nil, json: String? = nil) async throws -> JSONResponse {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await ownConnection(method, path, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    private func ownConnection(_ method: HTTPRequest.Method, _ path: String, headers: HTTPFields, body: ByteBuffer?) async throws -> JSONResponse {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method.rawValue)
        for field in headers { request.headers.add(name: field.name.rawName, value: field.value) }
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(90))
        var fields = HTTPFields()
        for (name, value) in response.headers { if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) } }
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return JSONResponse(status: HTTPResponse.Status(code: Int(response.status.code)), headers: fields, text: String(buffer: bytes))
    }

    /// A request with a binary body and Basic credentials (registry style).
    func registry(_ method: HTTPRequest.Method, _ path: String, token: String? = nil, body: [UInt8]? = nil,
                  headers extra: HTTPFields = [:]) async throws -> (status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8]) {
        var headers = extra
        if let token { headers[.authorization] = "Basic " + Data("ci:\(token)".utf8).base64EncodedString() }
        let response = try await client.executeRequest(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(bytes: $0) })
        return (response.status, response.headers, Array(buffer: response.body))
    }

    /// Bootstraps another organization on the same database; returns (organizationId, ownerToken).
    func bootstrap(_ name: String, plan: PlanName = .startup) async throws -> (String, String) {
        let result = try await ServerRunner.bootstrap(
            ServerConfiguration(databaseURL: nil, dataDirectory: FileManager.default.temporaryDirectory),
            database: database, organization: name, email: nil, plan: plan, logger: TestDatabase.logger)
        return (result.organization.id, result.secret)
    }

    /// Creates a project with the owner token and returns its id.
    func createProject(_ name: String, token: String? = nil) async throws -> String {
        let response = try await request(.post, "/api/v1/projects", token: token ?? ownerToken, json: #"{"name":"\#(name)"}"#)
        try #require(response.status == .created, "creating project \(name): \(response.text)")
        return try response.decoded(Schemas.Project.self).id
    }

    /// The SHA-256 of 1 KiB of zeros: a context that needs no packing.
    static let zeroContextHex = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

    /// Uploads 1 KiB of zeros as a build context of the project; returns its `sha256:` digest.
    func uploadZeroContext(_ project: String, token: String? = nil) async throws -> String {
        let upload = try await request(.put, "/api/v1/projects/\(project)/contexts/\(Self.zeroContextHex)", token: token ?? ownerToken,
                                       json: String(repeating: "\u{0}", count: 1024), headers: [.contentType: "application/x-tar"])
        try #require(upload.status == .created, "\(upload.text)")
        return "sha256:\(Self.zeroContextHex)"
    }

    /// Creates a token and returns (id, secret).
    func createToken(_ body: String, token: String? = nil) async throws -> (String, String) {
        let response = try await request(.post, "/api/v1/tokens", token: token ?? ownerToken, json: body)
        try #require(response.status == .created, "creating token \(body): \(response.text)")
        let created = try response.decoded(Schemas.CreatedToken.self)
        return (created.id, created.token)
    }
}

func withTestServer<T: Sendable>(
    plan: PlanName = .startup,
    configure: (inout ServerConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (TestServer) async throws -> T
) async throws -> T {
    let database = try await TestDatabase.create()
    var configuration = ServerConfiguration(
        databaseURL: nil, host: "127.0.0.1", port: 0,
        dataDirectory: FileManager.default.temporaryDirectory.appendingPathComponent("drydock-test-\(UUID().uuidString)"))
    configuration.metrics = TestMetrics.registry
    // The test client keeps one connection and does not reconnect; a long build (minutes under a
    // loaded CI machine) must not see it closed as idle. The idle-timeout tests set their own.
    configuration.idleTimeout = .seconds(900)
    // Dozens of test servers share one PostgreSQL (500 connections): each opens connections on
    // demand. The test of the default sets its own.
    configuration.databaseMinConnections = 0
    configure(&configuration)
    let configured = configuration
    let app = try buildApplication(configured, database: database, logger: TestDatabase.logger)
    return try await app.test(.live) { client in
        let bootstrap = try await ServerRunner.bootstrap(
            configured, database: database, organization: "acme", email: "owner@acme.test", plan: plan, logger: TestDatabase.logger)
        let server = TestServer(
            client: client, database: database, port: try #require(client.port),
            ownerToken: bootstrap.secret, organizationId: bootstrap.organization.id,
            dataDirectory: configured.dataDirectory)
        return try await body(server)
    }
}

/// The package root, for the built executables and openapi.yaml.
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The operations in openapi.yaml as (operationId, method, path template).
func specOperations() throws -> [(id: String, method: String, path: String)] {
    let text = try String(contentsOf: packageRoot.appendingPathComponent("openapi.yaml"), encoding: .utf8)
    var operations: [(String, String, String)] = []
    var currentPath: String?
    var currentMethod: String?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("  /"), line.hasSuffix(":") {
            currentPath = String(line.dropFirst(2).dropLast())
        } else if line.hasPrefix("components:") {
            currentPath = nil
        } else if let path = currentPath {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("    "), !line.hasPrefix("     "),
               ["get:", "post:", "patch:", "put:", "delete:"].contains(trimmed) {
                currentMethod = String(trimmed.dropLast())
            } else if trimmed.hasPrefix("operationId:"), let method = currentMethod {
                operations.append((trimmed.replacingOccurrences(of: "operationId:", with: "").trimmingCharacters(in: .whitespaces), method, path))
            }
        }
    }
    return operations
}

extension TestDatabase {
    static func count(_ url: DatabaseURL, _ query: PostgresQuery) async throws -> Int {
        try await ServerRunner.withDatabase(url, logger: logger, waitLimit: setupWaitLimit) { client in
            var value = 0
            for try await n in try await client.query(query, logger: logger).decode(Int.self) { value = n }
            return value
        }
    }
}
