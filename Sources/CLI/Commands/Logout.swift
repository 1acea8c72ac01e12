import ArgumentParser
import DrydockClient
import Foundation

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Forget the saved token.")

    func run() async throws {
        if try CLIConfiguration.clearToken() {
            print("Logged out; the saved token is gone (it stays valid until revoked: 'drydock tokens revoke ID').")
        } else {
            print("Not logged in.")
        }
    }
}
