import Foundation

/// Text for people: durations, sizes, times.
enum DashboardFormat {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters (other than tab) have no place in SVG text.
                if c.value < 0x20 && c != "\t" { out += " " } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    static func duration(ms: Int64) -> String {
        if ms < 1000 { return "\(max(ms, 0)) ms" }
        let seconds = Double(ms) / 1000
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return "\(whole / 60)m \(String(format: "%02d", whole % 60))s" }
        return "\(whole / 3600)h \(String(format: "%02d", whole % 3600 / 60))m"
    }

    static func duration(from start: Date?, to end: Date?) -> String? {
        guard let start else { return nil }
        let ms = Int64(((end ?? Date()).timeIntervalSince(start) * 1000).rounded())
        return duration(ms: ms)
    }

    static func bytes(_ count: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000, unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static let timeFormat: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return f
    }()

    static func time(_ date: Date?) -> String {
        guard let date else { return "—" }
        return timeFormat.string(from: date)
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(format: "%.1f", value)
    }
}

/// The SVG the pages draw: a build's steps as a timeline, minutes per day as bars. Every text in
/// them is escaped here (the templates insert them as they are).
enum DashboardCharts {
    struct Step {
        var number: Int
        var instruction: String
        var cached: Bool
        var status: String
        var durationMs: Int64?
        var savedMs: Int64?
    }

    /// One row per step: its number and instruction, and a bar as long as it took, placed after
    /// the steps before it (a build's steps run one after another). Cached steps are marked.
    static func timeline(_ steps: [Step]) -> String {
        guard !steps.isEmpty else { return "<p class=\"muted\">No steps reported yet.</p>" }
        let rowHeight = 22
        let labelWidth = 360
        let barArea = 560
        let height = steps.count * rowHeight + 24
        // Durations are a worker's word (bounded when reported; clamped here for older records).
        let total = max(steps.reduce(Int64(0)) { $0.addingClamped(max($1.durationMs ?? 0, 0)) }, 1)
        var svg = """
            <svg class="timeline" viewBox="0 0 \(labelWidth + barArea + 90) \(height)" width="100%" role="img" \
            aria-label="steps timeline" xmlns="http://www.w3.org/2000/svg">
            """
        var offset: Int64 = 0
        for (row, step) in steps.enumerated() {
            let y = row * rowHeight + 4
            let duration = max(step.durationMs ?? 0, 0)
            let x = labelWidth + Int(Double(offset) / Double(total) * Double(barArea))
            let width = max(Int(Double(duration) / Double(total) * Double(barArea)), 2)
            // About 7 units a character at 12 px monospace: the label stays left of the bars.
            let room = max(labelWidth / 7 - 6 - String(step.number).count, 8)
            let label = step.instruction.count > room ? String(step.instruction.prefix(room - 1)) + "…" : step.instruction
            let kind = step.cached ? "cached" : step.status
            var title = "#\(step.number) \(step.instruction): \(step.cached ? "cached" : step.status)"
            if let ms = step.durationMs { title += ", \(DashboardFormat.duration(ms: ms))" }
            if step.cached, let saved = step.savedMs { title += ", saved \(DashboardFormat.duration(ms: saved))" }
            svg += "<g class=\"step \(DashboardFormat.escape(kind))\"><title>\(DashboardFormat.escape(title))</title>"
            svg += "<text x=\"0\" y=\"\(y + 14)\" class=\"label\">#\(step.number) \(DashboardFormat.escape(label))</text>"
            svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(rowHeight - 6)\" rx=\"2\"></rect>"
            let note = step.cached ? "cached" : (step.durationMs.map { DashboardFormat.duration(ms: $0) } ?? step.status)
            svg += "<text x=\"\(min(x + width + 6, labelWidth + barArea + 4))\" y=\"\(y + 14)\" class=\"note\">\(DashboardFormat.escape(note))</text></g>"
            offset = offset.addingClamped(duration)
        }
        svg += "<text x=\"\(labelWidth)\" y=\"\(height - 4)\" class=\"axis\">0</text>"
        svg += "<text x=\"\(labelWidth + barArea)\" y=\"\(height - 4)\" class=\"axis\" text-anchor=\"end\">\(DashboardFormat.escape(DashboardFormat.duration(ms: total)))</text>"
        svg += "</svg>"
        return svg
    }

    /// Build minutes per day of a month: one bar per day, labelled every few days.
    static func minutesPerDay(_ days: [(date: String, minutes: Double)]) -> String {
        guard days.contains(where: { $0.minutes > 0 }) else { return "<p class=\"muted\">No builds in this period.</p>" }
        let width = 900
        let height = 220
        let chartHeight = 170
        let most = max(days.map(\.minutes).max() ?? 0, 1)
        let slot = Double(width - 40) / Double(days.count)
        var svg = """
            <svg class="bars" viewBox="0 0 \(width) \(height)" width="100%" role="img" \
            aria-label="build minutes per day" xmlns="http://www.w3.org/2000/svg">
            """
        svg += "<text x=\"0\" y=\"12\" class=\"axis\">\(DashboardFormat.escape(DashboardFormat.number(most))) min</text>"
        for (i, day) in days.enumerated() {
            let barHeight = Int(day.minutes / most * Double(chartHeight))
            let x = 40 + Int(Double(i) * slot)
            let y = 20 + chartHeight - barHeight
            svg += "<g class=\"day\"><title>\(DashboardFormat.escape(day.date)): \(DashboardFormat.escape(DashboardFormat.number(day.minutes))) min</title>"
            svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(max(Int(slot) - 2, 1))\" height=\"\(max(barHeight, day.minutes > 0 ? 1 : 0))\"></rect></g>"
            if i % 5 == 0 || i == days.count - 1 {
                let label = String(day.date.suffix(2))
                svg += "<text x=\"\(x)\" y=\"\(height - 12)\" class=\"axis\">\(DashboardFormat.escape(label))</text>"
            }
        }
        svg += "</svg>"
        return svg
    }
}
