import Foundation

/// Entry points of the HCL engine (the bake loader uses the parts directly).
public enum HCL {
    /// Evaluates one expression, with `variables` in scope and the standard functions.
    public static func evaluate(_ source: String, variables: [String: HCLValue] = [:], file: String = "<expression>") throws -> HCLValue {
        let expr = try HCLParser.parseExpression(source, at: SourcePosition(file: file, line: 1, column: 1))
        let evaluator = HCLEvaluator(functions: HCLStandardLibrary.all, lookup: { _, _ in nil })
        return try evaluator.evaluate(expr, variables)
    }

    /// The names of the standard functions (for the README and `--help`).
    public static var functionNames: [String] { HCLStandardLibrary.all.keys.sorted() + ["can", "try"] }
}
