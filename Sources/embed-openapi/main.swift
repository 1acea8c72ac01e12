import Foundation

// Usage: embed-openapi INPUT OUTPUT. Writes a Swift file holding INPUT base64-encoded
// (a string literal compiles fast and needs no escaping).
let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: embed-openapi INPUT OUTPUT\n".utf8))
    exit(2)
}
let data = try Data(contentsOf: URL(fileURLWithPath: arguments[1]).resolvingSymlinksInPath())
let swift = """
    // Generated from openapi.yaml by the EmbedOpenAPIDocument plugin. Do not edit.
    import Foundation

    enum EmbeddedOpenAPIDocument {
        static let bytes: [UInt8] = Array(Data(base64Encoded: base64)!)
        private static let base64 = "\(data.base64EncodedString())"
    }

    """
try Data(swift.utf8).write(to: URL(fileURLWithPath: arguments[2]), options: .atomic)
