import DrydockWireFormats
import Foundation
import Testing

/// AWS Signature Version 4 against the examples AWS publishes: the S3 signing examples
/// ("Signature Calculations for the Authorization Header", "Query String Authentication") and
/// the general SigV4 test suite's get-vanilla.
@Suite("Unit: SigV4 signing")
struct SigV4Tests {
    static let s3 = SigV4(accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
    static let may2013 = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    static let host = ("host", "examplebucket.s3.amazonaws.com")

    static func signature(_ headers: [(String, String)]) -> String? {
        headers.first { $0.0 == "authorization" }?.1.components(separatedBy: "Signature=").last
    }

    struct Example: Sendable, CustomTestStringConvertible {
        let name: String
        let method: String
        let path: String
        let query: [(String, String)]
        let headers: [(String, String)]
        let payload: String
        let signature: String
        var testDescription: String { name }
    }

    static let examples: [Example] = [
        Example(name: "GET object with a range", method: "GET", path: "/test.txt", query: [],
                headers: [host, ("range", "bytes=0-9")], payload: SigV4.emptyPayload,
                signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        Example(name: "PUT object with a storage class, key with $", method: "PUT", path: "/test%24file.text", query: [],
                headers: [("date", "Fri, 24 May 2013 00:00:00 GMT"), host, ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                payload: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
        Example(name: "GET bucket lifecycle (a parameter without value)", method: "GET", path: "/", query: [("lifecycle", "")],
                headers: [host], payload: SigV4.emptyPayload,
                signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        Example(name: "list objects (parameters sorted)", method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                headers: [host], payload: SigV4.emptyPayload,
                signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ]

    @Test("S3's published Authorization header examples", arguments: examples)
    func s3Examples(_ example: Example) {
        let added = Self.s3.sign(method: example.method, path: example.path, query: example.query, headers: example.headers,
                                 payloadHash: example.payload, date: Self.may2013)
        #expect(Self.signature(added) == example.signature)
        #expect(added.contains { $0 == ("x-amz-date", "20130524T000000Z") })
        #expect(added.contains { $0.0 == "authorization" && $0.1.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=") })
    }

    @Test("S3's published presigned URL example")
    func presigned() {
        let query = Self.s3.presignedQuery(method: "GET", path: "/test.txt", host: "examplebucket.s3.amazonaws.com", expires: 86_400, date: Self.may2013)
        #expect(query.hasSuffix("&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"), "\(query)")
        #expect(query.contains("X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"))
    }

    @Test("the SigV4 test suite's get-vanilla (service 'service', no payload header)")
    func getVanilla() {
        let signer = SigV4(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "us-east-1", service: "service")
        let added = signer.sign(method: "GET", path: "/", headers: [("Host", "example.amazonaws.com")], payloadHash: SigV4.emptyPayload,
                                date: Date(timeIntervalSince1970: 1_440_938_160))  // 2015-08-30T12:36:00Z
        #expect(Self.signature(added) == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(added.first { $0.0 == "authorization" }?.1.contains("SignedHeaders=host;x-amz-date,") == true)
    }

    @Test("encoding: unreserved characters kept, everything else %XX, spaces in header values collapsed")
    func encoding() {
        #expect(SigV4.encode("a-b_c.d~e f/g+h=") == "a-b_c.d~e%20f%2Fg%2Bh%3D")
        #expect(SigV4.encode("é") == "%C3%A9")
    }
}
