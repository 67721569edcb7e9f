@testable import CapstanCore
import Testing

@Suite("Template rendering")
struct TemplateRendererTests {
    let context: ConfigValue = .object([
        "port": .int(8080),
        "name": .string("a&b <c>"),
        "debug": .bool(false),
        "db": .object(["host": .string("db.internal"), "replicas": .array([.string("r1"), .string("r2")])]),
        "upstreams": .array([.object(["host": .string("10.0.0.1"), "weight": .int(2)]), .object(["host": .string("10.0.0.2"), "weight": .int(1)])]),
        "empty": .array([]),
        "node": .object(["name": .string("web-1"), "labels": .object(["env": .string("prod")])]),
    ])

    @Test func rendersValuesSectionsAndNodeFactsWithoutEscaping() throws {
        let source = """
            listen {{port}};
            server_name {{name}};
            db {{db.host}}
            {{#upstreams}}
            server {{host}} weight={{weight}}; # {{node.name}}
            {{/upstreams}}
            {{#debug}}debug on{{/debug}}{{^debug}}debug off{{/debug}}
            {{#db.replicas}}replica {{.}}
            {{/db.replicas}}env={{node.labels.env}}

            """
        let rendered = try TemplateRenderer.render(source, context: context)
        #expect(
            rendered == """
                listen 8080;
                server_name a&b <c>;
                db db.internal
                server 10.0.0.1 weight=2; # web-1
                server 10.0.0.2 weight=1; # web-1
                debug off
                replica r1
                replica r2
                env=prod

                """)
    }

    @Test func anUnknownNameIsAnErrorNotABlank() {
        #expect(throws: CapstanError.self) { try TemplateRenderer.render("port {{prot}}\n", context: context) }
        do {
            _ = try TemplateRenderer.render("a {{db.hots}} {{#upstreams}}{{hostname}}{{/upstreams}}", context: context)
        } catch {
            #expect(error.message == "template uses \"db.hots\", \"hostname\", which the data and node facts do not have")
        }
    }

    @Test func sectionsThatRenderNothingAreNotChecked() throws {
        #expect(try TemplateRenderer.render("{{#missing}}{{whatever}}{{/missing}}{{#empty}}{{x}}{{/empty}}ok", context: context) == "ok")
        #expect(try TemplateRenderer.render("{{^missing}}none{{/missing}}", context: context) == "none")
    }

    /// Dotted names mean what swift-mustache makes of them, to the check and to the render budget
    /// alike: a leading "." looks in the innermost context only, empty parts are dropped.
    @Test(arguments: [
        ("{{.port}}", "8080"),
        ("{{#db}}{{.host}}{{/db}}", "db.internal"),
        ("{{#db..replicas}}[{{.}}]{{/db..replicas}}", "[r1][r2]"),
        ("{{#.upstreams}}{{.host}}:{{weight}};{{/.upstreams}}", "10.0.0.1:2;10.0.0.2:1;"),
        ("{{#node.}}{{name}}{{/node.}}", "web-1"),
        ("{{#node.labels}}{{#.env}}[{{.}}]{{/.env}}{{/node.labels}}", "[prod]"),
    ])
    func dottedNamesResolveAsSwiftMustacheHasThem(source: String, rendered: String) throws {
        #expect(try TemplateRenderer.render(source, context: context) == rendered)
        // The budget walks each section as often as it renders: it counts every byte written.
        var budget = RenderBudget(limits: RenderLimits(), deadline: .now + .seconds(5))
        try budget.walk(try TemplatePiece.parse(source), stack: [context])
        #expect(budget.output == rendered.utf8.count, "\(source)")
    }

    @Test func aSectionOverADottedNameIsChecked() {
        do {
            _ = try TemplateRenderer.render("{{#db..replicas}}{{hots}}{{/db..replicas}}{{#port}}{{.host}}{{/port}}", context: context)
            Issue.record("unknown names rendered blank")
        } catch {
            #expect(error.message == "template uses \"hots\", \".host\", which the data and node facts do not have")
        }
    }

    /// Ten items under six nested sections: a million copies of the text inside.
    static let nested = String(repeating: "{{#n}}", count: 6) + "0123456789" + String(repeating: "{{/n}}", count: 6)
    static let tenItems: ConfigValue = .object(["n": .array((1...10).map { .int($0) })])

    @Test func aRenderPastTheOutputLimitIsRefusedBeforeItIsBuilt() throws {
        let started = ContinuousClock.now
        do {
            _ = try TemplateRenderer.render(Self.nested, context: Self.tenItems, limits: RenderLimits(outputBytes: 1 << 20))
            Issue.record("10 MB rendered past a 1 MiB limit")
        } catch {
            #expect(error.code == .payloadTooLarge)
            #expect(error.message.hasPrefix("the template renders more than 1MiB, the most a rendered file may have"), "\(error.message)")
        }
        #expect(started.duration(to: .now) < .seconds(2))
        // Within the limit the same template renders whole.
        let four: ConfigValue = .object(["n": .array((1...4).map { .int($0) })])
        #expect(try TemplateRenderer.render(Self.nested, context: four, limits: RenderLimits(outputBytes: 40_960)).utf8.count == 40_960)
        #expect(throws: CapstanError.self) {
            try TemplateRenderer.render(Self.nested, context: four, limits: RenderLimits(outputBytes: 40_959))
        }
    }

    @Test func sectionsThatRepeatTooOftenAreRefusedEvenWithoutOutput() {
        let empty = String(repeating: "{{#n}}", count: 8) + String(repeating: "{{/n}}", count: 8)
        do {
            _ = try TemplateRenderer.render(empty, context: Self.tenItems)
            Issue.record("10^8 section passes went through")
        } catch {
            #expect(error.code == .payloadTooLarge)
            // On a machine busy enough (a debug build beside the whole suite) the time limit may
            // come first: either way the render is refused before it writes anything.
            #expect(
                error.message.hasPrefix("the template's sections repeat more than 1000000 times")
                    || error.message.hasPrefix("rendering the template took longer than"), "\(error.message)")
        }
    }

    @Test func aRenderPastTheTimeLimitIsRefused() {
        do {
            _ = try TemplateRenderer.render(Self.nested, context: Self.tenItems, limits: RenderLimits(time: .microseconds(1)))
            Issue.record("rendered past the time limit")
        } catch {
            #expect(error.message.hasPrefix("rendering the template took longer than"), "\(error.message)")
        }
    }

    @Test(arguments: [
        ("{{port", "without a closing"),
        ("{{#a}}x", "never closes section \"a\""),
        ("{{/a}}", "closes section \"a\" that is not open"),
        ("{{> header}}", "partial"),
        ("{{=<% %>=}}", "delimiter change"),
        ("{{#reversed(upstreams)}}x{{/reversed(upstreams)}}", "the transform \"reversed(upstreams)\""),
        ("{{uppercased(name)}}", "the transform \"uppercased(name)\""),
    ])
    func malformedTemplatesAreRefused(source: String, message: String) {
        do {
            _ = try TemplateRenderer.render(source, context: context)
            Issue.record("rendered \(source)")
        } catch {
            #expect(error.code == .invalidContent)
            #expect(error.message.contains(message), "\(error.message)")
        }
    }
}
