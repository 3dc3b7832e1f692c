"""A person at Chromium on the hub (Selenium with Debian's chromium-driver), and a student's
steps in JupyterLab: tests/test_hub.py and bench/hub_latency.py."""

import contextlib
import io
import json
import pwd
import shutil
import sys
import time
from pathlib import Path

from autograder.hub import ASSIGNMENT, REPO, Hub

KEY = json.loads((REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
PARTS = ("sigmoid_activation_answer", "forward_answer")  # what the student types in
WRITTEN = "A kink: the difference quotient straddles it, so it is off by design."
WIDTH, HEIGHT, SHOT_WIDTH = 1280, 860, 960
KERNEL_IDLE = """[...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some(e => /\\| Idle/.test(e.textContent))"""
CHECKS_SHOWN = """(() => { const out = [...document.querySelectorAll(
    '.jp-Notebook .jp-OutputArea-output')].map(o => o.textContent)
    .filter(t => t.includes('✔')); return out.length >= 2 && out; })()"""


def answer(grade_id: str) -> str:
    """The answer key's cell, without nbgrader's solution markers."""
    cell = next(c for c in KEY["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
                == grade_id)
    return "".join(line for line in "".join(cell["source"]).splitlines(keepends=True)
                   if "### " not in line).rstrip()


class Person:
    """Someone at a browser: Chromium, logged in to the hub as one account."""

    def __init__(self, hub: Hub, name: str, shots: Path | None = None, start: str = "/hub/"):
        """Chromium at start (a hub page or a user's), then the hub's login page it leads to;
        logged in as name."""
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                       options=options)
        self.hub, self.name, self.shots = hub, name, shots
        self.get(start)
        self.find("#username_input").send_keys(name)
        self.find("#password_input").send_keys(hub.accounts[name])
        self.find("#login_submit").click()

    def get(self, path: str) -> None:
        self.driver.get(self.hub.url + path)

    def failed(self, what: str, timeout: float) -> AssertionError:
        """A step that did not happen in time: what, where the browser was, and the ends of
        the hub's and the grading service's logs."""
        return AssertionError(f"{self.name}: {what} not seen in {timeout:.0f} s (at "
                              f"{self.driver.current_url})\n{self.hub.logs()}")

    def until(self, condition, what: str, timeout: float, every: float = 0.1):
        """Selenium's wait for condition (tried every so many seconds); a timeout fails with
        `failed`."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        # JupyterLab redraws its lists: an element found a moment ago may be gone; look again.
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=every,
                                 ignored_exceptions=(StaleElementReferenceException,)
                                 ).until(condition)
        except TimeoutException:
            raise self.failed(what, timeout) from None

    def find(self, css: str, timeout: float = 60):
        from selenium.webdriver.support import expected_conditions as seen

        return self.until(seen.element_to_be_clickable(("css selector", css)), css, timeout)

    def find_text(self, text: str, tag: str = "*", timeout: float = 60):
        """The visible element tag whose own text is text."""
        from selenium.webdriver.support import expected_conditions as seen

        return self.until(seen.element_to_be_clickable(
            ("xpath", f"//{tag}[normalize-space(text())={json.dumps(text)}]")),
            f"{tag} {text!r}", timeout)

    def wait(self, script: str, timeout: float = 120, args=()):
        """Until the JavaScript expression script is truthy (arguments[i] are args); its
        value."""
        return self.until(lambda driver: driver.execute_script(f"return {script}", *args),
                          script, timeout)

    def lab(self) -> None:
        """Wait until JupyterLab has started (the server spawned, the shell drawn)."""
        self.find("#jp-main-dock-panel", timeout=180)
        self.wait("!document.querySelector('#jupyterlab-splash')")

    def menu(self, *labels: str) -> None:
        self.find_text(labels[0], "div[contains(@class,'lm-MenuBar-itemLabel')]").click()
        for label in labels[1:]:
            self.find_text(label, "div[contains(@class,'lm-Menu-itemLabel')]").click()

    def keys(self, key: str, modifier: str | None = None, times: int = 1) -> None:
        """Press key (with modifier held down) times, as the focused element gets it."""
        from selenium.webdriver.common.action_chains import ActionChains

        for _ in range(times):
            chain = ActionChains(self.driver)
            if modifier:
                chain.key_down(modifier)
            chain.send_keys(key)
            if modifier:
                chain.key_up(modifier)
            chain.perform()

    def type_into_cell(self, starts_with: str, text: str) -> None:
        """Click into the notebook cell whose source (or rendered markdown) starts so, select
        it all, type text."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        cell = self.wait(f"""[...document.querySelectorAll('.jp-Notebook .jp-Cell')].find(c =>
            [c.querySelector('.cm-content'), c.querySelector('.jp-MarkdownOutput')]
            .some(e => e && e.textContent.trim().startsWith({json.dumps(starts_with)})))""")
        for _ in range(5):  # the notebook lays cells out as they scroll in: aim again
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
            self.settled(cell)
            rendered = cell.find_elements("css selector", ".jp-MarkdownOutput")
            if not (rendered and rendered[0].is_displayed()):
                break
            ActionChains(self.driver).double_click(rendered[0]).perform()  # opens markdown
        editor = cell.find_element("css selector", ".cm-content")
        self.wait("arguments[0].offsetParent", args=(editor,))
        editor.click()
        self.keys("a", Keys.CONTROL)
        # Typed as one input, as a paste is: the editor adds no indentation of its own.
        self.driver.execute_cdp_cmd("Input.insertText", {"text": text})

    def settled(self, element, timeout: float = 10) -> None:
        """Until element stays where it is for a poll."""
        where = [None]

        def still(driver) -> bool:
            now = driver.execute_script("return arguments[0].getBoundingClientRect().top",
                                        element)
            before, where[0] = where[0], now
            return now == before

        self.until(still, "the element settled", timeout)

    def terminal(self, command: str) -> None:
        """Type command into a new JupyterLab terminal."""
        from selenium.webdriver.common.keys import Keys

        self.menu("File", "New", "Terminal")
        self.find(".jp-Terminal .xterm-screen").click()
        self.keys(command + Keys.ENTER)

    def shot(self, name: str) -> None:
        """SHOTS/hub-NAME.png, small: scaled to SHOT_WIDTH, 256 colours (none without
        SHOTS)."""
        from PIL import Image

        if self.shots is None:
            return
        self.driver.execute_async_script(  # what the page drew last is painted
            "requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        image = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        image = image.resize((SHOT_WIDTH, round(image.height * SHOT_WIDTH / image.width)))
        image.quantize(256).save(self.shots / f"hub-{name}.png", optimize=True)

    def close(self) -> None:
        """Quit Chromium; if a step failed, its screen is in /tmp/hub-NAME-failed.png."""
        if sys.exc_info()[0] is not None:
            self.driver.save_screenshot(f"/tmp/hub-{self.name}-failed.png")
        self.driver.quit()


def start_work(person: Person) -> list[str]:
    """Fetch nn_from_scratch in the Assignments tab, open it, type two parts and the written
    answer, run the notebook through Part 2's check, save; the checks' verdicts."""
    from selenium.webdriver.common.keys import Keys

    person.lab()
    person.menu("Nbgrader", "Assignment List")
    person.find_text("Fetch", "button").click()
    person.find("a.assignment-notebooks-link").click()
    person.shot("1-student-assignments")
    person.find_text(ASSIGNMENT, "div[contains(@class,'collapse')]//a").click()
    person.find(".jp-NotebookPanel .jp-CodeCell .cm-content")
    for part in PARTS:
        code = answer(part)
        person.type_into_cell(code.splitlines()[0], code)
    person.type_into_cell("YOUR ANSWER HERE", WRITTEN)
    # From the first code cell through Part 2's check, as Shift+Enter nine times runs them,
    # once the kernel is idle; again if it lost them (a kernel restarted while starting).
    for attempt in range(2):
        person.wait(KERNEL_IDLE)
        person.find(".jp-Notebook .jp-CodeCell .jp-InputPrompt").click()
        person.keys(Keys.ENTER, Keys.SHIFT, times=9)
        try:
            checks = person.wait(CHECKS_SHOWN, timeout=60)
            break
        except AssertionError:
            if attempt:
                raise
    person.shot("2-student-visible-checks")
    person.keys("s", Keys.CONTROL)
    # Saved: on disk, and its tab no longer marked dirty (the save has taken the file's new
    # hash). Validate saves again; begun before this save ends, its save finds a hash it did
    # not write and asks "File Changed": overwrite or revert.
    saved = Path(pwd.getpwnam(person.name).pw_dir) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    person.until(lambda driver: WRITTEN in saved.read_text(), "the notebook saved", 60)
    person.wait("!document.querySelector('.lm-TabBar-tab.jp-mod-dirty')")
    return checks


def submit_until_feedback(person: Person, earlier: int, timeout: float = 120) -> float:
    """In the Assignments tab, click Submit, then Fetch Feedback until the submission's
    "(view feedback)" shows (earlier submissions have theirs); the seconds it took."""
    from selenium.common.exceptions import StaleElementReferenceException

    person.find_text("Assignments", "div[contains(@class,'lm-TabBar-tabLabel')]").click()
    person.find_text("Submit", "button").click()
    clicked = time.monotonic()
    shown = "//a[contains(., 'view feedback')]"

    def shown_else_fetch(driver) -> bool:
        if len(driver.find_elements("xpath", shown)) > earlier:
            return True
        with contextlib.suppress(StaleElementReferenceException):  # the list was redrawn
            person.find_text("Fetch Feedback", "button").click()
        return False

    person.until(shown_else_fetch, "the submission's \"(view feedback)\"", timeout, every=0.2)
    return time.monotonic() - clicked
