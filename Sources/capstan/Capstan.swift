import CapstanCLI
import Logging

@main
struct Capstan {
    static func main() async {
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        await CapstanCommand.main()
    }
}
