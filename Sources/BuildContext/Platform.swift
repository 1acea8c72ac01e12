import Foundation

/// Platforms as `os/arch[/variant]`, normalised the way buildah and the registry name them.
/// Shared by the server (build requests, claims) and the workers (what they serve by default).
public enum Platform {
    /// This machine's platform (`linux/amd64`, `linux/arm64`).
    public static var host: String {
        #if arch(x86_64)
        "linux/amd64"
        #elseif arch(arm64)
        "linux/arm64"
        #else
        "linux/unknown"
        #endif
    }

    static let architectures: [String: String] = [
        "amd64": "amd64", "x86_64": "amd64", "x86-64": "amd64",
        "arm64": "arm64", "aarch64": "arm64",
        "arm": "arm", "386": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    ]

    /// `amd64` → `linux/amd64`, `linux/arm64/v8` → `linux/arm64`; nil when it is not a platform.
    public static func normalize(_ raw: String) -> String? {
        let parts = raw.lowercased().trimmingCharacters(in: .whitespaces).split(separator: "/").map(String.init)
        let (os, archRaw, variant): (String, String, String?)
        switch parts.count {
        case 1: (os, archRaw, variant) = ("linux", parts[0], nil)
        case 2: (os, archRaw, variant) = (parts[0], parts[1], nil)
        case 3: (os, archRaw, variant) = (parts[0], parts[1], parts[2])
        default: return nil
        }
        guard os == "linux", let arch = architectures[archRaw] else { return nil }
        if arch == "arm64", variant == nil || variant == "v8" { return "linux/arm64" }
        if let variant {
            guard variant.allSatisfy({ $0.isLetter || $0.isNumber }), !variant.isEmpty else { return nil }
            return "linux/\(arch)/\(variant)"
        }
        return "linux/\(arch)"
    }
}
