import DrydockBuilder
import Testing

@Suite("Unit: build log noise")
struct LogNoiseTests {
    @Test("lines the user did not cause are left out", arguments: [
        "Getting image source signatures", "Copying blob sha256:ce5f36caba03 done", "Copying config sha256:1234 done",
        "Writing manifest to image destination", "COMMIT localhost/drydock/last-build:latest",
        "[2/2] COMMIT localhost/drydock/last-build:latest", "COMMIT", "[2/2] COMMIT", "Successfully tagged localhost/drydock/last-build:latest",
        "[Warning] one or more build args were not consumed: [TARGETARCH TARGETOS TARGETPLATFORM]",
        "(UNHANDLED LOGLEVEL) &imagebuilder.Step{Env:[] Command:\"runn\"}",
        "--> Using cache 2b67efefc39e661e870697a7f84d83ae7a3d95be2807316a783c65ffb2555ed5", "--> 2b67efefc39",
        "subprocess exited with status 7", "subprocess exited on killed", "Error: building at STEP \"RUN exit 7\": exit status 7",
        #"time="2026-12-05T13:48:00Z" level=warning msg="Error validating CNI config file /etc/cni/net.d/87-podman-bridge.conflist: [failed to find plugin \"bridge\" in path [/usr/lib/cni]]""#,
        #"time="2026-12-05T16:50:55Z" level=error msg="container not running""#,
        #"time="2026-12-05T16:50:55Z" level=error msg="exit status 1 sending SIGKILL""#,
    ])
    func noise(line: String) {
        #expect(LogNoise.isNoise(line))
    }

    @Test("what the user did stays", arguments: [
        "[Warning] one or more build args were not consumed: [VERSION]",
        "[Warning] one or more build args were not consumed: [TARGETARCH VERSION]",
        "hello from RUN", "error: undefined reference to foo", "COMMIT app:1", "Error: no such file",
        #"time="2026-12-05T13:48:00Z" level=warning msg="pulling base image: slow mirror""#,
        #"time="2026-12-05T16:50:55Z" level=error msg="mounting the cache: no space left on device""#,
    ])
    func kept(line: String) {
        #expect(!LogNoise.isNoise(line))
    }
}
