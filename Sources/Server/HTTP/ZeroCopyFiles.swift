import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOPosix

/// Zero-copy file answers: a route answers with `ZeroCopyFiles.response(...)` (its headers, the
/// file named in an internal header, no body) and the handler below the HTTP/1 encoder sends the
/// file's bytes as a `FileRegion`, so the kernel moves them from the page cache to the socket
/// (`sendfile`) without a copy through the server. Hummingbird's body writer takes only byte
/// buffers, hence the handler at the NIO level.
enum ZeroCopyFiles {
    /// Internal header naming `offset:length:path`; never leaves the server.
    static let header = HTTPField.Name("x-drydock-zero-copy")!
    static let header1 = "x-drydock-zero-copy"

    /// The value for a range of a file.
    static func value(path: String, offset: Int64, length: Int64) -> String { "\(offset):\(length):\(path)" }

    /// What to add to the HTTP server's channel handlers: installs `Sender` beside the encoder.
    static func installer() -> any RemovableChannelHandler { Installer() }

    final class Installer: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny

        func handlerAdded(context: ChannelHandlerContext) {
            let pipeline = context.pipeline.syncOperations
            if let encoder = try? pipeline.handler(type: HTTPResponseEncoder.self) {
                try? pipeline.addHandler(Sender(), position: .after(encoder))
            }
            pipeline.removeHandler(context: context, promise: nil)
        }
    }

    /// Sees the HTTP/1 response parts on their way to the encoder; replaces the empty body of an
    /// answer marked with the internal header by the file's region.
    final class Sender: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = HTTPServerResponsePart
        typealias OutboundOut = HTTPServerResponsePart

        private var pending: (path: String, offset: Int64, length: Int64)?

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            switch unwrapOutboundIn(data) {
            case .head(var head):
                if let marked = head.headers.first(name: ZeroCopyFiles.header1) {
                    head.headers.remove(name: ZeroCopyFiles.header1)
                    let parts = marked.split(separator: ":", maxSplits: 2)
                    if parts.count == 3, let offset = Int64(parts[0]), let length = Int64(parts[1]) {
                        pending = (String(parts[2]), offset, length)
                    }
                    context.write(wrapOutboundOut(.head(head)), promise: promise)
                } else {
                    context.write(data, promise: promise)
                }
            case .end(let trailers):
                guard let file = pending else {
                    context.write(data, promise: promise)
                    return
                }
                pending = nil
                do {
                    let handle = try NIOFileHandle(_deprecatedPath: file.path)
                    let region = FileRegion(fileHandle: handle, readerIndex: Int(file.offset), endIndex: Int(file.offset + file.length))
                    let sent = context.eventLoop.makePromise(of: Void.self)
                    sent.futureResult.whenComplete { _ in try? handle.close() }
                    context.write(wrapOutboundOut(.body(.fileRegion(region))), promise: sent)
                    context.write(wrapOutboundOut(.end(trailers)), promise: promise)
                } catch {
                    // The file went between the answer and its body (collected): the head promised
                    // bytes that cannot come, so the connection is closed rather than left short.
                    promise?.fail(error)
                    context.close(promise: nil)
                }
            case .body:
                context.write(data, promise: promise)
            }
        }
    }
}
