import Crypto
import DrydockAPITypes
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /downloads/…`: the CLI of this very server, so a CI job installs the exact matching
/// version from the server it talks to (`curl -fsSL $SERVER/downloads/install.sh | sh`). No token:
/// the CLI is no secret. Files come from `DRYDOCK_DOWNLOADS_DIR`, else from beside the running
/// `drydock-server` (where `drydock` is installed with it): `drydock-linux-<arch>` there, or
/// `drydock` itself for this machine's architecture.
struct Downloads: Sendable {
    let directory: URL
    let fileIO = FileIO()
    private let sums = ChecksumCache()

    static let architectures = ["amd64", "arm64"]

    init(configured: URL?) {
        if let configured {
            directory = configured
        } else {
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")).map(URL.init(fileURLWithPath:))
                ?? URL(fileURLWithPath: CommandLine.arguments.first ?? ".")
            directory = exe.deletingLastPathComponent()
        }
    }

    /// The file behind a download name, if this server has it.
    func file(_ name: String) -> URL? {
        guard name.hasPrefix("drydock-linux-"), Self.architectures.contains(String(name.dropFirst("drydock-linux-".count))) else { return nil }
        let explicit = directory.appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: explicit.path) { return explicit }
        if name == "drydock-linux-\(Platform.host.architecture)" {
            let own = directory.appendingPathComponent("drydock")
            if FileManager.default.isExecutableFile(atPath: own.path) { return own }
        }
        return nil
    }

    var available: [String] { Self.architectures.map { "drydock-linux-\($0)" }.filter { file($0) != nil } }

    func register(on router: Router<some RequestContext>) {
        router.get("/downloads") { _, _ in try await index() }
        router.get("/downloads/install.sh") { request, _ in
            let base = "\(request.head.scheme ?? "http")://\(request.head.authority ?? "127.0.0.1")"
            return Response(status: .ok, headers: [.contentType: "text/x-shellscript; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: Self.installScript(base: base))))
        }
        router.get("/downloads/{name}") { request, context -> Response in
            let requested = context.parameters.get("name") ?? ""
            let isChecksum = requested.hasSuffix(".sha256")
            let name = isChecksum ? String(requested.dropLast(".sha256".count)) : requested
            guard let file = file(name) else {
                let offered = available.isEmpty ? "none (install drydock beside drydock-server, or set DRYDOCK_DOWNLOADS_DIR)" : available.joined(separator: ", ")
                return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: "no download '\(requested)' on this server; it offers: \(offered)\n")))
            }
            let sum = try await sums.sha256(of: file)
            if isChecksum {
                return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: "\(sum)  \(name)\n")))
            }
            let size = (try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.intValue ?? 0
            var headers: HTTPFields = [.contentType: "application/octet-stream", .contentLength: "\(size)",
                                       .contentDisposition: "attachment; filename=\"\(name)\""]
            headers[HTTPField.Name("X-Checksum-Sha256")!] = sum
            if request.method == .head { return Response(status: .ok, headers: headers, body: .init()) }
            let body = try await fileIO.loadFile(path: file.path, context: context, chunkLength: 1 << 20)
            return Response(status: .ok, headers: headers, body: body)
        }
    }

    func index() async throws -> Response {
        var lines = ["Drydock CLI downloads (this server's own version):", ""]
        for name in available { lines.append("  /downloads/\(name)   (/downloads/\(name).sha256)") }
        if available.isEmpty { lines.append("  none: install drydock beside drydock-server, or set DRYDOCK_DOWNLOADS_DIR") }
        lines += ["", "Install: curl -fsSL <server>/downloads/install.sh | sh", ""]
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: lines.joined(separator: "\n"))))
    }

    static func installScript(base: String) -> String {
        """
        #!/bin/sh
        # Installs the drydock CLI from \(base), checked against its SHA-256, with its
        # docker-credential-drydock link. DRYDOCK_INSTALL_DIR chooses where (default /usr/local/bin
        # when writable, else ~/.local/bin).
        set -eu
        server="${DRYDOCK_API_URL:-\(base)}"
        case "$(uname -m)" in
            x86_64|amd64) arch=amd64 ;;
            aarch64|arm64) arch=arm64 ;;
            *) echo "drydock: no build for $(uname -m)" >&2; exit 1 ;;
        esac
        dir="${DRYDOCK_INSTALL_DIR:-}"
        if [ -z "$dir" ]; then
            if [ -w /usr/local/bin ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
        fi
        mkdir -p "$dir"
        tmp="$(mktemp "$dir/.drydock.XXXXXX")"
        trap 'rm -f "$tmp"' EXIT
        curl -fsSL "$server/downloads/drydock-linux-$arch" -o "$tmp"
        want="$(curl -fsSL "$server/downloads/drydock-linux-$arch.sha256" | cut -d' ' -f1)"
        got="$(sha256sum "$tmp" | cut -d' ' -f1)"
        if [ "$want" != "$got" ]; then echo "drydock: checksum mismatch ($got, expected $want)" >&2; exit 1; fi
        chmod 755 "$tmp"
        mv "$tmp" "$dir/drydock"
        trap - EXIT
        ln -sf drydock "$dir/docker-credential-drydock"
        echo "drydock installed in $dir ($("$dir/drydock" --version))"
        case ":$PATH:" in *":$dir:"*) ;; *) echo "add $dir to PATH" ;; esac

        """
    }
}

/// SHA-256 of served files, computed once per file version (path, size, modification time).
final class ChecksumCache: @unchecked Sendable {
    private let lock = NSLock()
    private var sums: [String: (key: String, sum: String)] = [:]

    func sha256(of file: URL) async throws -> String {
        let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
        let key = "\(attributes[.size] ?? 0)-\((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        if let known = lock.withLock({ sums[file.path] }), known.key == key { return known.sum }
        let sum = try await Task.detached {
            let handle = try FileHandle(forReadingFrom: file)
            defer { try? handle.close() }
            var hasher = SHA256()
            while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
            return hasher.finalize().map { String(format: "%02x", $0) }.joined()
        }.value
        lock.withLock { sums[file.path] = (key, sum) }
        return sum
    }
}
