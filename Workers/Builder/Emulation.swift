import DrydockClient
import Foundation
import Logging

/// Running other architectures' programs through qemu-user-static and binfmt_misc: what a
/// builder advertises as emulated only after it checked the kernel would run them.
enum Emulation {
    static let binfmt = "/proc/sys/fs/binfmt_misc"

    /// The platforms of `wanted` this machine can run emulated now, registering binfmt handlers
    /// from Debian's qemu-user-static when it may (as root); each refusal is logged with why.
    static func usable(_ wanted: [Platform], logger: Logger) -> [Platform] {
        guard !wanted.isEmpty else { return [] }
        if !FileManager.default.fileExists(atPath: binfmt + "/register"), geteuid() == 0 {
            // Mounting it is what systemd's binfmt service does at boot.
            mount("binfmt_misc", binfmt, "binfmt_misc", 0, nil)
        }
        var usable: [Platform] = []
        for platform in wanted {
            if let problem = check(platform) {
                logger.error("cannot run \(platform) emulated; not offering it", metadata: ["why": "\(problem)"])
            } else {
                usable.append(platform)
            }
        }
        return usable
    }

    /// nil when the kernel runs this platform's binaries through qemu; else why not.
    static func check(_ platform: Platform) -> String? {
        let handler = "\(binfmt)/qemu-\(platform.qemuName)"
        if !FileManager.default.fileExists(atPath: handler) {
            guard FileManager.default.fileExists(atPath: binfmt + "/register") else {
                return "binfmt_misc is not mounted at \(binfmt) (mount it as root: mount -t binfmt_misc binfmt_misc \(binfmt))"
            }
            let conf = "/usr/lib/binfmt.d/qemu-\(platform.qemuName).conf"
            guard let line = try? String(contentsOfFile: conf, encoding: .utf8).split(separator: "\n").first(where: { $0.hasPrefix(":") }) else {
                return "no binfmt handler qemu-\(platform.qemuName) and no \(conf): install qemu-user-static (apt-get install qemu-user-static)"
            }
            guard geteuid() == 0, let register = FileHandle(forWritingAtPath: binfmt + "/register") else {
                return "the binfmt handler qemu-\(platform.qemuName) is not registered, and registering it needs root"
            }
            register.write(Data(line.utf8))
            try? register.close()
        }
        guard let status = try? String(contentsOfFile: handler, encoding: .utf8) else { return "cannot read \(handler)" }
        guard status.hasPrefix("enabled") else { return "the binfmt handler qemu-\(platform.qemuName) is disabled" }
        if let interpreter = status.split(separator: "\n").first(where: { $0.hasPrefix("interpreter ") })?.dropFirst("interpreter ".count),
           !FileManager.default.isExecutableFile(atPath: String(interpreter)) {
            return "the handler's interpreter \(interpreter) is missing: install qemu-user-static"
        }
        return nil
    }
}
