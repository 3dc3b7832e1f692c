"""Screenshots of the demo's pages, rendered in headless Chromium, into docs/.

    make demo          # the pages: build/demo
    make screenshots   # this script

For each assignment, the feedback page of one of the demo's students who made the
assignment's typical mistake, at the part where the figures show it; and the class report
of nn_from_scratch. Chromium is Debian's (apt install chromium); it is driven through its
DevTools protocol (websocket-client, which Jupyter installs), so that the page can be
scrolled to the figure and cut there.
"""

import base64
import json
import shutil
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
# (assignment, student, the part whose test cell the picture starts at)
FEEDBACK = [("nn_from_scratch", "cho", "train_step"), ("single_neuron", "cho", "linear"),
            ("autograd_basics", "dev", "sgd_step"), ("two_layer_net", "cho",
                                                     "relu_grad_vectorized")]
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

    def screenshot(self, page: Path, target: Path, start_at_text: str | None) -> None:
        """The page from the element showing start_at_text (or its top), WIDTH wide and at
        most HEIGHT high."""
        self.call("Page.navigate", url=page.as_uri())
        time.sleep(2)  # the page's own scripts (MathJax, the notebook's styles) settle
        top = 0
        if start_at_text:
            found = self.call("Runtime.evaluate",
                              expression=FIND_PART % json.dumps(start_at_text),
                              returnByValue=True)
            top = max(0, found["result"].get("value", 0))
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


def main() -> None:
    if not (DEMO / "reports").is_dir():
        sys.exit(f"No demo pages in {DEMO}: run `make demo` first.")
    browser = Browser()
    try:
        for assignment, student, part in FEEDBACK:
            page = DEMO / "course" / "feedback" / student / assignment / f"{assignment}.html"
            browser.screenshot(page, DOCS / f"feedback-{assignment}.png", part)
        browser.screenshot(DEMO / "reports" / "nn_from_scratch.html",
                           DOCS / "class-report-nn_from_scratch.png", None)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
