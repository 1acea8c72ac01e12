import DrydockProcess
import Testing

@Suite("Help text layout")
struct HelpTextTests {
    @Test("reflow joins a paragraph's lines for the terminal to wrap, and keeps blank lines, indented lines, list items and lines after a colon")
    func reflow() {
        let text = """
            First paragraph, broken by hand
            at some width.

            Examples:
              drydock build -t app:1 .
              drydock build \\
                  --push .
            Then prose again
            over two lines.
            - an item
              indented under it
            - another item
            continued here
            """
        #expect(HelpText.reflow(text) == """
            First paragraph, broken by hand at some width.

            Examples:
              drydock build -t app:1 .
              drydock build \\
                  --push .
            Then prose again over two lines.
            - an item
              indented under it
            - another item continued here
            """)
    }
}
