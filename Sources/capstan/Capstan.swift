import CapstanCLI
import CapstanServer
import Foundation
import Logging

@main
struct Capstan {
    static func main() async {
        LoggingSystem.bootstrap { label in StandardErrorLogHandler(label: label) }
        exit(await CapstanCommand.runMain())
    }
}
