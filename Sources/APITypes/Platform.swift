/// A platform, `os/architecture[/variant]`, normalised the way buildah and registries name it.
/// One value shared by the server (build requests, claims), the client, the CLI and the workers;
/// it becomes text only at the edges (the API's strings, the database, buildah's flags).
public struct Platform: Hashable, Sendable, CustomStringConvertible {
    public let os: String
    public let architecture: String
    public let variant: String?

    static let architectures: [String: String] = [
        "amd64": "amd64", "x86_64": "amd64", "x86-64": "amd64",
        "arm64": "arm64", "aarch64": "arm64",
        "arm": "arm", "armhf": "arm", "armel": "arm", "armv7": "arm", "armv7l": "arm", "armv6": "arm", "armv6l": "arm",
        "386": "386", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    ]

    /// What builds may target: the platforms of the original description.
    public static let supported: [Platform] = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386"].compactMap { Platform($0) }

    public var isSupported: Bool { Self.supported.contains(self) }

    /// The line a refusal ends with.
    public static var supportedList: String { supported.map(\.description).joined(separator: ", ") }

    /// `amd64` → `linux/amd64`, `linux/arm64/v8` → `linux/arm64`; nil when it is not a platform.
    public init?(_ raw: some StringProtocol) {
        let parts = raw.lowercased().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        }
        let os: String, architectureName: String, variant: String?
        switch parts.count {
        case 1: (os, architectureName, variant) = ("linux", parts[0], nil)
        case 2: (os, architectureName, variant) = (parts[0], parts[1], nil)
        case 3: (os, architectureName, variant) = (parts[0], parts[1], parts[2])
        default: return nil
        }
        guard os == "linux", let architecture = Self.architectures[architectureName] else { return nil }
        self.os = os
        self.architecture = architecture
        if architecture == "arm64", variant == nil || variant == "v8" {
            self.variant = nil
        } else if architecture == "arm", variant == nil {
            // As docker: armhf and plain arm are v7, armel is v6.
            self.variant = ["armel", "armv6", "armv6l"].contains(architectureName) ? "v6" : "v7"
        } else if let variant {
            guard !variant.isEmpty, variant.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }) else { return nil }
            self.variant = variant
        } else {
            self.variant = nil
        }
    }

    public var description: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }

    /// For file names: `linux-arm-v7`.
    public var pathComponent: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "-") }

    init(os: String, architecture: String, variant: String?) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// This machine's platform.
    public static var host: Platform {
        #if arch(x86_64)
        Platform(os: "linux", architecture: "amd64", variant: nil)
        #elseif arch(arm64)
        Platform(os: "linux", architecture: "arm64", variant: nil)
        #else
        Platform(os: "linux", architecture: "386", variant: nil)
        #endif
    }

    /// What this machine runs natively: its own platform, and 386 on amd64 (as docker has it).
    public static var hostNative: [Platform] {
        let host = Platform.host
        return host.architecture == "amd64" ? [host, Platform(os: "linux", architecture: "386", variant: nil)] : [host]
    }

    /// The name of the binfmt_misc handler (and of qemu's user-mode binary) that runs this
    /// platform's programs: `aarch64`, `arm`, `i386`, `x86_64`.
    public var qemuName: String {
        switch architecture {
        case "amd64": "x86_64"
        case "arm64": "aarch64"
        case "386": "i386"
        default: architecture
        }
    }
}

/// Stored and sent as its text, `linux/arm/v7`.
extension Platform: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let platform = Platform(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not a platform"))
        }
        self = platform
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
