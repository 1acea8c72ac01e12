import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Object GETs on channels of Drydock's own, for the one job where AsyncHTTPClient costs too much:
/// streaming blobs from the store to a client. AsyncHTTPClient's channels read at most 64 KiB per
/// system call (NIO's default receive allocator, with no setting to change it), so a pull made
/// ~16x the reads of the Go reference and spent ~1.7x its CPU per byte. These channels read up to
/// 1 MiB at once, only as fast as the consumer takes the bytes (reads stop while it is behind:
/// memory stays bounded), and are kept for reuse when the store keeps the connection alive.
final class S3Downloads: Sendable {
    static let shared = S3Downloads()

    /// The most bytes one read from the socket returns.
    static let maximumRead = 1 << 20
    /// Idle connections kept per endpoint, and how long one is kept.
    static let idleLimit = 16
    static let idleTimeout: TimeAmount = .seconds(30)

    typealias Body = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDemand
    >

    struct Response: Sendable {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: Body
    }

    struct Endpoint: Hashable, Sendable {
        let host: String
        let port: Int
        let tls: TLS?

        /// Connections are pooled by what they trust, not by the context object.
        struct TLS: Hashable, Sendable {
            let context: NIOSSLContext
            let trust: String?
            static func == (a: TLS, b: TLS) -> Bool { a.trust == b.trust }
            func hash(into hasher: inout Hasher) { hasher.combine(trust) }
        }
    }

    private struct Idle {
        let channel: any Channel
        let handler: NIOLoopBound<ResponseHandler>
        let since: NIODeadline
    }

    private let idle = NIOLockedValueBox<[Endpoint: [Idle]]>([:])
    private let group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton

    /// Sends `head` (a GET or HEAD without a body) and returns once the answer's head has arrived;
    /// its body follows as the caller reads it. A reused connection that turns out to be closed
    /// is replaced by a new one, once.
    func execute(_ head: HTTPRequestHead, on endpoint: Endpoint, timeout: TimeAmount) async throws -> Response {
        if let reused = takeIdle(endpoint) {
            do {
                return try await send(head, on: reused.channel, handler: reused.handler, endpoint: endpoint, timeout: timeout)
            } catch is NothingReceived {
                // The store closed it while it was idle: a fresh connection below.
            }
        }
        let (channel, handler) = try await connect(endpoint)
        do {
            return try await send(head, on: channel, handler: handler, endpoint: endpoint, timeout: timeout)
        } catch let failure as NothingReceived {
            throw failure.underlying ?? S3Failure(status: 0, code: "", message: "the store closed the connection before answering")
        }
    }

    /// A failure on a connection before any byte of the answer came back: on a reused connection,
    /// most likely one the store had closed while it was idle.
    private struct NothingReceived: Error {
        var underlying: S3Failure?
    }

    private func send(_ head: HTTPRequestHead, on channel: any Channel, handler: NIOLoopBound<ResponseHandler>,
                      endpoint: Endpoint, timeout: TimeAmount) async throws -> Response {
        let promise = channel.eventLoop.makePromise(of: Response.self)
        channel.eventLoop.execute {
            handler.value.start(head, promise: promise, timeout: timeout) { [weak self] keepAlive in
                guard keepAlive, let self else { channel.close(promise: nil); return }
                // A read left pending while idle lets the channel see the store close it (and
                // release its socket) instead of finding out at the next request.
                channel.read()
                self.putIdle(endpoint, Idle(channel: channel, handler: handler, since: .now()))
            }
        }
        return try await promise.futureResult.get()
    }

    private func connect(_ endpoint: Endpoint) async throws -> (any Channel, NIOLoopBound<ResponseHandler>) {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelOption(.autoRead, value: false)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 4096, initial: 1 << 16, maximum: Self.maximumRead))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            throw S3Failure(status: 0, code: "", message: "cannot connect to \(endpoint.host):\(endpoint.port): \(error)")
        }
        do {
            return try await channel.eventLoop.submit {
                let pipeline = channel.pipeline.syncOperations
                if let tls = endpoint.tls {
                    // Server names are sent (and checked) for host names; an IP address has none.
                    let isAddress = (try? SocketAddress(ipAddress: endpoint.host, port: 0)) != nil
                    try pipeline.addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: isAddress ? nil : endpoint.host))
                }
                try pipeline.addHTTPClientHandlers()
                let handler = ResponseHandler()
                try pipeline.addHandler(handler)
                return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
            }.get()
        } catch {
            channel.close(promise: nil)
            throw S3Failure(status: 0, code: "", message: "cannot set up a connection to \(endpoint.host):\(endpoint.port): \(error)")
        }
    }

    private func takeIdle(_ endpoint: Endpoint) -> Idle? {
        let now = NIODeadline.now()
        var stale: [any Channel] = []
        let found: Idle? = idle.withLockedValue { idle in
            while let last = idle[endpoint]?.popLast() {
                if now - last.since < Self.idleTimeout && last.channel.isActive { return last }
                stale.append(last.channel)
            }
            return nil
        }
        for channel in stale { channel.close(promise: nil) }
        return found
    }

    private func putIdle(_ endpoint: Endpoint, _ entry: Idle) {
        let kept = idle.withLockedValue { idle in
            guard idle[endpoint, default: []].count < Self.idleLimit else { return false }
            idle[endpoint, default: []].append(entry)
            return true
        }
        if !kept { entry.channel.close(promise: nil) }
    }

    /// Tells the connection's handler, on its event loop, that the consumer wants more or is gone.
    struct BodyDemand: NIOAsyncSequenceProducerDelegate {
        let handler: NIOLoopBound<ResponseHandler>
        let generation: Int

        func produceMore() {
            let handler = self.handler, generation = self.generation
            handler.eventLoop.execute { handler.value.produceMore(generation) }
        }

        func didTerminate() {
            let handler = self.handler, generation = self.generation
            handler.eventLoop.execute { handler.value.consumerGone(generation) }
        }
    }

    /// One request at a time on a connection: the answer's head completes the request's promise,
    /// its body goes to the consumer's sequence, and a read is asked of the socket only while the
    /// consumer wants more.
    final class ResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        private var context: ChannelHandlerContext?
        private var promise: EventLoopPromise<Response>?
        private var source: Body.Source?
        private var done: ((Bool) -> Void)?
        private var keepAlive = false
        private var wantsMore = false
        private var receivedAny = false
        private var generation = 0
        private var timeout: TimeAmount = .seconds(120)
        private var lastProgress = NIODeadline.now()
        private var timer: Scheduled<Void>?

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }
        func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

        func start(_ head: HTTPRequestHead, promise: EventLoopPromise<Response>, timeout: TimeAmount,
                   done: @escaping (Bool) -> Void) {
            guard let context, context.channel.isActive else {
                promise.fail(NothingReceived())
                return
            }
            generation += 1
            self.promise = promise
            self.done = done
            self.timeout = timeout
            receivedAny = false
            wantsMore = true
            lastProgress = .now()
            armTimer(context)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            context.read()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            receivedAny = true
            lastProgress = .now()
            switch unwrapInboundIn(data) {
            case .head(let head):
                guard let promise else { return }
                self.promise = nil
                keepAlive = head.isKeepAlive
                let sequence = Body.makeSequence(
                    backPressureStrategy: .init(lowWatermark: 2, highWatermark: 4), finishOnDeinit: true,
                    delegate: BodyDemand(handler: NIOLoopBound(self, eventLoop: context.eventLoop), generation: generation))
                source = sequence.source
                promise.succeed(Response(status: head.status, headers: head.headers, body: sequence.sequence))
            case .body(let bytes):
                if source?.yield(bytes) == .stopProducing { wantsMore = false }
            case .end:
                // The connection is back in the pool before the consumer learns the body ended, so
                // its next request finds it.
                let source = self.source
                self.source = nil
                finish(keepAlive: keepAlive)
                source?.finish()
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            if wantsMore && (promise != nil || source != nil) { context.read() }
        }

        func produceMore(_ generation: Int) {
            guard generation == self.generation, source != nil, let context else { return }
            lastProgress = .now()
            if !wantsMore {
                wantsMore = true
                context.read()
            }
        }

        /// The consumer stopped reading before the end: the rest of the body is never read, so the
        /// connection cannot be reused.
        func consumerGone(_ generation: Int) {
            guard generation == self.generation, source != nil else { return }
            source = nil
            finish(keepAlive: false)
        }

        func channelInactive(context: ChannelHandlerContext) {
            fail(S3Failure(status: 0, code: "", message: receivedAny ? "the store closed the connection mid-answer" : "the store closed the connection before answering"))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            var message = "\(error)"
            if let parse = error as? HTTPParserError, parse == .invalidEOFState {
                // The decoder saw the connection end inside an answer.
                message = receivedAny ? "the store closed the connection mid-answer" : "the store closed the connection before answering"
            } else if message.contains("CERTIFICATE_VERIFY_FAILED") {
                message = "the store's TLS certificate is not trusted (CERTIFICATE_VERIFY_FAILED); a store whose certificate a private CA signed needs AWS_CA_BUNDLE set to that CA's PEM file"
            }
            fail(S3Failure(status: 0, code: "", message: message))
            context.close(promise: nil)
        }

        private func fail(_ error: S3Failure) {
            if let promise {
                self.promise = nil
                promise.fail(receivedAny ? error : NothingReceived(underlying: error))
            }
            if let source {
                self.source = nil
                source.finish(error)
            }
            finish(keepAlive: false)
        }

        private func finish(keepAlive: Bool) {
            timer?.cancel()
            timer = nil
            wantsMore = false
            if let done {
                self.done = nil
                done(keepAlive)
            }
        }

        /// Fails the request when the store sends nothing for `timeout` while the consumer waits.
        private func armTimer(_ context: ChannelHandlerContext) {
            timer?.cancel()
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let generation = self.generation
            timer = context.eventLoop.scheduleTask(in: .seconds(5)) {
                let handler = loopBound.value
                guard handler.generation == generation, handler.done != nil, let context = handler.context else { return }
                if handler.wantsMore && .now() - handler.lastProgress > handler.timeout {
                    handler.fail(S3Failure(status: 0, code: "RequestTimeout", message: "the store sent nothing for \(handler.timeout.nanoseconds / 1_000_000_000) s"))
                    context.close(promise: nil)
                } else {
                    handler.armTimer(context)
                }
            }
        }
    }
}
