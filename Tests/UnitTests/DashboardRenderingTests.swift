import Foundation
import Testing

@testable import DrydockServer

/// What the dashboard draws and writes itself (the SVG it inserts unescaped into pages, the CSV
/// it hands out): user text stays text, figures read as people read them.
@Suite("Unit: dashboard charts, formats and templates")
struct DashboardRenderingTests {
    @Test("The step timeline escapes instructions and marks cached steps; bars follow each other")
    func timeline() {
        let svg = DashboardCharts.timeline([
            .init(number: 1, instruction: "FROM busybox", cached: false, status: "done", durationMs: 1000, savedMs: nil),
            .init(number: 2, instruction: #"RUN echo "<script>alert('x')</script>" & true"#, cached: true, status: "done",
                  durationMs: 3000, savedMs: 2500),
        ])
        #expect(!svg.contains("<script>") && svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        #expect(svg.contains(#"<g class="step cached">"#) && svg.contains(#"<g class="step done">"#))
        #expect(svg.contains("saved 2.5 s"))
        // The second bar starts where the first ends: a quarter of the bar area (560 wide after 360 of labels).
        #expect(svg.contains(#"<rect x="360" y="4" width="140""#) && svg.contains(#"<rect x="500" y="26" width="420""#))
        #expect(DashboardCharts.timeline([]).contains("No steps reported yet"))
    }

    @Test("Minutes per day: one bar each, the tallest full height, labels escaped")
    func bars() {
        let svg = DashboardCharts.minutesPerDay([("2026-12-01", 10), ("2026-12-02", 0), ("<b>", 5)])
        #expect(svg.components(separatedBy: #"<g class="day">"#).count == 4)
        #expect(svg.contains(#"height="170""#) && svg.contains(#"height="85""#) && !svg.contains("<b>"))
    }

    @Test("Durations, sizes and control characters")
    func formats() {
        #expect(DashboardFormat.duration(ms: 250) == "250 ms")
        #expect(DashboardFormat.duration(ms: 1500) == "1.5 s")
        #expect(DashboardFormat.duration(ms: 125_000) == "2m 05s")
        #expect(DashboardFormat.duration(ms: 3_726_000) == "1h 02m")
        #expect(DashboardFormat.bytes(999) == "999 B" && DashboardFormat.bytes(2_400_000) == "2.4 MB")
        #expect(DashboardFormat.escape("a\u{1}b<&>\"'") == "a b&lt;&amp;&gt;&quot;&#39;")
    }

    @Test("Every template parses and escapes what it is given")
    func templates() throws {
        let library = try DashboardTemplates.library()
        for (name, _) in DashboardTemplates.all {
            #expect(library.getTemplate(named: name) != nil, "\(name)")
        }
        let page = try #require(library.render(["title": "<x>", "nav": false, "flash": NSNull(), "heading": "<h1>", "message": "<script>m</script>",
                                                "back": "/", "backLabel": "back"], withTemplate: "error"))
        #expect(page.contains("&lt;script&gt;m&lt;/script&gt;") && !page.contains("<script>m"))
        #expect(!page.contains("<script>") || page.contains(#"<script src="/static/dashboard.js" defer></script>"#))
    }
}

@Suite("Unit: log entries numbered by the statement that stores them")
struct LogEntryOffsetTests {
    @Test("An entry encoded for storage holds the offset pattern once, whatever its line says")
    func pattern() throws {
        var entry = LogEntry.line(#"echo "offset":-4611686018427387904 and {"offset":-4611686018427387904}"#, platform: "linux/amd64")
        entry.offset = BuildLog.offsetSentinel
        let text = String(decoding: try BuildJSON.encoder.encode(entry), as: UTF8.self)
        #expect(text.components(separatedBy: BuildLog.offsetPattern).count == 2, "\(text)")
        let stored = text.replacingOccurrences(of: BuildLog.offsetPattern, with: #""offset":42"#)
        let decoded = try BuildJSON.decoder.decode(LogEntry.self, from: Data(stored.utf8))
        #expect(decoded.offset == 42 && decoded.line == entry.line)
    }
}
