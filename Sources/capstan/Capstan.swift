import CapstanCLI
import Foundation
import Logging

@main
struct Capstan {
    static func main() async {
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        exit(await CapstanCommand.runMain())
    }
}
