import CapstanCore
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

    @Test(arguments: [
        ("{{port", "without a closing"),
        ("{{#a}}x", "never closes section \"a\""),
        ("{{/a}}", "closes section \"a\" that is not open"),
        ("{{> header}}", "partial"),
        ("{{=<% %>=}}", "delimiter change"),
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
