"""Real processes for the console's browser tests: a capstan server, agents, and Chromium.

Everything listens on 127.0.0.1 on free ports and is stopped by the test that started it.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCREENSHOTS = os.environ.get("CAPSTAN_SCREENSHOTS", os.path.join(ROOT, ".build", "screenshots"))


def binary():
    """The built capstan binary (scripts/test.sh builds it before these tests run)."""
    path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(path, "capstan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output is collected line by line; lines are awaited, not slept on."""

    def __init__(self, args, env=None):
        self.lines = []
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for_line(self, pattern, timeout=60):
        """The first match of `pattern` in a whole output line; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self.changed:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines[-40:]))
                self.changed.wait(min(left, 1))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


class Server:
    """`capstan server` over plain HTTP with a known root token, in a temporary directory."""

    def __init__(self, extra=()):
        self.directory = tempfile.mkdtemp(prefix="capstan-console-")
        self.token = "console-test-root-token-0123456789"
        token_file = os.path.join(self.directory, "root-token")
        with open(token_file, "w") as f:
            f.write(self.token)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([
            binary(), "server", "--plain-http", "--data-dir", os.path.join(self.directory, "data"), "--listen", f"127.0.0.1:{self.port}",
            "--root-token-file", token_file, "--heartbeat-interval", "1s", "--metrics-interval", "1s", "--rate-limit-api", "0", *extra])
        self.join_token = self.process.wait_for_line(r"agents join with: .* --join-token (\S+)").group(1)

    def api(self, method, path, body=None, token=None, content_type="application/json"):
        """One API call with the root token (or `token`); answers (status, parsed JSON or text)."""
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            status = error.code
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def token_with(self, role, rules):
        """A new token of a new role with `rules`."""
        status, _ = self.api("PUT", f"/v1/roles/{role}", json.dumps({"rules": rules}))
        assert status == 200, status
        status, created = self.api("POST", "/v1/tokens", json.dumps({"role": role, "description": f"{role} in the browser"}))
        assert status == 201, created
        return created["token"]

    def agent(self, name, labels=()):
        """A real agent process joined to this server."""
        args = [binary(), "agent", "--server", self.url, "--join-token", self.join_token, "--name", name,
                "--data-dir", os.path.join(self.directory, "agent-" + name)]
        for label in labels:
            args += ["--label", label]
        process = Process(args)
        process.wait_for_line(r"\] connected$")
        return process

    def stop(self):
        self.process.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def browser():
    """Debian's Chromium, headless, driven by its chromedriver (never a downloaded browser)."""
    options = Options()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    return driver


def screenshot(driver, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SCREENSHOTS, name + ".png"))
