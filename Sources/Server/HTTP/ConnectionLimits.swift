import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// What keeps connections from taking the server down: a cap on open connections (new ones wait
/// in the kernel's backlog while the cap is reached, so descriptors never run out), a time limit
/// for a request's headers (slow-header clients are dropped), and the idle keep-alive timeout
/// (Hummingbird's own, configured alongside).
enum ConnectionLimits {
    /// Raises the soft limit on open descriptors to the hard limit; returns the soft limit now in
    /// force. Run once at start-up: the default soft limit of 1024 is far below what a busy
    /// registry needs, and the hard limit is what the operator granted.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return currentDescriptorLimit()
    }

    /// The soft limit on open descriptors in force (1024 if it cannot be read).
    static func currentDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)
    }

    /// The default cap for a descriptor limit: a connection can hold two descriptors at once (its
    /// socket and a blob file), and 128 stay for PostgreSQL, logs and child processes.
    static func defaultMaxConnections(descriptorLimit: Int) -> Int {
        min(10_000, max(16, (descriptorLimit - 128) / 2))
    }
}

/// Counts open connections and stops accepting at the cap; says so once each time it is reached.
struct ConnectionCap: AvailableConnectionsDelegate {
    let maxConnections: Int
    let logger: Logger
    var open = 0
    var saturated = false

    init(maxConnections: Int, logger: Logger) {
        self.maxConnections = maxConnections
        self.logger = logger
    }

    mutating func connectionOpened() {
        open += 1
        if open >= maxConnections, !saturated {
            saturated = true
            logger.warning("connection limit reached: new connections wait until some close", metadata: [
                "open": "\(open)", "limit": "\(maxConnections)", "setting": "DRYDOCK_MAX_CONNECTIONS",
            ])
        }
    }

    mutating func connectionClosed() {
        open -= 1
        if saturated, open <= maxConnections / 2 {
            saturated = false
            logger.info("connections below the limit again", metadata: ["open": "\(open)", "limit": "\(maxConnections)"])
        }
    }

    func isAcceptingNewConnections() -> Bool { open < maxConnections }
}

/// Closes a connection whose first request's headers have not all arrived within `timeout`
/// (slowloris). Later requests on a kept-alive connection are bounded by the idle timeout, which
/// counts from the last response until the next request's headers are complete. Once the first
/// headers are in, it leaves the pipeline: the requests after it pay nothing for it.
final class RequestHeadTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let timeout: TimeAmount
    var timer: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let isHead = if case .head = unwrapInboundIn(data) { true } else { false }
        context.fireChannelRead(data)
        if isHead, let timer {
            timer.cancel()
            self.timer = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}
