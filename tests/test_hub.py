"""A course day on a real JupyterHub, clicked through in Debian's Chromium (Selenium with
chromium-driver): the hub `make hub` starts (autograder/hub.py, the same code), with real
unix accounts logging in through PAM, a PostgreSQL gradebook, nbgrader's extensions and
the grading service as a hub-managed service.

A student logs in, fetches nn_from_scratch in the Assignments tab, types two parts into the
notebook, runs their visible checks, validates, submits and fetches the feedback the
service released; another student cannot reach it by URL. The instructor grades the
written answer in the formgrader, autogrades the submission with its button, writes the
class report and exports the grades in a terminal. Each step leaves a screenshot in docs/.
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.hub import ASSIGNMENT, ENV, REPO, Hub, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("chromedriver"),
    reason="needs root (unix accounts) and Debian's chromium-driver (apt install "
           "chromium-driver)")]

DOCS = REPO / "docs"
KEY = json.loads((REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
PARTS = ("sigmoid_activation_answer", "forward_answer")  # what the student types in
WRITTEN = "A kink: the difference quotient straddles it, so it is off by design."
WIDTH, HEIGHT, SHOT_WIDTH = 1280, 860, 960


def answer(grade_id: str) -> str:
    """The answer key's cell, without nbgrader's solution markers."""
    cell = next(c for c in KEY["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
                == grade_id)
    return "".join(line for line in "".join(cell["source"]).splitlines(keepends=True)
                   if "### " not in line).rstrip()


@pytest.fixture(scope="module")
def hub():
    run_dir = Path(tempfile.mkdtemp(prefix="hub-test-", dir="/tmp"))
    hub = Hub(run_dir, port=free_port(), prefix="bpt-")
    try:
        hub.setup(say=lambda line: None)
        with open(run_dir / "hub.log", "w") as log:
            hub.start(log)
        yield hub
    finally:
        hub.stop()
        hub.remove_accounts()
        shutil.rmtree(run_dir, ignore_errors=True)


class Person:
    """Someone at a browser: Chromium, logged in to the hub as one account."""

    def __init__(self, hub: Hub, name: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                                       options=options)
        self.hub, self.name = hub, name
        self.get("/hub/login")
        self.find("#username_input").send_keys(name)
        self.find("#password_input").send_keys(hub.accounts[name])
        self.find("#login_submit").click()

    def get(self, path: str) -> None:
        self.driver.get(self.hub.url + path)

    def find(self, css: str, timeout: float = 60):
        from selenium.webdriver.support import expected_conditions as seen
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(
            seen.element_to_be_clickable(("css selector", css)))

    def find_text(self, text: str, tag: str = "*", timeout: float = 60):
        """The visible element tag whose own text is text."""
        from selenium.webdriver.support import expected_conditions as seen
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(seen.element_to_be_clickable(
            ("xpath", f"//{tag}[normalize-space(text())={json.dumps(text)}]")))

    def wait(self, script: str, timeout: float = 120, every: float = 0.2, args=()):
        """Until the JavaScript expression script is truthy (arguments[i] are args); its
        value."""
        deadline = time.monotonic() + timeout
        while not (value := self.driver.execute_script(f"return {script}", *args)):
            assert time.monotonic() < deadline, f"{self.name}: not seen in {timeout} s: {script}"
            time.sleep(every)
        return value

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
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        rendered = cell.find_elements("css selector", ".jp-MarkdownOutput")
        if rendered and rendered[0].is_displayed():  # a markdown cell opens on a double-click
            ActionChains(self.driver).double_click(rendered[0]).perform()
        editor = cell.find_element("css selector", ".cm-content")
        self.wait("arguments[0].offsetParent", every=0.1, args=(editor,))
        editor.click()
        self.keys("a", Keys.CONTROL)
        # Typed as one input, as a paste is: the editor adds no indentation of its own.
        self.driver.execute_cdp_cmd("Input.insertText", {"text": text})

    def terminal(self, command: str) -> None:
        """Type command into a new JupyterLab terminal."""
        from selenium.webdriver.common.keys import Keys

        self.menu("File", "New", "Terminal")
        self.find(".jp-Terminal .xterm-helper-textarea").send_keys(command + Keys.ENTER)

    def shot(self, name: str) -> None:
        """docs/hub-NAME.png, small: scaled to SHOT_WIDTH, 256 colours."""
        from PIL import Image

        image = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        image = image.resize((SHOT_WIDTH, round(image.height * SHOT_WIDTH / image.width)))
        image.quantize(256).save(DOCS / f"hub-{name}.png", optimize=True)

    def close(self) -> None:
        """Quit Chromium; if a step failed, its screen is in /tmp/hub-NAME-failed.png."""
        if sys.exc_info()[0] is not None:
            self.driver.save_screenshot(f"/tmp/hub-{self.name}-failed.png")
        self.driver.quit()


@pytest.fixture(scope="module")
def student_day(hub):
    """ada's day in the browser; what she saw, and the seconds from Submit to feedback."""
    from selenium.webdriver.common.keys import Keys

    ada = Person(hub, hub.students[0])
    try:
        ada.lab()
        ada.menu("Nbgrader", "Assignment List")
        ada.find_text("Fetch", "button").click()
        ada.find("a.assignment-notebooks-link").click()
        ada.shot("1-student-assignments")
        ada.find_text(ASSIGNMENT, "div[contains(@class,'collapse')]//a").click()
        ada.find(".jp-NotebookPanel .jp-CodeCell .cm-content")
        for part in PARTS:
            code = answer(part)
            ada.type_into_cell(code.splitlines()[0], code)
        ada.type_into_cell("YOUR ANSWER HERE", WRITTEN)
        # Run the notebook from the top through Part 2's check, as Shift+Enter would.
        ada.find(".jp-Notebook .jp-CodeCell .jp-InputPrompt").click()
        ada.keys(Keys.ENTER, Keys.SHIFT, times=9)
        checks = ada.wait("""(() => { const out = [...document.querySelectorAll(
            '.jp-Notebook .jp-OutputArea-output')].map(o => o.textContent)
            .filter(t => t.includes('✔')); return out.length >= 2 && out; })()""")
        ada.shot("2-student-visible-checks")
        ada.keys("s", Keys.CONTROL)
        ada.find(".validate-button .jp-ToolbarButtonComponent-label").click()
        validated = ada.find(".jp-Dialog-content", timeout=180).text
        ada.shot("3-student-validate")
        ada.keys(Keys.ESCAPE)
        ada.find_text("Assignment List", "div[contains(@class,'lm-TabBar-tabLabel')]").click()
        ada.find_text("Submit", "button").click()
        clicked = time.monotonic()
        ada.find_text("Fetch Feedback", "button").click()
        while not ada.driver.find_elements("xpath", "//a[contains(., 'view feedback')]"):
            assert time.monotonic() - clicked < 120, "no feedback 120 s after Submit"
            ada.find_text("Fetch Feedback", "button").click()
            time.sleep(0.3)
        seconds = time.monotonic() - clicked
        ada.shot("4-student-feedback-fetched")
        ada.find_text("(view feedback)", "a").click()
        ada.find_text(f"{ASSIGNMENT}.html", "span").click()
        yield {"checks": checks, "validated": validated, "seconds": seconds}
    finally:
        ada.close()


def test_student_fetches_works_validates_submits_and_gets_feedback(hub, student_day):
    assert len(student_day["checks"]) >= 2, student_day["checks"]
    print(f"submit click -> feedback shown: {student_day['seconds']:.1f} s")
    assert student_day["seconds"] < 60


def test_another_student_cannot_reach_the_feedback(hub, student_day):
    ada, bob = hub.students[0], hub.students[1]
    pages = sorted((Path("/home") / ada / ASSIGNMENT / "feedback").glob("*/*.html"))
    assert pages, "ada has no feedback"
    relative = pages[0].relative_to(Path("/home") / ada)
    person = Person(hub, bob)
    try:
        person.find("body")
        for path in (f"/user/{ada}/files/{relative}", f"/user/{bob}/files/../{ada}/{relative}"):
            person.get(path)
            time.sleep(2)
            page = person.driver.page_source
            assert "sigmoid_activation" not in page, path
    finally:
        person.close()


def test_students_read_the_kit_not_the_grader(hub):
    student = hub.students[1]
    python = f"{ENV}/venv/bin/python"
    kit = subprocess.run(["runuser", "-u", student, "--", python, "-c",
                          "import autograder.kit.notebook"], capture_output=True, text=True)
    assert kit.returncode == 0, kit.stderr
    grader = subprocess.run(["runuser", "-u", student, "--", python, "-c",
                             "import autograder.assignments.nn_from_scratch"],
                            capture_output=True, text=True)
    assert "PermissionError" in grader.stderr


def test_instructor_grades_autogrades_reports_and_exports(hub, student_day):
    from nbgrader.api import Gradebook
    from selenium.webdriver.common.keys import Keys

    ada = hub.students[0]
    grader = Person(hub, hub.grader)
    try:
        grader.lab()
        grader.menu("Nbgrader", "Formgrader")
        grader.find("iframe", timeout=60)
        grader.shot("5-instructor-formgrader")
        grader.get(f"/user/{hub.grader}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
        grader.find("a.name-hidden").click()
        score = grader.find("input#kink_written")
        score.send_keys("1", Keys.TAB)
        grader.wait("document.querySelector('.score-saved') && "
                    "getComputedStyle(document.querySelector('.score-saved')).display != 'none'"
                    " || true")
        time.sleep(1)
        grader.shot("6-instructor-written-answer")
        grader.get(f"/user/{hub.grader}/formgrader/manage_submissions/{ASSIGNMENT}")
        grader.find("td.autograde a").click()
        grader.find_text("Success", "h4", timeout=180)
        grader.shot("7-instructor-autograde")
        grader.keys(Keys.ESCAPE)
        grader.get(f"/user/{hub.grader}/lab")
        grader.lab()
        grader.terminal(f"python -m autograder report {ASSIGNMENT} --course . && "
                        "nbgrader export --to grades.csv")
        grades = hub.course / "grades.csv"
        deadline = time.monotonic() + 180
        while not grades.is_file():
            assert time.monotonic() < deadline, "no grades.csv from the terminal"
            time.sleep(0.5)
        time.sleep(1)
        grader.shot("8-instructor-terminal")
        grader.get(f"/user/{hub.grader}/files/reports/{ASSIGNMENT}.html")
        grader.find("body")
        time.sleep(1)
        grader.shot("9-instructor-class-report")
        grader.get(f"/user/{hub.grader}/lab/tree/grades.csv")
        grader.find(".jp-CSVViewer, .jp-DataGrid, .lm-DataGrid", timeout=60)
        time.sleep(1)
        grader.shot("10-instructor-grades-csv")
    finally:
        grader.close()
    rows = {row["student_id"]: row for row in csv.DictReader(io.StringIO(grades.read_text()))}
    config = (hub.course / "nbgrader_config_local.py").read_text()
    db_url = config.split("db_url = ")[1].split("\n")[0].strip("'\"")
    with Gradebook(db_url, "backprop-lab") as book:
        written = book.find_grade("kink_written", ASSIGNMENT, ASSIGNMENT, ada)
        assert written.manual_score == 1
        total = book.find_submission(ASSIGNMENT, ada).score
    assert float(rows[ada]["raw_score"]) == total >= 4  # two parts (1 + 2) and the written one
