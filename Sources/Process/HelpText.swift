/// `--help` text laid out for any terminal width. ArgumentParser wraps a line longer than the
/// terminal and leaves shorter ones alone, so prose broken by hand at 100 columns came out on an
/// 80-column terminal as long lines each followed by a stub of a few words. `reflow` joins the
/// lines of each prose paragraph into one, for ArgumentParser to wrap at the terminal's width.
/// Blank lines still separate paragraphs; indented lines (examples, tables), lines starting a list
/// item ("- ") and lines after one ending in ":" keep their own line.
public enum HelpText {
    public static func reflow(_ text: String) -> String {
        var out: [String] = []
        var joinable = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let isProse = !line.isEmpty && line.first != " " && !line.hasPrefix("- ")
            if isProse, joinable, let last = out.last, !last.hasSuffix(":") {
                out[out.count - 1] = last + " " + line
            } else {
                out.append(String(line))
            }
            // Prose and list items take the prose lines that follow them.
            joinable = !line.isEmpty && line.first != " "
        }
        return out.joined(separator: "\n")
    }
}
