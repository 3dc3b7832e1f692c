"""Screenshots of the demo's pages, rendered in headless Chromium, into docs/.

    make demo          # the pages: build/demo
    make screenshots   # this script

For each assignment, the feedback page of one of the demo's students who made the
assignment's typical mistake, at the part where the figures show it, and nn_from_scratch's
gradient check and two moons; the class report of nn_from_scratch; and a written answer as
the formgrader shows it to the person who grades it (a jupyter server in the demo's course,
on loopback). Chromium is Debian's (apt install chromium); it is driven through its
DevTools protocol (websocket-client, which Jupyter installs), so that the page can be
scrolled to the figure and cut there.
"""

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

DOCS = Path(__file__).resolve().parent
DEMO = DOCS.parent / "build" / "demo"
WIDTH, HEIGHT = 1100, 1800
# (picture, assignment, student, the part whose test cell the picture starts at)
FEEDBACK = [("feedback-nn_from_scratch", "nn_from_scratch", "cho", "train_step"),
            ("feedback-gradient_check", "nn_from_scratch", "cho", "gradient_check"),
            ("feedback-two_moons", "nn_from_scratch", "cho", "learn_2d"),
            ("feedback-single_neuron", "single_neuron", "cho", "linear"),
            ("feedback-autograd_basics", "autograd_basics", "dev", "sgd_step"),
            ("feedback-two_layer_net", "two_layer_net", "cho", "relu_grad_vectorized"),
            ("feedback-autograd_from_scratch", "autograd_from_scratch", "cho", "backward")]
# (assignment, student, the written answer's grade id) for the formgrader's picture
WRITTEN = ("nn_from_scratch", "ada", "kink_written")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--hide-scrollbars",
                  "--disable-component-update", "--disable-sync", "--remote-debugging-port=0"]
# The top of the student's answer that a part's test cell checks: nbgrader's feedback page
# names each cell with an anchor, the test cell by its grade id and an answer "comment-ID".
FIND_PART = """(() => {
  const anchors = [...document.querySelectorAll('a[name]')];
  const test = anchors.findIndex(a => a.name === %s);
  const answer = anchors.slice(0, test).reverse().find(a => a.name.startsWith('comment-'));
  const cell = answer || anchors[test];
  return cell ? cell.getBoundingClientRect().top + window.scrollY - 40 : 0;
})()"""
# The top of the cell before the one that holds a grade's score field (the question), in the
# formgrader's submission page.
FIND_GRADE = """(() => {
  const field = document.getElementById(%s);
  const answer = field && field.closest('.cell, .jp-Cell');
  const cell = answer && (answer.previousElementSibling || answer);
  return cell ? cell.getBoundingClientRect().top + window.scrollY - 40 : 0;
})()"""


class Browser:
    """One headless Chromium and one page of it, driven over the DevTools protocol."""

    def __init__(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if not chromium:
            sys.exit("Chromium is missing: install Debian's chromium (apt install chromium).")
        self.profile = tempfile.mkdtemp(prefix="screenshots-")
        self.process = subprocess.Popen([chromium, *CHROMIUM_FLAGS,
                                         f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        for _ in range(200):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"],
                                                  suppress_origin=True)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply.get("result", {}).get("value")

    def open(self, url: str, ready: str = "true", timeout: float = 20) -> None:
        """Go to url and wait until it has loaded and the expression ready is true (the
        page's own scripts, MathJax say, have done their work)."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"document.readyState === 'complete' && !!({ready})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} was not ready ({ready}) after {timeout} s")
            time.sleep(0.1)

    def screenshot(self, url: str, target: Path, find_top: str | None = None) -> None:
        """The page from the height the expression find_top gives (or its top), WIDTH wide
        and at most HEIGHT high."""
        self.call("Page.navigate", url=url)
        time.sleep(2)  # the page's own scripts (MathJax, the notebook's styles) settle
        top = max(0, self.evaluate(find_top) or 0) if find_top else 0
        length = self.call("Runtime.evaluate", returnByValue=True,
                           expression="document.body.scrollHeight + 16")
        height = min(HEIGHT, length["result"]["value"] - top)  # no blank below a short page
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": top, "width": WIDTH, "height": height, "scale": 1})
        target.write_bytes(base64.b64decode(shot["data"]))
        print(f"wrote {target}")

    def close(self) -> None:
        self.socket.close()
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Formgrader:
    """A jupyter server with nbgrader's formgrader in a course, on loopback, token auth."""

    def __init__(self, course: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.token, self.url = secrets.token_hex(16), f"http://127.0.0.1:{port}"
        bin_dir = Path(sys.executable).parent
        self.runtime = tempfile.mkdtemp(prefix="formgrader-")  # the server's files about itself
        self.process = subprocess.Popen(
            [str(bin_dir / "jupyter"), "server", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={course}",
             "--ServerApp.jpserver_extensions={'autograder.formgrader_guard': True}"],
            cwd=course, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                 "JUPYTER_RUNTIME_DIR": self.runtime})
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=1)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("the jupyter server with the formgrader did not "
                                       "start") from None
                time.sleep(0.2)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.runtime, ignore_errors=True)


def written_answer(browser: Browser, course: Path, target: Path) -> None:
    """The formgrader's page of a submission, at the written answer a person grades."""
    from nbgrader.api import Gradebook

    assignment, student, grade_id = WRITTEN
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gradebook:
        submission = gradebook.find_submission_notebook(assignment, assignment, student).id
    formgrader = Formgrader(course)
    try:
        browser.open(f"{formgrader.url}/formgrader?token={formgrader.token}")  # its cookie
        browser.screenshot(f"{formgrader.url}/formgrader/submissions/{submission}/", target,
                           FIND_GRADE % json.dumps(grade_id))
    finally:
        formgrader.close()


def main() -> None:
    if not (DEMO / "reports").is_dir():
        sys.exit(f"No demo pages in {DEMO}: run `make demo` first.")
    browser = Browser()
    try:
        for picture, assignment, student, part in FEEDBACK:
            page = DEMO / "course" / "feedback" / student / assignment / f"{assignment}.html"
            browser.screenshot(page.as_uri(), DOCS / f"{picture}.png",
                               FIND_PART % json.dumps(part))
        browser.screenshot((DEMO / "reports" / "nn_from_scratch.html").as_uri(),
                           DOCS / "class-report-nn_from_scratch.png")
        written_answer(browser, DEMO / "course", DOCS / "formgrader-written_answer.png")
    except RuntimeError as error:
        sys.exit(f"screenshots: {error}")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
