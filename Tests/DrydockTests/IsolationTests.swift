import DrydockClient
import Foundation
import Testing

/// A TCP listener on the builder host's loopback, as a service a build must not reach.
final class LoopbackListener: Sendable {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            port = 0
            throw CLITestError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        // Answer and hang up, so a client that got through says so and exits.
        Thread.detachNewThread {
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 { return }
                _ = "hello from the builder host\n".withCString { write(connection, $0, strlen($0)) }
                close(connection)
            }
        }
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

@Suite("Builds isolated from the builder host")
struct IsolationTests {
    @Test("with OCI isolation a RUN step sees only its own processes and cannot reach the builder's 127.0.0.1; with chroot it could")
    func ociIsolation() async throws {
        try await withTestServer { server in
            try await withTemporaryDirectory { dir in
                let fixture = try await BuildFixture.make(server, project: "isolated")
                let token = try await workerToken(server)
                let listener = try LoopbackListener()
                let dockerfile = """
                    FROM \(fixture.base)
                    RUN echo "processes: $(ls /proc | grep -cE '^[0-9]+$')"; echo "init: $(tr '\\0' ' ' </proc/1/cmdline)"; \
                        if nc -w 2 127.0.0.1 \(listener.port) </dev/null; then echo "loopback: REACHED"; else echo "loopback: UNREACHABLE"; fi

                    """
                func run(_ isolation: String) async throws -> String {
                    let builder = try await BuilderProcess(server: server, token: token, cache: dir.appendingPathComponent("cache-\(isolation)"),
                                                           name: isolation, environment: ["DRYDOCK_BUILDER_ISOLATION": isolation])
                    defer { Task { await builder.stop() } }
                    let build = try await fixture.finished(try await fixture.queue(["Dockerfile": dockerfile]) { .init(contextDigest: $0, noCache: true) }.id)
                    #expect(build.status == .succeeded, "\(build.error ?? "") \(builder.output)")
                    let log = try await fixture.logText(build.id)
                    await builder.stop()
                    #expect(builder.output.contains("isolation=\(isolation)"), "\(builder.output)")
                    return log
                }
                let oci = try await run("oci")
                #expect(oci.contains("loopback: UNREACHABLE"), "\(oci)")
                let processes = oci.split(separator: "\n").first { $0.hasPrefix("processes: ") }.flatMap { Int($0.dropFirst("processes: ".count)) }
                #expect((processes ?? 99) <= 5, "a RUN step saw other processes: \(oci)")
                #expect(oci.contains("init: /bin/sh -c"), "PID 1 is not the step's own shell: \(oci)")
                // The same build with chroot isolation reaches the host's loopback and sees its processes.
                let chroot = try await run("chroot")
                #expect(chroot.contains("loopback: REACHED"), "\(chroot)")
                #expect(!chroot.contains("init: /bin/sh -c"), "\(chroot)")
            }
        }
    }
}
