// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "drydock",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "drydock-server", targets: ["drydock-server"]),
        .executable(name: "drydock", targets: ["drydock"]),
        .executable(name: "drydock-builder", targets: ["drydock-builder"]),
        .executable(name: "drydock-agent", targets: ["drydock-agent"]),
        .library(name: "DrydockClient", targets: ["DrydockClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-openapi-generator.git", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // Types generated from openapi.yaml, shared by the server and the client.
        .target(
            name: "DrydockAPITypes",
            dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")],
            path: "Sources/APITypes",
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // Parsers for what clients send (headers, names, digests, forms): no I/O, never trap;
        // the fuzz targets in Fuzz/ drive them.
        .target(
            name: "DrydockWireFormats",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/WireFormats"
        ),
        // The one way to run a child process (server, builder, CLI and tests), over swift-subprocess.
        .target(
            name: "DrydockProcess",
            dependencies: [
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Sources/Process"
        ),
        .target(
            name: "DrydockServer",
            dependencies: [
                "DrydockAPITypes",
                "DrydockProcess",
                "DrydockWireFormats",
                "DrydockBuildContext",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            path: "Sources/Server",
            plugins: [
                .plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator"),
                "EmbedOpenAPIDocument",
            ]
        ),
        .executableTarget(name: "embed-openapi", path: "Sources/embed-openapi"),
        .plugin(
            name: "EmbedOpenAPIDocument",
            capability: .buildTool(),
            dependencies: ["embed-openapi"],
            path: "Plugins/EmbedOpenAPIDocument"
        ),
        // drydock-server's commands (serve and the operator commands), one file each.
        .target(
            name: "DrydockServerCommands",
            dependencies: [
                "DrydockServer",
                "DrydockProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/ServerCommands"
        ),
        .executableTarget(
            name: "drydock-server",
            dependencies: ["DrydockServerCommands"],
            path: "Sources/drydock-server"
        ),
        .target(
            name: "DrydockClient",
            dependencies: [
                "DrydockAPITypes",
                "DrydockWireFormats",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIAsyncHTTPClient", package: "swift-openapi-async-http-client"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/Client",
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // Build contexts: .dockerignore, packing, safe unpacking. Shared by the CLI and the workers.
        .target(
            name: "DrydockBuildContext",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/BuildContext"
        ),
        // drydock bake: an HCL parser and evaluator, bake files (HCL, JSON, compose) resolved into targets. No I/O but reading files.
        .target(
            name: "DrydockBake",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Sources/Bake"
        ),
        .target(
            name: "DrydockBuilder",
            dependencies: [
                "DrydockClient",
                "DrydockProcess",
                "DrydockWireFormats",
                "DrydockBuildContext",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Workers/Builder"
        ),
        .executableTarget(
            name: "drydock-builder",
            dependencies: [
                "DrydockBuilder",
                "DrydockProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Workers/drydock-builder"
        ),
        // drydock-agent: starts builders on demand (process, command or podman launcher).
        .target(
            name: "DrydockAgent",
            dependencies: [
                "DrydockClient",
                "DrydockProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Workers/Agent"
        ),
        .executableTarget(
            name: "drydock-agent",
            dependencies: [
                "DrydockAgent",
                "DrydockProcess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Workers/drydock-agent"
        ),
        .target(
            name: "DrydockCLI",
            dependencies: [
                "DrydockClient",
                "DrydockProcess",
                "DrydockBuildContext",
                "DrydockWireFormats",
                "DrydockBake",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            path: "Sources/CLI"
        ),
        .executableTarget(
            name: "drydock",
            dependencies: ["DrydockCLI"],
            path: "Sources/drydock"
        ),
        // Pure logic: runs in seconds with no PostgreSQL, buildah or network (`swift test --filter Unit`).
        .testTarget(
            name: "DrydockUnitTests",
            dependencies: ["DrydockWireFormats", "DrydockServer", "DrydockBuildContext", "DrydockBuilder", "DrydockProcess", "DrydockAgent", "DrydockBake"],
            path: "Tests/UnitTests"
        ),
        .testTarget(
            name: "DrydockTests",
            dependencies: [
                "DrydockServer",
                "DrydockClient",
                "DrydockCLI",
                "DrydockBuilder",
                "DrydockAgent",
                "DrydockBuildContext",
                "DrydockWireFormats",
                "DrydockProcess",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            path: "Tests/DrydockTests"
        ),
    ]
)
