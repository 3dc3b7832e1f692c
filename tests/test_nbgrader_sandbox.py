"""The whole loop as students live it, graded through the sandbox on every path, with a real
PostgreSQL gradebook: fetch and submit through an exchange, collect, `nbgrader autograde`,
feedback released and fetched, a late penalty, the formgrader's HTTP API and NbGraderAPI."""

import csv
import html
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest

from autograder import references
from autograder.course import COURSE_ID, REPO, Course
from autograder.demo import INVALID_JSON, Student, write_submission
from autograder.kit.messages import LINE_WIDTH
from autograder.submissions import Edit

pytestmark = pytest.mark.slow

ASSIGNMENT = "nn_from_scratch"
FULL = sum(part.points for part in references.get(ASSIGNMENT).parts)
CHEAT = 'check = lambda *a, **k: print("✔ correct")'
SIGN_ERROR = Edit("train_step_answer", "(y - output) * sigmoid_delta",
                  "(output - y) * sigmoid_delta")
ON_TIME = {
    "key": Student("key", "the answer key", answer_key=True),
    "cheat": Student("cheat", "a sign error, and the one-line cheat", edits=(SIGN_ERROR,)),
    "cho": Student("cho", "a sign error", edits=(SIGN_ERROR,)),
    "fay": Student("fay", "a notebook that is not JSON", damage=INVALID_JSON),
}
LATE = Student("late", "the answer key, after the due date", answer_key=True)
FAKED_PARTS = {"train_step", "train", "learn_2d"}  # what the sign error breaks, the cheat fakes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on loopback; its gradebook database's URL."""
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install -c "
                                           "constraints.txt psycopg2-binary")
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server here: apt-get install -y postgresql (.ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="backprop-postgres-"))
    as_server = []
    if os.geteuid() == 0:  # the server refuses to run as root: its own user runs it
        shutil.chown(folder, "postgres")
        as_server = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()

    def server(*command: str) -> None:
        subprocess.run([*as_server, *command], check=True, capture_output=True, timeout=120)

    server(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
           "--no-sync", "-E", "UTF8")
    server(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
           "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -F", "start")
    try:
        server(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U",
               "postgres", "gradebook")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/gradebook"
    finally:
        server(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


class Formgrader:
    """A real `jupyter server` with the formgrader on loopback, token auth."""

    def __init__(self, course: Course):
        self.token, port = secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{port}"
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        self.process = subprocess.Popen(
            [str(bin_dir / "jupyter"), "server", "--no-browser", "--allow-root",
             "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={course.root.parent}"],
            cwd=course.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.get("/formgrader/api/status")
                return
            except (urllib.error.URLError, ConnectionError) as error:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("jupyter server with the formgrader did not start") \
                        from error
                time.sleep(0.5)

    def request(self, method: str, path: str, body: dict | None = None) -> str:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.read().decode()

    def get(self, path: str):
        return json.loads(self.request("GET", path))

    def submissions(self) -> dict[str, dict]:
        return {s["student"]: s for s in self.get(f"/formgrader/api/submissions/{ASSIGNMENT}")}

    def autograde(self, student: str) -> dict:
        """What the formgrader's Autograde button does: its endpoint, for one student."""
        return json.loads(self.request(
            "POST", f"/formgrader/api/submission/{ASSIGNMENT}/{student}/autograde", {}))

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def scores(course: Course, db_url: str, cell_type: str = "code"
           ) -> dict[str, dict[str, float]]:
    """{student: {part: auto score}} from the gradebook, for the test cells (or, with
    cell_type="markdown", {written answer: (auto score, needs a person)})."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, COURSE_ID) as gradebook:
        return {s.student.id: {g.name: g.auto_score if cell_type == "code"
                               else (g.auto_score, g.needs_manual_grade)
                               for g in s.notebooks[0].grades if g.cell.cell_type == cell_type}
                for s in gradebook.assignment_submissions(ASSIGNMENT)}


def exported(course: Course) -> dict[str, dict]:
    target = course.root.parent / "grades.csv"
    course.run("export", f"--to={target}")
    with open(target) as table:
        return {row["student_id"]: row for row in csv.DictReader(table)}


def with_cheat(path: Path) -> None:
    """The one-line cheat at the end of the notebook's first answer cell."""
    notebook = nbformat.read(path, as_version=4)
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution"))
    answer.source += f"\n{CHEAT}\n"
    nbformat.write(notebook, path)


def page_text(path: Path) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())).split())


@pytest.fixture(scope="module")
def loop(tmp_path_factory, postgres):
    """Students fetch and submit (one of them late), the instructor collects, autogrades
    through the sandbox, generates and releases feedback; the students fetch it."""
    course = Course.scaffold(tmp_path_factory.mktemp("loop"), [ASSIGNMENT])
    course.configure(f"c.CourseDirectory.db_url = {postgres!r}",
                     "c.LateSubmissionPlugin.penalty_method = 'zero'")
    course.run("generate_assignment", ASSIGNMENT, "--force")
    course.run("release_assignment", ASSIGNMENT, "--force")
    everyone = [*ON_TIME, LATE.id]
    course.fetch({ASSIGNMENT: everyone})
    for student in [*ON_TIME.values(), LATE]:
        path = course.student_home(student.id) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        write_submission(path, student, ASSIGNMENT)
        if student.id == "cheat":
            with_cheat(path)
    course.submit({ASSIGNMENT: list(ON_TIME)})
    from nbgrader.api import Gradebook

    with Gradebook(postgres, COURSE_ID) as gradebook:  # the due date falls between them
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate=datetime.now(UTC))
    time.sleep(1)
    course.submit({ASSIGNMENT: [LATE.id]})
    course.run("collect", ASSIGNMENT)
    autograded = course.run("autograde", ASSIGNMENT, "--force")
    course.run("generate_feedback", ASSIGNMENT, "--force")
    course.run("release_feedback", ASSIGNMENT)
    fetched = course.fetch_feedback(ASSIGNMENT, everyone)
    return course, postgres, autograded.stdout + autograded.stderr, fetched


def test_nbgrader_autograde_grades_in_the_sandbox(loop):
    course, db_url, log, _ = loop
    graded = scores(course, db_url)
    assert set(graded) == {*ON_TIME, LATE.id}
    assert sum(graded["key"].values()) == sum(graded["late"].values()) == FULL
    for student in ("cheat", "cho"):  # the cheat's printed "✔ correct" counts for nothing
        assert {part for part, score in graded[student].items() if score == 0} == FAKED_PARTS
    assert sum(graded["fay"].values()) == 0
    # The written answer waits for a person; one left as released scores 0 (nbgrader's rule).
    written = scores(course, db_url, "markdown")
    assert written["key"] == {"kink_written": (None, True)}
    assert written["fay"] == {"kink_written": (0, False)}
    assert "graded in the sandbox" in log and "hidden seed" in log
    record = nbformat.read(course.notebook_of("autograded", "key", ASSIGNMENT), 4).metadata
    assert isinstance(record["backprop_lab"]["seed"], int) and record["backprop_lab"]["isolation"]


def test_late_work_is_penalised_as_configured(loop):
    course, *_ = loop
    rows = exported(course)
    assert float(rows["late"]["raw_score"]) == FULL and float(rows["late"]["score"]) == 0
    assert float(rows["late"]["late_submission_penalty"]) == FULL
    assert float(rows["key"]["score"]) == FULL
    assert float(rows["key"]["late_submission_penalty"]) == 0


def test_each_student_fetches_their_own_feedback(loop):
    _, _, _, fetched = loop
    assert all(len(pages) == 1 for pages in fetched.values()), fetched
    texts = {student: page_text(pages[0]) for student, pages in fetched.items()}
    assert "WrongAnswer" not in texts["key"] and "✔" in texts["key"]
    assert "opposite sign" in texts["cho"] and "opposite sign" in texts["cheat"]
    assert "WrongAnswer" in texts["cheat"]  # its printed "✔ correct" counts for nothing
    assert "not valid JSON (line" in texts["fay"]
    for student, pages in fetched.items():
        page = pages[0].read_text()
        assert "cdnjs" not in page and "jupyter_server_mathjax" in page, student
        assert "hidden=True" not in page_text(pages[0])
    alts = [html.unescape(re.search(r'alt="([^"]*)"', image).group(1)) for image in
            re.findall(r"<img[^>]*data:image/svg\+xml[^>]*>", fetched["cho"][0].read_text())]
    assert any("your loss" in alt and "leaves the reference at epoch" in alt for alt in alts)
    assert any("heat map" in alt and "w1" in alt for alt in alts), alts


def test_feedback_maths_renders_from_this_machine(loop):
    """The fetched page in headless Chromium, from disk: every formula typeset, none in error."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium here: apt-get install -y chromium (.ci/run does)")
    page = loop[3]["cho"][0]
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="MathJax"') >= 10 and 'class="MathJax_Error"' not in dom


def test_validate_shows_whole_messages(loop):
    course, *_ = loop
    said = course.validate("cho", ASSIGNMENT)
    failing = [line for line in said.splitlines() if "opposite sign" in line or "✘" in line]
    assert failing, said
    assert not any(line.rstrip().endswith("...") for line in said.splitlines()), said
    assert all(len(line) <= LINE_WIDTH + 4 for line in said.splitlines() if "✘" in line)


def test_formgrader_and_api_grade_in_the_sandbox_into_postgres(loop):
    course, db_url, _, _ = loop
    formgrader = Formgrader(course)
    try:
        shown = formgrader.submissions()  # raw scores: the late penalty is in the export
        assert shown["key"]["score"] == shown["late"]["score"] == FULL
        assert shown["fay"]["score"] == 0 and not shown["fay"]["needs_manual_grade"]
        notebooks = {n["student"]: n["id"] for n in formgrader.get(
            f"/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{ASSIGNMENT}")}
        train = next(grade for grade in formgrader.get(
            f"/formgrader/api/grades?submission_id={notebooks['key']}")
            if grade["name"] == "train")
        formgrader.request("PUT", f"/formgrader/api/grade/{train['id']}",
                           {"manual_score": train["max_score"] - 0.5})  # a TA's override
        for student in ("key", "cheat", "fay"):  # the Autograde button, again
            answer = formgrader.autograde(student)
            assert answer["success"], answer
            assert "graded in the sandbox" in answer["log"] or student == "fay"
        assert "not valid JSON (line" in answer["log"]  # fay's: the reason, shown
        page = formgrader.request("GET", f"/formgrader/submissions/{notebooks['fay']}")
        assert "not valid JSON (line" in html.unescape(page)
        shown = formgrader.submissions()
        assert shown["key"]["score"] == FULL - 0.5 and shown["key"]["needs_manual_grade"]
        assert shown["cheat"]["score"] < FULL
        graded = scores(course, db_url)
        assert all(graded["cheat"][part] == 0 for part in FAKED_PARTS)
        assert sum(graded["key"].values()) == FULL  # the automatic scores
    finally:
        formgrader.close()
    before = scores(course, db_url)
    through_api = subprocess.run(
        [sys.executable, "-c", API_AUTOGRADE, ASSIGNMENT, "cheat", "key"], cwd=course.root,
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                   f"{os.environ['PATH']}"})
    assert through_api.returncode == 0, through_api.stderr[-3000:]
    graded = scores(course, db_url)
    assert all(graded["cheat"][part] == 0 for part in FAKED_PARTS)
    assert sum(graded["key"].values()) == FULL
    assert graded["cho"] == before["cho"]  # the grader failed on it: no grade, never a 0
    assert not course.notebook_of("autograded", "cho", ASSIGNMENT).exists()
    assert not list(course.root.parent.rglob("*.db")), "a SQLite gradebook appeared"


API_AUTOGRADE = """
import sys
from nbgrader.apps import NbGraderAPI
from nbgrader.apps.baseapp import NbGrader
from autograder.engine import nbgrader_grading
from autograder.engine.sandbox import GraderError

app = NbGrader()
app.load_config_file()
api = NbGraderAPI(config=app.config)
assignment, *students = sys.argv[1:]
for student in students:
    result = api.autograde(assignment, student)
    assert result["success"], result

def broken_grader(*args, **kwargs):
    raise GraderError("the sandbox could not start")

nbgrader_grading.grade_notebook = broken_grader
result = api.autograde(assignment, "cho")
assert not result["success"] and "the sandbox could not start" in result["log"], result
"""


def test_the_course_config_is_the_repositorys():
    config = (REPO / "nbgrader_config.py").read_text()
    assert "nbgrader_grading.SandboxedExecute" in config
    assert '"nbgrader.preprocessors.Execute"' not in config
