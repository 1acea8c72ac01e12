import DrydockBake
import Foundation
import Testing

@Suite("Unit: HCL expressions and templates")
struct HCLTests {
    static let vars: [String: HCLValue] = [
        "name": .string("api"), "n": .number(3), "flag": .bool(true), "nothing": .null,
        "list": .list([.string("a"), .string("b"), .string("c")]),
        "nums": .list([.number(3), .number(1), .number(2)]),
        "obj": .object(["x": .number(1), "y": .string("two")]),
        "people": .list([.object(["name": .string("ann"), "age": .number(30)]), .object(["name": .string("bob"), "age": .number(40)])]),
    ]

    /// Each expression and what it evaluates to (as JSON, objects with sorted keys).
    static let cases: [(String, String)] = [
        // Literals and arithmetic.
        ("1 + 2 * 3", "7"), ("(1 + 2) * 3", "9"), ("10 / 4", "2.5"), ("7 % 3", "1"), ("-n + 1", "-2"), ("2.5e2", "250"),
        ("\"1\" + 1", "2"), ("null", "null"), ("true", "true"),
        // Comparison and logic.
        ("n > 2 && n < 4", "true"), ("n == 3", "true"), ("\"3\" == 3", "false"), ("!flag || false", "false"), ("n >= 3 ? \"big\" : \"small\"", "\"big\""),
        ("nothing == null", "true"),
        // Strings and templates.
        ("\"hello ${name}\"", "\"hello api\""), ("\"${n}\"", "3"), ("\"n=${n + 1}\"", "\"n=4\""), ("\"a\\tb\\n\"", "\"a\\tb\\n\""),
        ("\"$${name}\"", "\"${name}\""), ("\"%{ if flag }yes%{ else }no%{ endif }\"", "\"yes\""),
        ("\"%{ for x in list }${x},%{ endfor }\"", "\"a,b,c,\""), ("\"%{ for i, x in list ~} ${i}${x} %{~ endfor }\"", "\"0a1b2c\""),
        ("\"${upper(name)}-${length(list)}\"", "\"API-3\""),
        // Collections, indexes, attributes, splats.
        ("[1, 2, 3][1]", "2"), ("list[0]", "\"a\""), ("obj.y", "\"two\""), ("obj[\"x\"]", "1"), ("list.1", "\"b\""),
        ("people[*].name", "[\"ann\",\"bob\"]"), ("people.*.age", "[30,40]"), ("{a = 1, \"b\": 2}", "{\"a\":1,\"b\":2}"),
        ("{for k, v in obj : k => v}", "{\"x\":1,\"y\":\"two\"}"), ("[for x in list : upper(x) if x != \"b\"]", "[\"A\",\"C\"]"),
        ("[for i, x in list : \"${i}:${x}\"]", "[\"0:a\",\"1:b\",\"2:c\"]"), ("{for p in people : p.age > 35 ? \"old\" : \"young\" => p.name...}", "{\"old\":[\"bob\"],\"young\":[\"ann\"]}"),
        ("[\n  1,\n  2,\n]", "[1,2]"),
        // Functions.
        ("join(\",\", list)", "\"a,b,c\""), ("split(\",\", \"x,y\")", "[\"x\",\"y\"]"), ("format(\"%s-%03d\", name, 7)", "\"api-007\""),
        ("formatlist(\"img:%s\", list)", "[\"img:a\",\"img:b\",\"img:c\"]"), ("replace(\"a.b.c\", \".\", \"/\")", "\"a/b/c\""),
        ("regex_replace(\"v1.2.3\", \"^v\", \"\")", "\"1.2.3\""), ("regex(\"([0-9]+)\\\\.([0-9]+)\", \"v12.4\")", "[\"12\",\"4\"]"),
        ("trimprefix(\"refs/heads/main\", \"refs/heads/\")", "\"main\""), ("substr(\"drydock\", 0, 3)", "\"dry\""), ("lower(\"ABC\")", "\"abc\""),
        ("concat(list, [\"d\"])", "[\"a\",\"b\",\"c\",\"d\"]"), ("contains(list, \"b\")", "true"), ("distinct([1, 1, 2])", "[1,2]"),
        ("flatten([[1], [2, [3]]])", "[1,2,3]"), ("keys(obj)", "[\"x\",\"y\"]"), ("merge(obj, {z = 3})", "{\"x\":1,\"y\":\"two\",\"z\":3}"),
        ("lookup(obj, \"q\", \"none\")", "\"none\""), ("element(list, 4)", "\"b\""), ("slice(list, 1, 3)", "[\"b\",\"c\"]"),
        ("sort([\"b\", \"a\"])", "[\"a\",\"b\"]"), ("reverse(nums)", "[2,1,3]"), ("range(3)", "[0,1,2]"), ("max(nums...)", "3"),
        ("coalesce(\"\", null, \"x\")", "\"x\""), ("compact([\"a\", \"\", null])", "[\"a\"]"), ("zipmap([\"a\"], [1])", "{\"a\":1}"),
        ("setproduct([\"a\"], [1, 2])", "[[\"a\",1],[\"a\",2]]"), ("length(obj)", "2"), ("ceil(1.2)", "2"), ("floor(-1.2)", "-2"),
        ("pow(2, 10)", "1024"), ("parseint(\"ff\", 16)", "255"), ("tostring(5)", "\"5\""), ("tonumber(\"5\")", "5"),
        ("jsonencode({a = [1, true]})", "\"{\\\"a\\\":[1,true]}\""), ("jsondecode(\"[1,\\\"x\\\"]\")", "[1,\"x\"]"),
        ("base64encode(\"hi\")", "\"aGk=\""), ("base64decode(\"aGk=\")", "\"hi\""), ("sha256(\"abc\")", "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""),
        ("md5(\"abc\")", "\"900150983cd24fb0d6963f7d28e17f72\""), ("formatdate(\"YYYY-MM-DD hh:mm\", \"2026-11-29T01:02:03Z\")", "\"2026-11-29 01:02\""),
        ("timeadd(\"2026-11-29T00:00:00Z\", \"1h30m\")", "\"2026-11-29T01:30:00Z\""), ("try(obj.missing, \"fallback\")", "\"fallback\""),
        ("can(obj.missing)", "false"), ("and(true, n == 3)", "true"), ("equal(1, 1)", "true"), ("indent(2, \"a\\nb\")", "\"a\\n  b\""),
        ("<<EOT\nhello ${name}\n  indented\nEOT\n", "\"hello api\\n  indented\\n\""), ("<<-EOT\n    a\n      b ${n}\n    EOT\n", "\"a\\n  b 3\\n\""),
        ("/* a comment */ n # and another\n", "3"), ("\"\\u00e9\"", "\"é\""),
        ("title(\"hello world\")", "\"Hello World\""), ("urlencode(\"a b&c\")", "\"a%20b%26c\""), ("trimspace(\"  x \\n\")", "\"x\""),
    ]

    @Test("expressions evaluate to what HCL says", arguments: cases)
    func expression(_ source: String, _ expected: String) throws {
        let value = try HCL.evaluate(source, variables: Self.vars)
        #expect(try value.jsonString() == expected, "\(source)")
    }

    /// Each bad expression and the words of its error (with the column it names).
    static let errors: [(String, String)] = [
        ("1 +", "1:4: expected an expression"), ("undefinedvar", "1:1: undefined variable 'undefinedvar'"),
        ("nofn(1)", "1:1: undefined function 'nofn'"), ("\"a\" * 2", "must be a number, not the string \"a\""),
        ("list[7]", "index 7 is out of range"), ("obj.z", "no attribute 'z'"), ("1 / 0", "division by zero"),
        ("\"x${list}\"", "a template cannot include a list"), ("upper(1, 2)", "upper() takes 1 argument(s), not 2"),
        ("\"unterminated", "unterminated string"), ("[1, 2", "expected ','"), ("{for x in list : \"k\" => x}", "duplicate key"),
        ("n ? 1 : 2", "a condition must be a bool, not number"), ("list[1e300]", "is out of range"),
        ("substr(\"abc\", 1e300, 1)", "out of range"), ("format(\"%d\", 1e300)", "out of range"), ("indent(1e9, \"a\")", "out of range"), ("\"%{ if flag }x\"", "%{ if } has no %{ endif }"),
    ]

    @Test("errors name the line and column and say what is wrong", arguments: errors)
    func failure(_ source: String, _ words: String) {
        do {
            let value = try HCL.evaluate(source, variables: Self.vars, file: "test.hcl")
            Issue.record("\(source) evaluated to \(value)")
        } catch {
            #expect("\(error)".contains(words), "\(source): \(error)")
            #expect("\(error)".hasPrefix("test.hcl:1:"), "\(error)")
        }
    }
}
