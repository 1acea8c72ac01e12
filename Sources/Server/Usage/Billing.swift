import Foundation

/// A plan's terms. Money is integer: monthly fees in cents, unit prices in millicents
/// (1/1000 of a cent, so $0.04 is 4,000 and a custom $0.035 is 3,500); nothing is floating point.
public struct PlanTerms: Sendable, Equatable, Codable {
    public var id: PlanName
    public var name: String
    public var monthlyCents: Int64
    /// nil: unlimited.
    public var maxUsers: Int?
    public var includedMinutes: Int64
    /// nil: no overage on this plan (builds past the included minutes are refused).
    public var minuteOverageMillicents: Int64?
    public var includedStorageGB: Int64
    public var storageOverageMillicentsPerGBMonth: Int64?
    public var usageCaps: Bool

    /// The seed's plans.
    public static let developer = PlanTerms(id: .developer, name: "Developer", monthlyCents: 2_000, maxUsers: 1, includedMinutes: 500,
                                            minuteOverageMillicents: nil, includedStorageGB: 25, storageOverageMillicentsPerGBMonth: nil,
                                            usageCaps: false)
    public static let startup = PlanTerms(id: .startup, name: "Startup", monthlyCents: 20_000, maxUsers: nil, includedMinutes: 5_000,
                                          minuteOverageMillicents: 4_000, includedStorageGB: 250, storageOverageMillicentsPerGBMonth: 20_000,
                                          usageCaps: true)
    /// Business amounts are negotiated: these are the defaults an operator overrides per organization.
    public static let business = PlanTerms(id: .business, name: "Business", monthlyCents: 20_000, maxUsers: nil, includedMinutes: 5_000,
                                           minuteOverageMillicents: 4_000, includedStorageGB: 250, storageOverageMillicentsPerGBMonth: 20_000,
                                           usageCaps: true)
}

/// A plan in force from `from` to `to` (epoch seconds; nil: still in force).
public struct PlanPeriod: Sendable, Equatable {
    public var terms: PlanTerms
    public var from: Int64
    public var to: Int64?
}

/// One calendar month's (or part of one) usage and what it costs.
public struct MonthBill: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        public var item: String
        public var quantity: String
        public var unitPrice: String
        public var cents: Int64
    }

    public var buildSeconds: Int64
    public var includedMinutes: Int64
    public var overageSeconds: Int64
    /// Byte-seconds of storage held.
    public var storageByteSeconds: Decimal
    public var storageGBMonths: Decimal
    public var overageGBMonths: Decimal
    public var lines: [Line]
    public var totalCents: Int64
}

public enum Billing {
    public static let bytesPerGB: Decimal = 1_000_000_000

    /// Rounds a non-negative amount in millicents to whole cents, half up.
    public static func cents(millicents: Decimal) -> Int64 {
        var value = millicents / 1000
        var rounded = Decimal()
        NSDecimalRound(&rounded, &value, 0, .plain)
        return NSDecimalNumber(decimal: rounded).int64Value
    }

    public static func dollars(_ cents: Int64) -> String {
        let sign = cents < 0 ? "-" : ""
        let abs = cents.magnitude
        return "\(sign)$\(abs / 100).\(abs % 100 < 10 ? "0" : "")\(abs % 100)"
    }

    static func unitPrice(_ millicents: Int64) -> String {
        // $0.04, $0.035, $0.2 → $0.20
        let whole = millicents / 100_000
        var fraction = String(millicents % 100_000)
        fraction = String(repeating: "0", count: 5 - fraction.count) + fraction
        while fraction.count > 2 && fraction.hasSuffix("0") { fraction.removeLast() }
        return "$\(whole).\(fraction)"
    }

    static func decimalString(_ value: Decimal, places: Int16 = 3) -> String {
        var v = value
        var rounded = Decimal()
        NSDecimalRound(&rounded, &v, Int(places), .plain)
        return NSDecimalNumber(decimal: rounded).stringValue
    }

    /// The bill of one month, or of the part of it a plan was in force (`planSeconds` of the
    /// month's `monthSeconds`; nil: all of it). The fee and the included minutes and storage are
    /// prorated by that share, to the cent and the second; build minutes are billed per second
    /// past the included ones, storage GB-months past the included GB.
    /// A calendar month billed by the plans in force during it, each for its share of the month
    /// (fee, included minutes and storage); nothing before the organization existed or for a
    /// month yet to begin. Usage inside `[partFrom, partTo)` is counted against the plan in force
    /// when it happened. The usage report and the caps check both price a month with this.
    public static func month(history: [PlanPeriod], monthFrom: Int64, monthTo: Int64, partFrom: Int64, partTo: Int64, now: Int64,
                             buildSeconds: (Int64, Int64) -> Int64, storageByteSeconds: (Int64, Int64) -> Decimal) -> [MonthBill] {
        let segments = history.compactMap { plan -> (plan: PlanPeriod, from: Int64, to: Int64)? in
            let from = max(plan.from, monthFrom), to = min(plan.to ?? monthTo, monthTo)
            return to > from && monthFrom <= now ? (plan, from, to) : nil
        }
        return segments.enumerated().map { index, segment in
            let (plan, from, to) = segment
            // The month's first and last plans also take whatever falls outside every period
            // (clock skew, imports).
            let usageFrom = index == 0 ? partFrom : max(from, partFrom)
            let usageTo = index == segments.count - 1 ? partTo : min(to, partTo)
            let seconds = usageTo > usageFrom ? buildSeconds(usageFrom, usageTo) : 0
            let bytes = usageTo > usageFrom ? storageByteSeconds(usageFrom, usageTo) : 0
            return month(plan: plan.terms, buildSeconds: seconds, storageByteSeconds: bytes, monthSeconds: monthTo - monthFrom, planSeconds: to - from)
        }
    }

    public static func month(plan: PlanTerms, buildSeconds: Int64, storageByteSeconds: Decimal, monthSeconds: Int64,
                             planSeconds: Int64? = nil) -> MonthBill {
        let onPlan = min(max(planSeconds ?? monthSeconds, 0), monthSeconds)
        let share = Decimal(onPlan) / Decimal(monthSeconds)
        let includedSeconds = plan.includedMinutes * 60 * onPlan / max(monthSeconds, 1)
        let includedGB = Decimal(plan.includedStorageGB) * share
        let overageSeconds = max(0, buildSeconds - includedSeconds)
        let gbMonths = storageByteSeconds / bytesPerGB / Decimal(monthSeconds)
        let overGB = max(0, gbMonths - includedGB)
        let fee = onPlan == monthSeconds ? plan.monthlyCents : Self.cents(millicents: Decimal(plan.monthlyCents) * 1000 * share)
        let quantity = onPlan == monthSeconds ? "1 month" : "\(decimalString(share, places: 3)) month"
        var lines = [MonthBill.Line(item: "\(plan.name) plan", quantity: quantity, unitPrice: dollars(plan.monthlyCents), cents: fee)]
        if let price = plan.minuteOverageMillicents, overageSeconds > 0 {
            let cents = Self.cents(millicents: Decimal(overageSeconds) * Decimal(price) / 60)
            lines.append(.init(item: "build minutes over \(includedSeconds / 60)", quantity: "\(decimalString(Decimal(overageSeconds) / 60, places: 2)) min",
                               unitPrice: "\(unitPrice(price))/min", cents: cents))
        }
        if let price = plan.storageOverageMillicentsPerGBMonth, overGB > 0 {
            let cents = Self.cents(millicents: overGB * Decimal(price))
            lines.append(.init(item: "storage over \(decimalString(includedGB, places: 1)) GB", quantity: "\(decimalString(overGB)) GB-month",
                               unitPrice: "\(unitPrice(price))/GB-month", cents: cents))
        }
        return MonthBill(buildSeconds: buildSeconds, includedMinutes: includedSeconds / 60, overageSeconds: overageSeconds,
                         storageByteSeconds: storageByteSeconds, storageGBMonths: gbMonths, overageGBMonths: overGB,
                         lines: lines, totalCents: lines.reduce(0) { $0 + $1.cents })
    }
}
