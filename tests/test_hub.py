"""A course day on a real JupyterHub, clicked through in Debian's Chromium (Selenium with
chromium-driver): the hub `make hub` starts (autograder/hub.py, the same code), with real
unix accounts logging in through PAM, a PostgreSQL gradebook, nbgrader's extensions and
the grading service as a hub-managed service.

A student logs in, fetches nn_from_scratch in the Assignments tab, types two parts into the
notebook, runs their visible checks, validates, submits and fetches the feedback the
service released; another student cannot reach it by URL. The instructor grades the
written answer in the formgrader, autogrades the submission with its button, writes the
class report and exports the grades in a terminal. Each step leaves a screenshot (in docs/
with HUB_SCREENSHOTS=1).
"""

import csv
import io
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hub_browser import Person, start_work, submit_until_feedback

from autograder.hub import (
    ASSIGNMENT,
    CONFIG,
    ENV,
    REPO,
    Hub,
    free_port,
    remove_abandoned_accounts,
)

# The steps' screenshots replace docs/hub-*.png only when asked (HUB_SCREENSHOTS=1): a test
# run leaves the checkout as it found it.
SHOTS = REPO / "docs" if os.environ.get("HUB_SCREENSHOTS") else None
on_a_hub = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("chromedriver"),
    reason="needs root (unix accounts) and Debian's chromium-driver (apt install "
           "chromium-driver)")


def test_readme_shows_the_hubs_configuration():
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert CONFIG in blocks


@pytest.fixture(scope="module")
def hub():
    """One hub for the module, with accounts of its own (bpt<random>-*: a concurrent run,
    anyone's, has others) and free ports; the accounts of runs killed before their clean-up
    are removed first."""
    remove_abandoned_accounts()
    run_dir = Path(tempfile.mkdtemp(prefix="hub-test-", dir="/tmp"))
    hub = Hub(run_dir, port=free_port(), prefix=f"bpt{secrets.token_hex(3)}-")
    try:
        hub.setup(say=lambda line: None)
        hub.start(logged=True)
        yield hub
    finally:
        hub.stop(graceful=False)
        hub.remove_accounts()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the steps' screenshots go: docs/, or a folder of this run."""
    return SHOTS or tmp_path_factory.mktemp("hub-shots")


@pytest.fixture(scope="module")
def instructor(hub, shots):
    """The grader, logged in first: the hub starts their server while ada works."""
    grader = Person(hub, hub.grader, shots)
    yield grader
    grader.close()


@pytest.fixture(scope="module")
def student_day(hub, instructor, shots):
    """ada's day in the browser: the checks' verdicts, what Validate said, and the seconds
    from the Submit click to her feedback shown."""
    from selenium.webdriver.common.action_chains import ActionChains

    ada = Person(hub, hub.students[0], shots)
    try:
        checks = start_work(ada)
        ada.find(".validate-button .jp-ToolbarButtonComponent-label").click()
        ada.find_text("Validation Results", "*[contains(@class,'jp-Dialog-header')]",
                      timeout=180)
        validated = ada.find(".jp-Dialog-content").text
        ada.shot("3-student-validate")
        ada.find(".jp-Dialog .jp-mod-accept").click()
        ada.wait("!document.querySelector('.jp-Dialog')")
        seconds = submit_until_feedback(ada, 0)
        ada.shot("4-student-feedback-fetched")
        ada.find_text("(view feedback)", "a").click()
        ActionChains(ada.driver).double_click(
            ada.find_text(f"{ASSIGNMENT}.html", "span")).perform()
        ada.find(".jp-HTMLViewer iframe")
        ada.wait("""(d => d && d.readyState == 'complete' && d.body.textContent.includes(
            'sigmoid_activation'))(document.querySelector('.jp-HTMLViewer iframe')
            .contentDocument)""")
        ada.shot("5-student-feedback")
        yield {"checks": checks, "validated": validated, "seconds": seconds}
    finally:
        ada.close()


@pytest.mark.slow
@on_a_hub
def test_student_fetches_works_validates_submits_and_gets_feedback(hub, student_day):
    assert len(student_day["checks"]) >= 2, student_day["checks"]
    # Validate lists the checks that fail: the parts not written yet, not the two typed in.
    assert 'check("sigmoid_delta"' in student_day["validated"], student_day["validated"]
    for part in ("sigmoid_activation", "forward"):
        assert f'check("{part}"' not in student_day["validated"], student_day["validated"]
    print(f"submit click -> feedback shown: {student_day['seconds']:.1f} s")
    assert student_day["seconds"] < 60


@pytest.mark.slow
@on_a_hub
def test_another_student_cannot_reach_the_feedback(hub, student_day):
    """bob, logged in, asks for ada's feedback page: the hub refuses him her server, and his
    own server (which runs as bob) cannot read her home."""
    ada, bob = hub.students[0], hub.students[1]
    pages = sorted((Path("/home") / ada / ASSIGNMENT / "feedback").glob("*/*.html"))
    assert pages, "ada has no feedback"
    person = Person(hub, bob, start=f"/user/{ada}/files/"
                                   f"{pages[0].relative_to(Path('/home') / ada)}")
    try:
        person.wait("document.readyState == 'complete' && /\\b403\\b/.test(document.title + "
                    "document.body.textContent)")
        page = person.driver.page_source
    finally:
        person.close()
    assert "sigmoid_activation" not in page and re.search(r"\b403\b", page), page[-1500:]
    read = subprocess.run(["runuser", "-u", bob, "--", "cat", str(pages[0])],
                          capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr


@pytest.mark.slow
@on_a_hub
def test_students_read_the_kit_not_the_grader(hub):
    """A student's Python imports the kit; the references and hidden cases are the staff's."""
    def as_student(code: str) -> subprocess.CompletedProcess:
        student = hub.students[1]
        return subprocess.run(["runuser", "-u", student, "--", f"{ENV}/venv/bin/python", "-c",
                               code], cwd=f"/home/{student}", capture_output=True, text=True)

    # Nor the checkout (answer keys, references, history), nor the hub's own database.
    for secret in (REPO / "solutions" / "nn_from_scratch" / "nn_from_scratch.ipynb",
                   hub.run_dir / "jupyterhub.sqlite"):
        peek = as_student(f"print(open({str(secret)!r}, 'rb').read(64))")
        assert peek.returncode != 0 and "PermissionError" in peek.stderr, (secret, peek.stdout)
    kit = as_student("import autograder.kit.notebook")
    assert kit.returncode == 0, kit.stderr
    refused = as_student("import autograder.references.nn_from_scratch")
    assert refused.returncode != 0 and re.search("ModuleNotFound|PermissionError",
                                                 refused.stderr), refused.stderr
    # The folder it cannot read imports, at most, as an empty namespace: nothing of the grader.
    empty = as_student("import autograder.references as r; print(sorted(vars(r)))")
    assert "get" not in empty.stdout and "ASSIGNMENTS" not in empty.stdout, empty.stdout
    references = as_student("import autograder, pathlib; print(pathlib.Path(autograder.__file__)"
                            ".with_name('references').joinpath('graded.py').read_text())")
    assert "PermissionError" in references.stderr, references.stdout[:200]


@pytest.mark.slow
@on_a_hub
def test_instructor_grades_autogrades_reports_and_exports(hub, student_day, instructor):
    from nbgrader.api import Gradebook

    ada = hub.students[0]
    wrote = [path for step in ("autograded", "feedback") for path in (hub.course / step).rglob("*")]
    unshared = [str(path) for path in wrote if path.stat().st_gid != hub.course.stat().st_gid
                or path.is_dir() and not path.stat().st_mode & 0o020]
    assert wrote and not unshared, f"the grader's group cannot replace {unshared}"
    grader = instructor
    grader.lab()
    grader.menu("Nbgrader", "Formgrader")
    grader.find("iframe", timeout=60)
    grader.shot("6-instructor-formgrader")
    grader.get(f"/user/{hub.grader}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
    grader.find("a.name-hidden").click()
    # The submission's maths is typeset, with MathJax from the server (formgrader_guard):
    # every script the page has is this server's (and this machine has no network).
    grader.wait("document.querySelector('#notebook .MathJax, #notebook .MathJax_Display')")
    scripts = grader.driver.execute_script(
        "return [...document.scripts].map(s => s.src).filter(s => s)")
    assert scripts and all(src.startswith(hub.url) for src in scripts), scripts
    grader.driver.execute_script(
        "$(document).on('finished_saving', () => { window.scoreSaved = true; })")
    for attempt in range(10):  # a click before the page's models are bound is lost: again
        grader.wait("""(() => { let e = document.getElementById('kink_written');
            while (e && !e.querySelector('.full-credit')) e = e.parentElement;
            return e && e.querySelector('.full-credit'); })()""").click()
        try:
            grader.wait("window.scoreSaved", timeout=2)
            break
        except AssertionError:
            if attempt == 9:
                raise
    grader.shot("7-instructor-written-answer")
    grader.get(f"/user/{hub.grader}/formgrader/manage_submissions/{ASSIGNMENT}")
    grader.find("td.autograde a").click()
    grader.find_text("Success", "h4", timeout=180)
    grader.shot("8-instructor-autograde")
    grader.get(f"/user/{hub.grader}/lab")
    grader.lab()
    grader.terminal(f"cd ~/backprop-lab && python -m autograder report {ASSIGNMENT} "
                    "--course . && nbgrader export --to grades.csv")
    grades = hub.course / "grades.csv"
    grader.until(lambda driver: grades.is_file(), "grades.csv from the terminal", 180)
    grader.shot("9-instructor-terminal")
    grader.get(f"/user/{hub.grader}/files/reports/{ASSIGNMENT}.html")
    report = grader.find("body").text
    assert "graded by hand" in report and "1 graded, 0 pending" in report, report[:2000]
    grader.shot("10-instructor-class-report")
    grader.get(f"/user/{hub.grader}/lab/tree/grades.csv")
    grader.find(".jp-CSVViewer, .jp-DataGrid, .lm-DataGrid", timeout=60)
    grader.shot("11-instructor-grades-csv")
    rows = {row["student_id"]: row for row in csv.DictReader(io.StringIO(grades.read_text()))}
    config = (hub.course / "nbgrader_config_local.py").read_text()
    db_url = config.split("db_url = ")[1].split("\n")[0].strip("'\"")
    with Gradebook(db_url, "backprop-lab") as book:
        written = book.find_grade("kink_written", ASSIGNMENT, ASSIGNMENT, ada)
        assert written.manual_score == 1
        total = book.find_submission(ASSIGNMENT, ada).score
    assert float(rows[ada]["raw_score"]) == total >= 4  # two parts (1 + 2) and the written one
