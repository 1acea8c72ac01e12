@testable import DrydockAgent
@testable import DrydockBuilder
import Foundation
import Testing

@Suite("Unit: cache policy and agent inputs")
struct CacheMaintenanceTests {
    @Test("the images a build used are read from buildah's step lines, and nothing else is taken for one")
    func usedImages() {
        #expect(CacheMaintenance.imageId(inBuildahLine: "--> Using cache 2b67efefc39e661e870697a7f84d83ae7a3d95be2807316a783c65ffb2555ed5")
                == "2b67efefc39e661e870697a7f84d83ae7a3d95be2807316a783c65ffb2555ed5")
        #expect(CacheMaintenance.imageId(inBuildahLine: "--> 2b67efefc39") == "2b67efefc39")
        #expect(CacheMaintenance.imageId(inBuildahLine: "--> 9BA9255AC7A8") == "9ba9255ac7a8")
        for line in ["--> abc", "STEP 2/3: RUN echo --> 2b67efefc39e", "--> 2b67efefc39e and more", "-->", "", "--> Using cache xyz"] {
            #expect(CacheMaintenance.imageId(inBuildahLine: line) == nil, "\(line)")
        }
    }

    @Test("a base image's name as a Dockerfile names it: without its tag or digest, with its registry's port")
    func repositories() {
        #expect(CacheMaintenance.repository(of: "127.0.0.1:5000/p/busybox:latest") == "127.0.0.1:5000/p/busybox")
        #expect(CacheMaintenance.repository(of: "127.0.0.1:5000/p/busybox") == "127.0.0.1:5000/p/busybox")
        #expect(CacheMaintenance.repository(of: "docker.io/library/alpine@sha256:abc") == "docker.io/library/alpine")
        #expect(CacheMaintenance.bare("sha256:abc") == "abc" && CacheMaintenance.bare("abc") == "abc")
    }

    @Test("a cache volume's name from the server cannot leave the volumes directory")
    func volumeNames() throws {
        let volumes = CacheVolumes(root: URL(fileURLWithPath: "/data"))
        #expect(try volumes.volume(named: "p1x/linux-arm64-v8").path == "/data/volumes/p1x/linux-arm64-v8")
        for bad in ["../x/linux-amd64", "p/../../etc", "p", "p/linux-amd64/extra", "/p/x", "p/", "P/linux-amd64", "p/-rf", "p/linux amd64"] {
            #expect(throws: AgentError.self, "\(bad)") { try volumes.volume(named: bad) }
        }
    }

    @Test("the builder's environment: native or emulated, its volume, its one-time secret")
    func builderEnvironment() {
        var spec = BuilderSpec(builderId: "b1", name: "rack-b1", organizationId: "o", projectId: "p", platform: "linux/arm64", apiUrl: "http://s",
                               registrationSecret: "ddg_x", cacheVolume: "p/linux-arm64", cacheDirectory: "/v/p", clone: false,
                               volumeDirectory: "/v/p", idleSeconds: 60, buildsPerBuilder: 2)
        var env = spec.environment(extra: ["LOG_LEVEL": "debug"])
        #expect(env["DRYDOCK_BUILDER_PLATFORMS"] == "linux/arm64" && env["DRYDOCK_BUILDER_EMULATE"] == nil)
        #expect(env["DRYDOCK_BUILDER_REGISTRATION"] == "ddg_x" && env["DRYDOCK_CACHE_DIR"] == "/v/p" && env["DRYDOCK_BUILDER_CONCURRENCY"] == "2")
        #expect(env["LOG_LEVEL"] == "debug" && env["DRYDOCK_WORKER_TOKEN"] == nil)
        spec.emulated = true
        env = spec.environment(extra: [:])
        #expect(env["DRYDOCK_BUILDER_PLATFORMS"] == "none" && env["DRYDOCK_BUILDER_EMULATE"] == "linux/arm64")
        let podman = PodmanLauncher.runArguments(spec, image: "reg/builder:1", extra: ["PATH": "/x", "LOG_LEVEL": "info"])
        #expect(podman.last == "reg/builder:1" && podman.contains("/v/p:/var/lib/drydock-builder"))
        #expect(podman.contains("DRYDOCK_CACHE_DIR=/var/lib/drydock-builder") && !podman.contains("PATH=/x"))
    }
}
