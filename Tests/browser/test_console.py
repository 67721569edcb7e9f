"""The console in a real browser: Debian's Chromium, headless, against real server and agent
processes. Run by scripts/test.sh; screenshots of every page go to .build/screenshots/."""
import os
import re
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Process, Server, binary, browser, free_port, screenshot  # noqa: E402

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


class ConsoleTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.agents = [cls.server.agent("web-1", ["role=web"]), cls.server.agent("web-2", ["role=web"])]
        cls.driver = browser()
        # Live pages redraw themselves: an element read just as its page redraws is read again.
        cls.wait = WebDriverWait(cls.driver, 20, ignored_exceptions=(StaleElementReferenceException,))

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        for agent in cls.agents:
            agent.stop()
        cls.server.stop()

    def setUp(self):
        self.driver.delete_all_cookies()

    def open(self, path):
        self.driver.get(self.server.url + path)

    def login(self, token):
        self.open("/ui/login")
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.CSS_SELECTOR, "#login button").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "logout")))

    def test_login_overview_and_logout(self):
        self.open("/")
        self.wait.until(EC.url_contains("/ui/login"))
        screenshot(self.driver, "login")
        self.login(self.server.token)
        self.assertTrue(self.driver.current_url.endswith("/ui/"))
        self.assertIn("Overview", self.driver.title)
        self.wait.until(lambda d: "2" in d.find_element(By.ID, "tile-nodes").text)
        screenshot(self.driver, "overview")
        # The session cookie is HttpOnly and SameSite=Strict; the page's script cannot see it.
        cookie = self.driver.get_cookie("capstan_session")
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertEqual(self.driver.execute_script("return document.cookie"), "")
        self.driver.find_element(By.ID, "logout").click()
        self.wait.until(EC.url_contains("/ui/login"))
        # The session is gone on the server too: its old cookie opens nothing.
        self.driver.add_cookie({"name": "capstan_session", "value": cookie["value"], "path": "/"})
        self.open("/ui/")
        self.wait.until(EC.url_contains("/ui/login"))

    def test_a_bad_token_is_refused_at_the_form(self):
        self.open("/ui/login")
        self.driver.find_element(By.ID, "token").send_keys("cap_nope_nope")
        self.driver.find_element(By.CSS_SELECTOR, "#login button").click()
        error = self.wait.until(EC.presence_of_element_located((By.ID, "login-error")))
        self.assertIn("does not work", error.text)
        screenshot(self.driver, "login-refused")

    def test_configs_search_and_a_key_with_its_history(self):
        self.server.api("POST", "/v1/namespaces", '{"name":"shop"}')
        self.server.api("PUT", "/v1/config/shop/web/app.yaml", "port: 8080\n", content_type="text/plain")
        self.server.api("PUT", "/v1/config/shop/web/app.yaml?comment=new%20port", "port: 9090\n", content_type="text/plain")
        self.server.api("PUT", "/v1/config/shop/db.yaml", "<script>alert(1)</script>: x\n", content_type="text/plain")
        self.login(self.server.token)
        self.open("/ui/configs?q=web")
        rows = self.driver.find_elements(By.CSS_SELECTOR, "#keys tbody tr")
        self.assertEqual([row.text.split()[0] for row in rows], ["shop/web/app.yaml"])
        screenshot(self.driver, "configs")
        self.driver.find_element(By.LINK_TEXT, "shop/web/app.yaml").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "history")))
        self.assertEqual(self.driver.find_element(By.ID, "content").text, "port: 9090")
        history = self.driver.find_elements(By.CSS_SELECTOR, "#history tbody tr")
        self.assertEqual(len(history), 2)
        self.assertIn("new port", history[0].text)
        screenshot(self.driver, "config")
        # Content is text, never markup: the key's content shows its tag as written.
        self.open("/ui/configs/shop/db.yaml")
        self.assertIn("<script>alert(1)</script>", self.driver.find_element(By.ID, "content").text)
        self.assertEqual(self.driver.execute_script("return window.alerted === undefined"), True)

    def test_an_edit_refused_at_its_line_then_fixed_diffed_and_published(self):
        self.server.api("POST", "/v1/namespaces", '{"name":"edit"}')
        self.server.api("PUT", "/v1/config/edit/app.yaml", "port: 8080\nworkers: 4\n", content_type="text/plain")
        self.login(self.server.token)
        self.open("/ui/configs/edit/app.yaml")
        self.driver.find_element(By.ID, "edit").click()
        editor = self.wait.until(EC.presence_of_element_located((By.ID, "content")))
        editor.clear()
        editor.send_keys("port: [9090\nworkers: 4\n")
        self.driver.find_element(By.ID, "check").click()
        problem = self.wait.until(EC.presence_of_element_located((By.ID, "problem")))
        self.assertRegex(problem.text, r"line \d+, column \d+")
        screenshot(self.driver, "edit-refused")
        # Nothing was saved.
        self.assertEqual(self.server.api("GET", "/v1/config/edit/app.yaml")[1], "port: 8080\nworkers: 4\n")
        editor = self.driver.find_element(By.ID, "content")
        editor.clear()
        editor.send_keys("port: 9090\nworkers: 4\n")
        self.driver.find_element(By.ID, "comment").send_keys("move to 9090")
        self.driver.find_element(By.ID, "check").click()
        diff = self.wait.until(EC.presence_of_element_located((By.ID, "diff")))
        self.assertEqual([e.text for e in diff.find_elements(By.CSS_SELECTOR, ".del")], ["-port: 8080"])
        self.assertEqual([e.text for e in diff.find_elements(By.CSS_SELECTOR, ".add")], ["+port: 9090"])
        screenshot(self.driver, "edit-diff")
        self.driver.find_element(By.ID, "publish-button").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "history")))
        self.assertIn("Published as revision", self.driver.find_element(By.CSS_SELECTOR, ".flash").text)
        self.assertEqual(self.server.api("GET", "/v1/config/edit/app.yaml")[1], "port: 9090\nworkers: 4\n")
        history = self.server.api("GET", "/v1/history/edit/app.yaml")[1]["items"]
        self.assertEqual(history[0]["comment"], "move to 9090")

    def test_history_compare_and_rollback(self):
        self.server.api("POST", "/v1/namespaces", '{"name":"hist"}')
        first = self.server.api("PUT", "/v1/config/hist/app.yaml", "a: 1\nb: 2\nc: 3\n", content_type="text/plain")[1]["revision"]
        self.server.api("PUT", "/v1/config/hist/app.yaml", "a: 1\nb: 20\nc: 3\n", content_type="text/plain")
        self.login(self.server.token)
        self.open("/ui/configs/hist/app.yaml")
        self.driver.find_element(By.CSS_SELECTOR, "#compare button").click()
        diff = self.wait.until(EC.presence_of_element_located((By.ID, "diff")))
        self.assertEqual([e.text for e in diff.find_elements(By.CSS_SELECTOR, ".add, .del")], ["-b: 2", "+b: 20"])
        # The whole files are there, folded away until asked for.
        whole = self.driver.find_element(By.ID, "whole")
        self.assertFalse(whole.find_element(By.CSS_SELECTOR, "pre").is_displayed())
        whole.find_element(By.TAG_NAME, "summary").click()
        self.assertTrue(whole.find_element(By.CSS_SELECTOR, "pre").is_displayed())
        screenshot(self.driver, "compare")
        self.open("/ui/configs/hist/app.yaml")
        self.driver.execute_script("window.confirm = () => true")
        self.driver.find_element(By.ID, f"rollback-{first}").click()
        self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".flash.good")))
        self.assertEqual(self.server.api("GET", "/v1/config/hist/app.yaml")[1], "a: 1\nb: 2\nc: 3\n")
        self.assertEqual(self.driver.find_element(By.ID, "content").text, "a: 1\nb: 2\nc: 3")

    def test_a_job_run_from_the_form_with_live_output_from_two_agents(self):
        self.login(self.server.token)
        self.open("/ui/jobs")
        selector = self.driver.find_element(By.ID, "selector")
        selector.send_keys("role=web")
        self.wait.until(lambda d: d.find_element(By.ID, "picks").text.startswith("picks 2 nodes"))
        self.driver.find_element(By.ID, "command").send_keys("echo start; sleep 2; echo end")
        self.driver.find_element(By.ID, "shell").click()
        screenshot(self.driver, "job-form")
        self.driver.find_element(By.ID, "run-button").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "results")))
        # Live: the first line is on the page while the job still runs.
        self.wait.until(lambda d: "start" in d.find_element(By.ID, "output-web-1").text
                        and "start" in d.find_element(By.ID, "output-web-2").text)
        self.assertEqual(self.driver.find_element(By.ID, "job-state").text, "running")
        self.assertNotIn("end", self.driver.find_element(By.ID, "output-web-1").text)
        screenshot(self.driver, "job-live")
        # Then the whole output and the results table, once it is done.
        self.wait.until(lambda d: d.find_element(By.ID, "job-state").text == "succeeded")
        for name in ("web-1", "web-2"):
            self.assertEqual(self.driver.find_element(By.ID, f"output-{name}").text, "start\nend")
            self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, f"#node-{name} [data-part=exit]").text, "0")
        screenshot(self.driver, "job-done")
        # Run again: the same command, a new job.
        first = self.driver.current_url
        self.driver.find_element(By.ID, "run-again").click()
        self.wait.until(lambda d: d.current_url != first and "/ui/jobs/" in d.current_url)
        self.wait.until(lambda d: d.find_element(By.ID, "job-state").text == "succeeded")

    def test_a_running_job_is_cancelled_from_its_page(self):
        self.login(self.server.token)
        self.open("/ui/jobs")
        self.driver.find_element(By.ID, "command").send_keys("sleep 30")
        self.driver.find_element(By.ID, "run-button").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "cancel")))
        self.driver.execute_script("window.confirm = () => true")
        self.driver.find_element(By.ID, "cancel").click()
        self.wait.until(lambda d: d.find_element(By.ID, "job-state").text == "cancelled")
        self.assertEqual(self.driver.find_element(By.CSS_SELECTOR, "#node-web-1 [data-part=state]").text, "cancelled")

    def test_a_node_page_with_facts_charts_and_labels_edited(self):
        self.login(self.server.token)
        self.open("/ui/nodes")
        self.driver.find_element(By.LINK_TEXT, "web-1").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "facts")))
        self.assertIn("hostname", self.driver.find_element(By.ID, "facts").text)
        # Host metrics come every second here: two samples draw the charts (the page shows them
        # as they were when it was drawn, so it is drawn again until they are there).
        deadline = time.monotonic() + 20
        while not self.driver.find_elements(By.CSS_SELECTOR, "figure.chart polyline") and time.monotonic() < deadline:
            time.sleep(0.5)
            self.driver.refresh()
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR, "figure.chart polyline")), 3)
        self.driver.find_element(By.ID, "label-change").send_keys("tier=gold")
        self.driver.find_element(By.CSS_SELECTOR, "#relabel button").click()
        self.wait.until(lambda d: "tier=gold" in d.find_element(By.ID, "labels").text)
        screenshot(self.driver, "node")
        status, node = self.server.api("GET", "/v1/nodes/web-1")
        self.assertEqual(node["serverLabels"], {"tier": "gold"})
        self.driver.find_element(By.ID, "label-change").send_keys("tier-")
        self.driver.find_element(By.CSS_SELECTOR, "#relabel button").click()
        self.wait.until(lambda d: "tier=gold" not in d.find_element(By.ID, "labels").text)
        self.driver.find_element(By.ID, "label-change").send_keys("no spaces allowed=")
        self.driver.find_element(By.CSS_SELECTOR, "#relabel button").click()
        message = self.wait.until(EC.presence_of_element_located((By.ID, "message")))
        self.assertIn("label", message.text)

    def test_templates_show_each_nodes_state_and_failures_with_their_output(self):
        self.server.api("POST", "/v1/namespaces", '{"name":"tpl"}')
        self.server.api("PUT", "/v1/config/tpl/app.conf.mustache", "port {{port}}\n", content_type="text/plain")
        self.server.api("PUT", "/v1/config/tpl/app.yaml", "port: 80\n", content_type="text/plain")
        # The agents allow no path, so both refuse the file and say why.
        spec = ('{"selector":"role=web","source":"tpl/app.conf.mustache","data":["tpl/app.yaml"],"dest":"/etc/app.conf",'
                '"mode":420,"splayMilliseconds":0,"shell":false}')
        status, _ = self.server.api("PUT", "/v1/templates/app", spec)
        self.assertEqual(status, 200)
        self.login(self.server.token)
        self.open("/ui/templates/app")
        # The page follows the templates' reports as they come.
        self.wait.until(lambda d: "2 failed" in d.find_element(By.ID, "counts").text)
        errors = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, "#template-nodes pre.error-output")]
        self.assertEqual(len(errors), 2)
        self.assertIn("allow", errors[0])
        screenshot(self.driver, "template")
        self.open("/ui/templates")
        self.assertIn("app", self.driver.find_element(By.ID, "templates").text)
        screenshot(self.driver, "templates")

    def test_tokens_made_shown_once_and_revoked(self):
        self.login(self.server.token)
        self.open("/ui/access")
        Select = __import__("selenium.webdriver.support.select", fromlist=["Select"]).Select
        Select(self.driver.find_element(By.ID, "role")).select_by_visible_text("viewer")
        self.driver.find_element(By.ID, "description").send_keys("made in the console")
        self.driver.find_element(By.CSS_SELECTOR, "#create-token button").click()
        token = self.wait.until(EC.presence_of_element_located((By.ID, "new-token"))).text
        status, who = self.server.api("GET", "/v1/whoami", token=token)
        self.assertEqual((status, who["role"]["name"]), (200, "viewer"))
        screenshot(self.driver, "tokens")
        token_id = token.split("_")[1]
        self.open("/ui/access")
        self.assertNotIn(token, self.driver.page_source)
        self.driver.execute_script("window.confirm = () => true")
        self.driver.find_element(By.ID, f"revoke-{token_id}").click()
        self.wait.until(lambda d: not d.find_elements(By.ID, f"revoke-{token_id}"))
        self.assertEqual(self.server.api("GET", "/v1/whoami", token=token)[0], 401)
        for page in ("checks", "schedules"):
            self.open(f"/ui/{page}")
            self.assertEqual(self.driver.find_elements(By.ID, "message"), [])
            screenshot(self.driver, page)

    def test_the_node_list_redraws_itself_when_a_node_changes(self):
        self.login(self.server.token)
        self.open("/ui/nodes?selector=role%3Dweb")
        self.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nodes tbody tr")) == 2)
        self.assertIsNone(self.driver.find_element(By.TAG_NAME, "main").get_attribute("data-redrawn"))
        url = self.driver.current_url
        status, _ = self.server.api("POST", "/v1/nodes/web-2/labels", '{"set":{"zone":"live-b"},"remove":[]}')
        self.assertEqual(status, 200)
        # No reload, no polling: the page's event stream says "nodes" changed and it redraws.
        self.wait.until(lambda d: "zone=live-b" in d.find_element(By.ID, "nodes").text)
        self.assertEqual(self.driver.current_url, url)
        self.assertIsNotNone(self.driver.find_element(By.TAG_NAME, "main").get_attribute("data-redrawn"))
        self.server.api("POST", "/v1/nodes/web-2/labels", '{"set":{},"remove":["zone"]}')

    def test_a_rollout_started_from_an_edit_stepped_and_promoted_with_two_agents(self):
        self.server.api("POST", "/v1/namespaces", '{"name":"gray"}')
        self.server.api("PUT", "/v1/config/gray/app.yaml", "color: blue\n", content_type="text/plain")
        self.login(self.server.token)
        self.open("/ui/edit/gray/app.yaml")
        editor = self.wait.until(EC.presence_of_element_located((By.ID, "content")))
        editor.clear()
        editor.send_keys("color: green\n")
        self.driver.find_element(By.ID, "check").click()
        self.wait.until(EC.presence_of_element_located((By.ID, "candidate")))
        Select = __import__("selenium.webdriver.support.select", fromlist=["Select"]).Select
        Select(self.driver.find_element(By.ID, "rollout")).select_by_value("")
        self.driver.find_element(By.ID, "rollout-name").send_keys("green")
        self.driver.find_element(By.ID, "rollout-selector").send_keys("role=web")
        self.driver.find_element(By.ID, "rollout-steps").send_keys("50,100")
        screenshot(self.driver, "rollout-from-edit")
        self.driver.find_element(By.ID, "publish-candidate").click()
        self.wait.until(lambda d: d.find_element(By.ID, "rollout-state").text == "running")
        self.assertIn("1 of 2", self.driver.find_element(By.ID, "rollout-step").text)
        members = [row.get_attribute("id") for row in self.driver.find_elements(By.CSS_SELECTOR, "#rollout-nodes tr.member")]
        self.assertEqual(len(members), 1)
        member = members[0].removeprefix("rollout-node-")
        other = "web-2" if member == "web-1" else "web-1"
        # An identified reader sees what its node would: the member the candidate, the other main.
        def read(name):
            request = urllib.request.Request(self.server.url + "/v1/config/gray/app.yaml",
                                             headers={"Authorization": f"Bearer {self.server.token}", "X-Capstan-Client": f"{name}; role=web"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read().decode()
        self.assertEqual(read(member), "color: green\n")
        self.assertEqual(read(other), "color: blue\n")
        screenshot(self.driver, "rollout")
        self.driver.find_element(By.ID, "rollout-step-button").click()
        self.wait.until(lambda d: "2 of 2" in d.find_element(By.ID, "rollout-step").text)
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR, "#rollout-nodes tr.member")), 2)
        self.driver.execute_script("window.confirm = () => true")
        self.driver.find_element(By.ID, "rollout-promote").click()
        self.wait.until(lambda d: d.find_element(By.ID, "rollout-state").text == "promoted")
        self.assertEqual(self.server.api("GET", "/v1/config/gray/app.yaml")[1], "color: green\n")
        screenshot(self.driver, "rollout-promoted")
        self.open("/ui/configs/gray/app.yaml")
        self.assertIn("promoted from rollout green", self.driver.find_element(By.ID, "history").text)

    def test_nodes_and_audit_pages(self):
        self.login(self.server.token)
        self.open("/ui/nodes?selector=role%3Dweb")
        self.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nodes tbody tr.healthy")) == 2)
        screenshot(self.driver, "nodes")
        self.open("/ui/nodes?selector=role+in+(")
        self.assertIn("selector", self.driver.find_element(By.CSS_SELECTOR, ".flash.error").text)
        self.open("/ui/audit")
        self.assertIn("checks out", self.driver.find_element(By.ID, "verify").text)
        screenshot(self.driver, "audit")

    def test_a_read_only_token_sees_no_forbidden_pages(self):
        token = self.server.token_with("reader", ["config:shop/:read", "namespace::read"])
        self.login(token)
        links = [a.text for a in self.driver.find_elements(By.CSS_SELECTOR, "header nav a")]
        self.assertEqual(links, ["Overview", "Configs", "Rollouts"])
        self.server.api("POST", "/v1/namespaces", '{"name":"shop"}')
        self.server.api("PUT", "/v1/config/shop/ro.yaml", "a: 1\n", content_type="text/plain")
        self.server.api("PUT", "/v1/config/shop/ro.yaml", "a: 2\n", content_type="text/plain")
        self.open("/ui/configs/shop/ro.yaml")
        self.assertEqual(self.driver.find_elements(By.ID, "edit"), [])
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "#history form"), [])
        screenshot(self.driver, "read-only-key")
        # A forged form with the session's own CSRF token is still refused by the role.
        csrf = self.driver.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
        session = self.driver.get_cookie("capstan_session")["value"]
        data = urllib.parse.urlencode({"csrf": csrf, "base": "0", "content": "a: 3\n", "step": "publish"}).encode()
        request = urllib.request.Request(
            self.server.url + "/ui/edit/shop/ro.yaml", data=data, method="POST",
            headers={"Cookie": f"capstan_session={session}", "Content-Type": "application/x-www-form-urlencoded"})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(refused.exception.code, 403)
        self.assertEqual(self.server.api("GET", "/v1/config/shop/ro.yaml")[1], "a: 2\n")
        self.open("/ui/audit")
        self.assertIn("may not read", self.driver.find_element(By.ID, "message").text)
        screenshot(self.driver, "forbidden")

    def test_forms_without_their_csrf_token_are_refused(self):
        self.login(self.server.token)
        session = self.driver.get_cookie("capstan_session")["value"]
        # A forged logout (another site's form) carries the cookie but not the page's token.
        request = urllib.request.Request(
            self.server.url + "/ui/logout", data=b"csrf=guess", method="POST",
            headers={"Cookie": f"capstan_session={session}", "Content-Type": "application/x-www-form-urlencoded"})
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(refused.exception.code, 403)
        # The session still works: the forged form changed nothing.
        self.open("/ui/")
        self.wait.until(EC.presence_of_element_located((By.ID, "logout")))
        # A login form without the value of its own cookie is refused too.
        data = urllib.parse.urlencode({"token": self.server.token, "csrf": "guess"}).encode()
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(self.server.url + "/ui/login", data=data, method="POST"), timeout=10)
        self.assertEqual(refused.exception.code, 403)

    def test_every_console_answer_carries_the_security_headers(self):
        for path in ["/ui/login", "/ui/static/console.css", "/ui/static/console.js"]:
            with urllib.request.urlopen(self.server.url + path, timeout=10) as response:
                policy = response.headers["Content-Security-Policy"]
                self.assertIn("frame-ancestors 'none'", policy)
                self.assertIn("script-src 'self'", policy)
                self.assertNotIn("unsafe-inline", policy)
                self.assertEqual(response.headers["X-Content-Type-Options"], "nosniff")
        # No page carries inline script or style (the policy would block them anyway).
        with urllib.request.urlopen(self.server.url + "/ui/login", timeout=10) as response:
            html = response.read().decode()
        self.assertNotRegex(html, r"<script(?![^>]*\bsrc=)")
        self.assertNotIn("style=", html)


class DevLoginTests(unittest.TestCase):
    def test_the_dev_link_logs_in_once(self):
        home = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"capstan-dev-home-{os.getpid()}")
        port = free_port()
        server = Process([binary(), "server", "--dev", "--listen", f"127.0.0.1:{port}"],
                         env={"CAPSTAN_CREDENTIALS": os.path.join(home, "credentials.json")})
        driver = browser()
        try:
            link = server.wait_for_line(r"Console: (http://\S+/ui/login\?code=\S+)").group(1)
            driver.get(link)
            WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.ID, "logout")))
            self.assertTrue(driver.current_url.endswith("/ui/"), driver.current_url)
            driver.delete_all_cookies()
            driver.get(link)
            self.assertIn("used already", driver.find_element(By.ID, "login-error").text)
        finally:
            driver.quit()
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
