import HTTPTypes
import Hummingbird
import NIOCore
import OpenAPIRuntime

/// Puts the generated handlers on the Hummingbird router, as swift-openapi-hummingbird does, with
/// one difference that matters for every small answer: a response body whose length is known and
/// small is collected and handed to Hummingbird as one `ByteBuffer`. Hummingbird then writes head,
/// body and end in one batched write (one syscall), where a streamed body costs three writes and
/// three flushes. Bodies of unknown length (followed logs) or large ones (build contexts) still
/// stream, so nothing large is held in memory.
struct RouterTransport<Context: RequestContext>: ServerTransport {
    /// Answers up to this size are sent in one write.
    static var bufferedResponseLimit: Int { 256 * 1024 }

    let router: Router<Context>
    /// Where each registered path and method is recorded, for 405 answers.
    var routes: RouteTable? = nil

    /// Long-polls whose handler is canceled when the client goes away: a builder or agent that
    /// stopped while waiting must not be handed a job or a builder to start (it would sit
    /// unconfirmed until its short first lease ran out). Such a connection serves one request.
    static var cancelOnClientClose: Set<String> { ["/api/v1/workers/claim", "/api/v1/agents/poll"] }

    func register(
        _ handler: @escaping @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?),
        method: HTTPRequest.Method,
        path: String
    ) throws {
        routes?.add(path, method: method)
        let cancelOnClose = Self.cancelOnClientClose.contains(path)
        router.on(RouterPath(path), method: method) { request, context in
            // HTTP/1.1: a request with neither Content-Length nor Transfer-Encoding has no body.
            let contentLength = request.headers[.contentLength].flatMap { Int64($0) }
            let hasBody = !(contentLength == 0 || (contentLength == nil && request.headers[.transferEncoding] == nil))
            var parameters: [String: Substring] = [:]
            for (key, value) in context.parameters where parameters[String(key)] == nil {
                parameters[String(key)] = value
            }
            let metadata = ServerRequestMetadata(pathParameters: parameters)
            @Sendable func respond(_ requestBody: RequestBody) async throws -> Response {
                let body: HTTPBody? = hasBody
                    ? HTTPBody(requestBody.map { [UInt8](buffer: $0) }, length: contentLength.map { .known($0) } ?? .unknown, iterationBehavior: .single)
                    : nil
                let (head, answer) = try await handler(request.head, body, metadata)
                return Response(status: head.status, headers: head.headerFields, body: try await Self.responseBody(answer))
            }
            if cancelOnClose {
                // Hummingbird watches the connection by reading it, so it cannot be reused: the
                // answer says `Connection: close`.
                var response = try await request.body.consumeWithCancellationOnInboundClose { body in try await respond(body) }
                response.headers[.connection] = "close"
                return response
            }
            return try await respond(request.body)
        }
    }

    static func responseBody(_ body: HTTPBody?) async throws -> ResponseBody {
        guard let body else { return ResponseBody(byteBuffer: ByteBuffer()) }
        switch body.length {
        case .known(let length) where length <= bufferedResponseLimit:
            let bytes = try await [UInt8](collecting: body, upTo: Int(length))
            return ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        case .known(let length):
            let buffers = body.map { ByteBuffer(bytes: $0) }
            return ResponseBody(contentLength: Int(length)) { writer in
                for try await buffer in buffers { try await writer.write(buffer) }
                try await writer.finish(nil)
            }
        case .unknown:
            return ResponseBody(asyncSequence: body.map { ByteBuffer(bytes: $0) })
        }
    }
}
