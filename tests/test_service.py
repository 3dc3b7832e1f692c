"""The grading service on a real exchange: students `nbgrader submit` at once, the service
(a real `python -m autograder serve` subprocess) collects, grades in the sandbox, records in
the gradebook with the configured late penalty, generates and releases feedback, and each
student's `nbgrader fetch_feedback` brings back their own. Then a burst of submissions (a
second and a third by the same student, over the hourly limit) with the service killed by
SIGKILL mid-burst and started again: every submission ends with exactly one grade and one
released feedback, and the over-limit one with a message instead of a grade."""

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autograder import references
from autograder.course import REPO, Course
from autograder.demo import INVALID_JSON, Student, write_submission
from autograder.submissions import Edit

pytestmark = pytest.mark.slow

ASSIGNMENT = "nn_from_scratch"
FULL = sum(part.points for part in references.get(ASSIGNMENT).parts)
SIGN_ERROR = Edit("train_step_answer", "(y - output) * sigmoid_delta",
                  "(output - y) * sigmoid_delta")
KEY = Student("key", "the answer key", answer_key=True)
CHO = Student("cho", "a sign error", edits=(SIGN_ERROR,))
FAY = Student("fay", "a notebook that is not JSON", damage=INVALID_JSON)
FIRST = {"key": KEY, "cho": CHO, "fay": FAY}
MAX_PER_HOUR = 2
WAIT_SECONDS = 120


class Service:
    """`python -m autograder serve` as a subprocess, its log in a file."""

    def __init__(self, course: Course, log: Path):
        self.log = log
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        with open(log, "a") as out, open(log.with_suffix(".err"), "a") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "autograder", "serve", "--course", str(course.root),
                 "--max-per-hour", str(MAX_PER_HOUR), "--identity", "folder-name"],
                cwd=REPO, env=env, stdout=out, stderr=err)

    def events(self, name: str) -> list[dict]:
        """The log's lines of one event, as {key: value}."""
        found = []
        for line in self.log.read_text().splitlines():
            stamp, _, rest = line.partition(" ")
            event, _, fields = rest.partition(" ")
            if event == name and re.match(r"\d{4}-\d\d-\d\dT", stamp):
                found.append({key: value.strip('"') for key, value in
                              re.findall(r'(\w+)=("[^"]*"|\S+)', fields)})
        return found

    def feedback_processes(self) -> set[int]:
        """The service's feedback processes (multiprocessing's spawned children)."""
        return {pid for pid in children(self.process.pid)
                if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()}

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def children(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def alive(pids: set[int], seconds: float) -> set[int]:
    """Those of pids still running (not a zombie) after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        running = set()
        for pid in pids:
            try:
                if (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                        != "Z"):
                    running.add(pid)
            except OSError:
                pass
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


def journal(course: Course) -> dict[str, dict]:
    folder = course.root / "results" / "service"
    entries = (json.loads(path.read_text()) for path in folder.glob("*.json"))
    return {entry["submission"]: entry for entry in entries}


def inbound(course: Course) -> list[Path]:
    return sorted((course.exchange / "backprop-lab" / "inbound").iterdir())


def wait_until_done(course: Course, count: int, service: Service) -> dict[str, dict]:
    """Wait until `count` submissions are in inbound/ and all have their feedback out."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        entries = journal(course)
        names = [path.name for path in inbound(course)]
        if len(names) >= count and all(entries.get(name, {}).get("state") in
                                       ("released", "limited") for name in names):
            return entries
        assert service.process.poll() is None, service.log.read_text()[-3000:]
        time.sleep(0.25)
    raise AssertionError(f"not done in {WAIT_SECONDS} s:\n{service.log.read_text()[-3000:]}")


def page_text(path: Path) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())).split())


def gradebook(course: Course) -> dict[str, tuple[float, float | None]]:
    """{student: (raw auto score, late penalty)} from the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "backprop-lab") as book:
        return {s.student.id: (sum(g.auto_score or 0 for g in s.notebooks[0].grades),
                               s.notebooks[0].late_submission_penalty)
                for s in book.assignment_submissions(ASSIGNMENT)}


def released_names(course: Course) -> set[str]:
    return {path.name for path in (course.exchange / "backprop-lab" / "feedback").iterdir()
            if path.suffix == ".html"}


def expected_feedback(course: Course) -> dict[str, str]:
    """{inbound submission: the feedback file fetch_feedback looks for}."""
    from nbgrader.utils import notebook_hash

    return {path.name: notebook_hash(secret=(path / "submission_secret.txt").read_text(),
                                     notebook_id=ASSIGNMENT) + ".html"
            for path in inbound(course)}


@pytest.fixture(scope="module")
def served(tmp_path_factory, generated_course):
    """Round 1: three students submit at once, the service grades them, they fetch their
    feedback. Round 2 (after the due date): a burst with the service killed mid-way."""
    workdir = tmp_path_factory.mktemp("service")
    course = generated_course(workdir, ASSIGNMENT)
    course.configure("c.LateSubmissionPlugin.penalty_method = 'zero'")
    course.run("release_assignment", ASSIGNMENT, "--force")
    log = workdir / "service.log"
    service = Service(course, log)  # it warms up while the students fetch and submit
    course.fetch({ASSIGNMENT: list(FIRST)})
    for student in FIRST.values():
        write_submission(course.student_home(student.id) / ASSIGNMENT
                         / f"{ASSIGNMENT}.ipynb", student, ASSIGNMENT)
    course.submit({ASSIGNMENT: list(FIRST)})
    round_one = wait_until_done(course, len(FIRST), service)
    fetched = course.fetch_feedback(ASSIGNMENT, list(FIRST))
    book_one = gradebook(course)
    results_one = {student: json.loads((course.root / "results" / ASSIGNMENT
                                        / f"{student}.json").read_text()) for student in FIRST}

    # Round 2, after the due date: cho fixes the sign error, key submits twice more (the
    # third in the hour is over the limit of 2), all at once.
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "backprop-lab") as book:
        book.update_or_create_assignment(ASSIGNMENT, duedate=datetime.now(UTC).replace(
            tzinfo=None))
    time.sleep(0.5)
    write_submission(course.student_home("cho") / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                     Student("cho", "fixed", answer_key=True), ASSIGNMENT)
    burst = threading.Thread(target=lambda: course.submit({ASSIGNMENT: ["cho", "key", "key"]}))
    burst.start()
    graded_before = len(service.events("graded"))
    deadline = time.monotonic() + WAIT_SECONDS
    while len(service.events("collected")) <= len(FIRST) \
            and len(service.events("graded")) <= graded_before:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    feedback_processes = service.feedback_processes()
    service.kill()  # mid-burst: a submission collected, others in flight or yet to come
    killed_log = log.read_text()
    orphans = alive(feedback_processes, 10)
    health = subprocess.run([sys.executable, "-m", "autograder", "serve", "--health",
                             "--course", str(course.root)], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    log.write_text(killed_log + "--- restarted ---\n")
    service = Service(course, log)  # while the rest of the burst still arrives
    burst.join()
    round_two = wait_until_done(course, len(FIRST) + 3, service)
    refetched = course.fetch_feedback(ASSIGNMENT, ["key", "cho"])
    after = subprocess.run([sys.executable, "-m", "autograder", "serve", "--health",
                            "--course", str(course.root)], cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    service.process.send_signal(signal.SIGTERM)
    stopped = service.process.wait(timeout=60)
    yield {"course": course, "round_one": round_one, "fetched": fetched, "book_one": book_one,
           "results_one": results_one,
           "round_two": round_two, "refetched": refetched, "killed_log": killed_log,
           "log": log.read_text(), "service": service, "health": health, "after": after,
           "stopped": stopped, "feedback_processes": feedback_processes, "orphans": orphans}


def test_each_student_fetches_their_own_feedback(served):
    fetched = served["fetched"]
    assert all(len(pages) == 1 for pages in fetched.values()), fetched
    texts = {student: page_text(pages[0]) for student, pages in fetched.items()}
    assert "✔" in texts["key"] and "WrongAnswer" not in texts["key"]
    assert "opposite sign" in texts["cho"] and "opposite sign" not in texts["key"]
    assert "not valid JSON (line" in texts["fay"]


def test_the_gradebook_matches_the_graded_submissions(served):
    scores = {entry["student"]: entry["score"] for entry in served["round_one"].values()}
    assert scores["key"] == FULL and scores["fay"] == 0 and 0 < scores["cho"] < FULL
    assert {student: raw for student, (raw, _) in served["book_one"].items()} == scores
    assert all(not penalty for _, penalty in served["book_one"].values())
    course = served["course"]
    for student, score in scores.items():  # the engine's result, autograded notebook too
        assert served["results_one"][student]["score"] == score
        assert (course.root / "autograded" / student / ASSIGNMENT / "timestamp.txt").is_file()


def test_killed_mid_burst_every_submission_graded_and_released_once(served):
    course, entries = served["course"], served["round_two"]
    submissions = inbound(course)
    assert len(submissions) == len(FIRST) + 3  # all kept, the key's three included
    assert "--- restarted ---" in served["log"]
    states = [entries[path.name]["state"] for path in submissions]
    assert states.count("limited") == 1 and states.count("released") == len(states) - 1
    # One released feedback per submission, named as fetch_feedback looks for it.
    assert released_names(course) == set(expected_feedback(course).values())
    # Graded at most once each (a grading cut short leaves no line; the restart then grades
    # it with the journal's seed); every graded one has one seed and one score.
    log = served["log"]
    for path in submissions:
        entry = entries[path.name]
        lines = [line for line in log.splitlines()
                 if re.match(r"\S+ graded ", line) and path.name in line]
        assert len(lines) <= 1, (path.name, lines)
        if entry["state"] == "released":
            assert isinstance(entry["seed"], int) and entry["score"] is not None
    # The gradebook holds each student's latest graded submission; round 2 is late: zero.
    book = gradebook(course)
    latest = {}
    for entry in sorted(entries.values(), key=lambda e: e["time"]):
        if entry["state"] == "released":
            latest[entry["student"]] = entry
    assert {student: raw for student, (raw, _) in book.items()} == {
        student: entry["score"] for student, entry in latest.items()}
    assert book["cho"] == (FULL, FULL)  # late: the penalty takes it all
    assert book["key"] == (FULL, FULL) and book["fay"] == (0, None)


def test_fetch_feedback_after_the_restart(served):
    refetched = served["refetched"]
    assert len(refetched["cho"]) == 2
    assert len(refetched["key"]) == 3  # every submission's feedback, the limited one's too
    texts = [page_text(page) for page in refetched["key"]]
    limited = [text for text in texts if "Not graded: too many submissions" in text]
    assert len(limited) == 1 and f"at most {MAX_PER_HOUR} submission(s)" in limited[0]
    newest_cho = page_text(refetched["cho"][-1])
    assert "opposite sign" not in newest_cho and "✔" in newest_cho


def test_health_and_logs(served):
    assert served["health"].returncode == 0, served["health"].stderr
    assert re.search(r"queued=\d+ oldest_seconds=\d+\.\d", served["health"].stdout)
    assert served["after"].returncode == 0 and "queued=0 " in served["after"].stdout
    assert served["stopped"] == 0 and served["log"].rstrip().endswith("stopped")
    for line in served["log"].splitlines():
        if line != "--- restarted ---":
            assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \w[\w-]*( |$)", line), \
                line


def test_the_feedback_processes_die_with_the_service(served):
    assert served["feedback_processes"], "no feedback process was found"
    assert not served["orphans"], served["orphans"]  # they had been killed with it
    assert served["stopped"] == 0  # and the restarted one stopped its own on SIGTERM
    assert not alive(served["service"].feedback_processes(), 0)


def test_the_feedback_process_pages_are_nbgraders(served):
    """The feedback process keeps its compiled templates between runs: the page is the
    one nbgrader's own GenerateFeedback makes, byte for byte."""
    from nbgrader.apps import NbGraderAPI

    from autograder.engine.course_config import load_course
    from autograder.service.feedback import _feedback_course, _generate, course_directory

    course = load_course(served["course"].root)
    page = course.root / "feedback" / "key" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    pages = []
    kept = _feedback_course(str(course.root))[1]
    plain = NbGraderAPI(coursedir=course_directory(course), config=course.config)
    for api in (plain, kept, kept):  # the second run of `kept` reuses its templates
        assert _generate(course, api, ASSIGNMENT, {"key", "cho"})
        pages.append(page.read_bytes())
    assert pages[0] == pages[1] == pages[2]
    assert "✔" in pages[0].decode()


def test_the_kept_gradebook_reads_what_was_committed_since(served, tmp_path):
    """The feedback process keeps its gradebook open from page to page
    (`GradesFromKeptGradebook`): a grade changed after one page shows on the next, and a
    failed read drops the gradebook, which the next page opens again."""
    from nbgrader.api import Gradebook

    from autograder.engine.course_config import load_course
    from autograder.service import grades
    from autograder.service.feedback import _feedback_course, _generate

    course = load_course(served["course"].root)
    api = _feedback_course(str(course.root))[1]
    page = course.root / "feedback" / "cho" / ASSIGNMENT / f"{ASSIGNMENT}.html"
    part = references.get(ASSIGNMENT).parts[0]

    def score_shown() -> str:
        assert _generate(course, api, ASSIGNMENT, {"cho"})
        found = re.search(rf'href="#{part.id}">Test cell</a> \(Score: ([\d.]+)',
                          page.read_text())
        return found[1]

    def set_manual_score(value):
        with Gradebook(course.db_url, course.course_id) as book:
            book.find_grade(part.id, ASSIGNMENT, ASSIGNMENT, "cho").manual_score = value
            book.db.commit()

    assert score_shown() == f"{part.points:.1f}"
    assert course.db_url in grades._GRADEBOOKS  # kept
    set_manual_score(0.5)
    try:
        assert score_shown() == "0.5"
        # A gradebook that cannot answer (a copy without cho's submission) in its place:
        shutil.copy(course.root / "gradebook.db", tmp_path / "other.db")
        grades._GRADEBOOKS[course.db_url].close()
        other = grades._GRADEBOOKS[course.db_url] = Gradebook(f"sqlite:///{tmp_path}/other.db")
        other.remove_submission(ASSIGNMENT, "cho")
        assert not _generate(course, api, ASSIGNMENT, {"cho"})
        assert course.db_url not in grades._GRADEBOOKS  # dropped
        assert score_shown() == "0.5"
    finally:
        set_manual_score(None)
    assert score_shown() == f"{part.points:.1f}"


class FakeFeedback:
    """FeedbackProcesses' interface: batches recorded, answered by the test."""

    processes = 2

    def __init__(self):
        self.sent: list[tuple[str, list[str], Future]] = []

    def submit(self, root, assignment, students):
        future = Future()
        self.sent.append((assignment, list(students), future))
        return future


def test_feedback_batches(tmp_path, capsys):
    """At most FEEDBACK_BATCH pages a batch, one assignment a batch, oldest first, at
    most one batch a feedback process; a page released is journaled once; a page that
    failed in a batch goes again alone; alone, a page out of time (or whose process died)
    is replaced by one that gives the grade, and any other fault is tried again later."""
    from pebble import ProcessExpired

    from autograder.service.course import FEEDBACK_BATCH, CourseService, Work
    from autograder.service.inbound import Inbound
    from autograder.service.journal import Journal

    course = CourseService.__new__(CourseService)
    course.course = type("Course", (), {"course_id": "c"})()
    course.root, course.journal, course.feedback = tmp_path, Journal(tmp_path), FakeFeedback()
    course.waiting, course.busy, course.blocked, course.feedback_faults = {}, {}, {}, {}
    course.graded, course.sending, course.run = [], {}, None
    course.inbound = tmp_path / "inbound"

    def work(student, assignment):
        inbound = Inbound(f"{student}+{assignment}+x+y", tmp_path, student, assignment,
                          student, 0, 1.8e9, "x")
        entry = {"submission": inbound.name, "state": "collected", "time": 1.8e9}
        course.journal.write(entry)
        entry = {**entry, "state": "graded", "score": 3.0, "max_score": 15.0}
        course.journal.write(entry)
        course.busy[inbound.account] = made = Work(inbound, entry, "recorded")
        return made

    first = [work(f"s{index:02d}", "one") for index in range(FEEDBACK_BATCH + 2)]
    other = work("t", "two")
    course.graded = [first[0], other, *first[1:]]
    course.release_graded()
    sent = course.feedback.sent
    assert [(assignment, len(students)) for assignment, students, _ in sent] == [
        ("one", FEEDBACK_BATCH), ("two", 1)]  # then no third: both processes are busy
    assert sent[0][1] == [w.inbound.student for w in first[:FEEDBACK_BATCH]]
    assert course.graded == first[FEEDBACK_BATCH:]

    faults = dict.fromkeys(sent[0][1])
    faults["s01"] = "generate_feedback failed: boom"
    sent[0][2].set_result((faults, 0.5))
    course.take({sent[0][2]})
    released = {name for name, entry in course.journal.entries.items()
                if entry["state"] == "released"}
    assert released == {w.inbound.name for w in first[:FEEDBACK_BATCH]} \
        - {first[1].inbound.name}
    assert course.graded == [*first[FEEDBACK_BATCH:], first[1]] and first[1].alone
    log = capsys.readouterr().out
    assert "feedback-batch course=c assignment=one submissions=6" in log
    assert log.count(" released ") == FEEDBACK_BATCH - 1 and "next=alone" in log

    course.release_graded()  # the rest of "one" together, then s01 alone
    assert [(assignment, students) for assignment, students, _ in sent[2:]] == [
        ("one", ["s06", "s07"])]
    sent[1][2].set_exception(ProcessExpired("Abnormal termination", code=-9))
    course.take({sent[1][2]})  # alone, its process died: a page with the grade instead
    assert course.journal.entries[other.inbound.name]["state"] == "released"
    assert course.journal.entries[other.inbound.name]["feedback"].startswith("not made")
    assert "page=without-feedback" in capsys.readouterr().out
    course.release_graded()
    assert sent[3][1] == ["s01"]
    sent[3][2].set_result(({"s01": "generate_feedback failed: boom"}, 0.1))
    course.take({sent[3][2]})  # alone, another fault: tried again later, not replaced
    assert first[1].inbound.account not in course.busy and first[1].inbound.name in \
        course.waiting and first[1].inbound.name in course.blocked
    assert course.journal.entries[first[1].inbound.name]["state"] == "graded"
