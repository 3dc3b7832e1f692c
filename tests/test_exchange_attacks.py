"""The exchange as hostile students use it: real unix accounts write into a real nbgrader
exchange while `python -m autograder serve` runs as root on it (identity by the folder's
owner, the default).

Honest students submit; an attacker with an account of her own then tries, against the live
service: a folder under another student's name, links (to another student's notebook, to
the source notebook with its solutions, to /dev/zero, a whole folder as a link), a FIFO, odd
names (`*`, `..`, a line break, a spreadsheet formula, a name not on the roster), a flood of
100 forged folders while an honest student submits, a forged timestamp after the due date,
and a journal lost after an older and a newer submission. Each is refused or harmless, the
named students' grades do not change, and the honest student who submits in the middle of
the flood is collected while most of it still waits (each account's folders are examined in
turn), not behind it."""

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autograder import references
from autograder.course import REPO, Course
from autograder.service.course import MAX_UNFINISHED

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd"),
    reason="needs root to create the students' unix accounts")]

ASSIGNMENT = "nn_from_scratch"
COURSE_ID = "backprop-lab"
FULL = sum(part.points for part in references.get(ASSIGNMENT).parts)
# Unix accounts made (and removed) here, named for this run: a concurrent run has others.
RUN = secrets.token_hex(2)
ADA, BOB, EVE = (f"bpx{RUN}{name}" for name in ("ada", "bob", "eve"))
MAX_PER_HOUR = 20
WAIT_SECONDS = 120
FLOOD = 100
JUNK = 2000  # empty files dropped into inbound/
UNFINISHED = 60  # folders never completed: the service watches MAX_UNFINISHED an account
NBGRADER_TIME = "%Y-%m-%d %H:%M:%S.%f UTC"
SYSTEM_PYTHON = "/usr/bin/python3"  # the students' own interpreter (the venv may be root's)

# What a student's shell can do: make folders and files in inbound/, as they choose.
WRITER = r"""
import json, os, sys
inbound = sys.argv[1]
for spec in json.load(sys.stdin):
    path = os.path.join(inbound, spec["name"])
    if spec.get("complete"):  # nbgrader submit's last step, on a folder written before
        os.chmod(path, 0o777)
        continue
    if spec.get("folder_link"):
        os.symlink(spec["folder_link"], path)
        continue
    if spec.get("junk"):
        open(path, "w").close()
        continue
    os.mkdir(path)
    for name, kind, value in spec["files"]:
        target = os.path.join(path, name)
        if kind == "text":
            with open(target, "w") as file:
                file.write(value)
        elif kind == "link":
            os.symlink(value, target)
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "folder":
            os.mkdir(target)
    if not spec.get("unfinished"):
        os.chmod(path, 0o777)
"""


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime(NBGRADER_TIME)


def folder(student: str, notebook: str | None, *, claimed: str | None = None,
           extra: tuple = (), notebook_as: tuple | None = None) -> dict:
    """A submission folder as `nbgrader submit` makes it, or as an attacker bends it."""
    claimed = claimed or stamp()
    files = [("timestamp.txt", "text", claimed),
             ("submission_secret.txt", "text", os.urandom(8).hex())]
    if notebook_as is not None:
        files.append((f"{ASSIGNMENT}.ipynb", *notebook_as))
    elif notebook is not None:
        files.append((f"{ASSIGNMENT}.ipynb", "text", notebook))
    return {"name": f"{student}+{ASSIGNMENT}+{claimed}+{os.urandom(6).hex()}",
            "files": files + list(extra)}


class Exchange:
    """The course, its exchange, the accounts and the running service."""

    def __init__(self, workdir: Path, course: Course):
        self.workdir = workdir
        self.course = course
        self.inbound = self.course.exchange / COURSE_ID / "inbound"
        self.log = workdir / "service.log"
        self.process = None

    def serve(self) -> None:
        env = {**os.environ,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "autograder", "serve", "--course",
                 str(self.course.root), "--max-per-hour", str(MAX_PER_HOUR)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.log.read_text()[-3000:]

    def write(self, account: str, specs: list[dict]) -> list[str]:
        """The account writes these folders into inbound/, as itself; their names."""
        user = pwd.getpwnam(account)
        subprocess.run([SYSTEM_PYTHON, "-c", WRITER, str(self.inbound)],
                       input=json.dumps(specs), text=True, check=True, user=user.pw_uid,
                       group=user.pw_gid, extra_groups=[], env={"HOME": user.pw_dir},
                       timeout=60)
        return [spec["name"] for spec in specs]

    def journal(self) -> dict[str, dict]:
        """The service's journal: a file per submission it read, a line per folder it
        refused unread."""
        from autograder.service.journal import Journal

        return Journal(self.course.root).entries

    def wait_final(self, names: list[str]) -> dict[str, dict]:
        """Wait until each of these folders has a final state in the journal."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            entries = self.journal()
            if all(entries.get(name, {}).get("state") in
                   ("released", "refused", "limited", "superseded") for name in names):
                return {name: entries[name] for name in names}
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"not final in {WAIT_SECONDS} s: {names}\n"
                             f"{self.log.read_text()[-3000:]}")

    def gradebook(self) -> dict[str, tuple[float, float | None]]:
        """{student: (raw auto score, late penalty)}, and every student in the gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.course.root / 'gradebook.db'}", COURSE_ID) as book:
            scores = {s.student.id: (sum(g.auto_score or 0 for g in s.notebooks[0].grades),
                                     s.notebooks[0].late_submission_penalty)
                      for s in book.assignment_submissions(ASSIGNMENT)}
            scores["*roster*"] = tuple(sorted(student.id for student in book.students))
        return scores

    def pages(self) -> dict[str, str]:
        feedback = self.course.exchange / COURSE_ID / "feedback"
        return {path.name: path.read_text(errors="replace") for path in feedback.glob("*.html")}


def refusals_around(log: str, flood: list[str], honest: str) -> tuple[int, int]:
    """How many of the flood's folders the service's log refuses before it collects the
    honest folder, and in all."""
    flood, before, total = set(flood), None, 0
    for line in log.splitlines():
        event, submission = logged(line, "submission")
        if event == "collected" and submission == honest:
            before = total
        elif event == "refused":
            total += submission in flood
    return before, total


def logged(line: str, key: str) -> tuple[str, str | None]:
    """A line of the service's log: its event, and the value of one of its fields."""
    words = line.split(" ", 2)
    event = words[1] if len(words) > 1 else ""
    value = re.search(rf' {key}=("(?:[^"\\]|\\.)*"|\S+)', line)
    if value is None:
        return event, None
    return event, json.loads(value[1]) if value[1].startswith('"') else value[1]


@pytest.fixture(scope="module")
def attacked(generated_course):
    workdir = Path(tempfile.mkdtemp(prefix="exchange-attacks-", dir="/tmp"))
    workdir.chmod(0o755)  # the students must reach the exchange inside it
    made = []
    for account in (ADA, BOB, EVE):
        try:
            pwd.getpwnam(account)
        except KeyError:
            subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", account], check=True)
            made.append(account)
    exchange = None
    try:
        exchange = Exchange(workdir, generated_course(workdir / "lab", ASSIGNMENT))
        yield run_attacks(exchange)
    finally:
        if exchange and exchange.process and exchange.process.poll() is None:
            exchange.process.kill()  # the attacks stopped half-way: no service outlives them
            exchange.process.wait()
        for account in made:
            subprocess.run(["userdel", account], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def run_attacks(exchange: Exchange) -> dict:
    from nbgrader.api import Gradebook

    course, seen = exchange.course, {}
    course.configure("c.LateSubmissionPlugin.penalty_method = 'zero'")
    course.run("release_assignment", ASSIGNMENT, "--force")
    exchange.course.exchange.chmod(0o755)
    exchange.inbound.chmod(0o3733)  # the README's layout: no one renames another's folder
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", COURSE_ID) as book:
        for account in (ADA, BOB, EVE):
            book.update_or_create_student(account)
    exchange.serve()
    key = (REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    blank = (REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    source = course.root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

    # Idle: ada submits a blank notebook, then the key (the newer); bob the key.
    (ada_blank,) = exchange.write(ADA, [folder(ADA, blank)])
    exchange.wait_final([ada_blank])
    (ada_key,) = exchange.write(ADA, [folder(ADA, key)])
    (bob_key,) = exchange.write(BOB, [folder(BOB, key)])
    exchange.wait_final([ada_key, bob_key])
    seen["book_before"] = exchange.gradebook()
    pages_before = exchange.pages()

    # Eve: another student's name, links, a FIFO, a linked folder, odd names.
    ada_notebook = course.root / "submitted" / ADA / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    attacks = {
        "impersonation": folder(ADA, blank),
        "link to ada's notebook": folder(EVE, None, notebook_as=("link", str(ada_notebook))),
        "link to the source notebook": folder(EVE, None, notebook_as=("link", str(source))),
        "link to /dev/zero": folder(EVE, None, notebook_as=("link", "/dev/zero")),
        "a FIFO": folder(EVE, None, notebook_as=("fifo", "")),
        "a linked folder": {**folder(EVE, None), "folder_link": str(ada_notebook.parent)},
        "a link beside the notebook": folder(EVE, blank, extra=[("x", "link", str(source))]),
    }
    for odd in ("*", "..", "a\nb", "=HYPERLINK(\"x\")", "ghost", "bpx<img src=x onerror=alert(1)>"):
        attacks[f"the name {odd!r}"] = folder(odd, blank)
    names = dict(zip(attacks, exchange.write(EVE, list(attacks.values())), strict=True))
    seen["attacks"] = {what: exchange.wait_final([name])[name] if what != "a linked folder"
                       else None for what, name in names.items()}
    seen["linked_folder"] = names["a linked folder"]
    seen["eve_pages"] = {name: text for name, text in exchange.pages().items()
                         if name not in pages_before}
    seen["book_after_attacks"] = exchange.gradebook()

    # Eve cannot leave herself ungraded: folders the service cannot take (a folder where
    # nbgrader writes timestamp.txt, an assignment the kit knows but this course does not
    # grade), as many stale unfinished folders as the service watches, then her own work,
    # seen unfinished for a while (a slow `nbgrader submit`), which is graded.
    stale = [{**folder(EVE, blank), "unfinished": True} for _ in range(MAX_UNFINISHED)]
    exchange.write(EVE, stale)
    dead_ends = {
        "timestamp.txt as a folder": {**folder(EVE, key), "files": [
            ("timestamp.txt", "folder", ""), ("submission_secret.txt", "text", "s"),
            (f"{ASSIGNMENT}.ipynb", "text", key)]},
        "an assignment of another course": {
            "name": f"{EVE}+single_neuron+{stamp()}+{os.urandom(6).hex()}",
            "files": [("timestamp.txt", "text", stamp()), ("submission_secret.txt", "text", "s"),
                      ("single_neuron.ipynb", "text", blank)]}}
    names.update(zip(dead_ends, exchange.write(EVE, list(dead_ends.values())), strict=True))
    (eve_key,) = exchange.write(EVE, [{**folder(EVE, key), "unfinished": True}])
    time.sleep(2)  # polls every 0.25 s: seen unfinished while the stale ones are watched
    exchange.write(EVE, [{"name": eve_key, "complete": True}])
    seen["dead_ends"] = exchange.wait_final([names[what] for what in dead_ends] + [eve_key])
    seen["dead_ends"] = {what: seen["dead_ends"][names[what]] for what in dead_ends} | {
        "her own work": seen["dead_ends"][eve_key]}
    seen["book_eve_graded"] = exchange.gradebook()

    # A flood of forged folders, junk files and unfinished folders, and bob submitting in
    # the middle of it.
    victims = [ADA, BOB, "ghost", "*"]
    flood = [folder(victims[index % len(victims)], blank) for index in range(FLOOD)]
    junk = [{"name": f"junk-{index}", "junk": True} for index in range(JUNK)]
    unfinished = [{**folder(EVE, blank), "unfinished": True} for _ in range(UNFINISHED)]
    half = FLOOD // 2
    flooded = exchange.write(EVE, flood[:half] + junk + unfinished)
    (bob_during,) = exchange.write(BOB, [folder(BOB, key)])
    flooded += exchange.write(EVE, flood[half:])
    exchange.wait_final([bob_during])
    seen["flood"] = exchange.wait_final(flooded[:half] + flooded[half + JUNK + UNFINISHED:])
    seen["junk"] = exchange.wait_final(flooded[half:half + JUNK])
    seen["unfinished"] = exchange.wait_final(flooded[half + JUNK:half + JUNK + UNFINISHED]
                                             [:UNFINISHED - MAX_UNFINISHED])  # the oldest
    seen["health"] = subprocess.run(
        [sys.executable, "-m", "autograder", "serve", "--health", "--course",
         str(course.root)], cwd=REPO, capture_output=True, text=True, timeout=120).stdout
    seen["flood_refused_before_bob"], seen["flood_refused"] = refusals_around(
        exchange.log.read_text(), flooded, bob_during)
    (eve_own,) = exchange.write(EVE, [folder(EVE, key)])
    seen["eve_own"] = exchange.wait_final([eve_own])[eve_own]

    # After the due date, bob forges last year's time in the name and timestamp.txt.
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", COURSE_ID) as book:
        book.update_or_create_assignment(ASSIGNMENT, duedate=datetime.now(UTC).replace(
            tzinfo=None) - timedelta(seconds=1))
    (forged,) = exchange.write(BOB, [folder(BOB, key, claimed=stamp(
        datetime.now(UTC) - timedelta(days=365)))])
    seen["forged_time"] = exchange.wait_final([forged])[forged]
    seen["book_late"] = exchange.gradebook()

    # The journal is lost; the service starts again over every folder in inbound/.
    exchange.stop()
    shutil.rmtree(course.root / "results" / "service")
    book_before_restart = exchange.gradebook()
    exchange.serve()
    never_done = {names["a linked folder"], *(spec["name"] for spec in unfinished + stale)}
    everything = [path.name for path in exchange.inbound.iterdir()
                  if path.name not in never_done]
    seen["rebuilt"] = exchange.wait_final(everything)
    seen["book_rebuilt"], seen["book_before_restart"] = exchange.gradebook(), \
        book_before_restart
    exchange.stop()
    seen.update(names=names, ada_blank=ada_blank, ada_key=ada_key, log=exchange.log.read_text())
    return seen


def test_honest_students_are_graded(attacked):
    book = attacked["book_before"]
    assert book[ADA] == (FULL, None) and book[BOB] == (FULL, None)


def test_a_folder_under_another_name_is_refused_and_changes_nothing(attacked):
    entry = attacked["attacks"]["impersonation"]
    assert entry["state"] == "refused" and entry["reason"] == "impersonation"
    assert entry["account"] == EVE  # counted against the writer
    assert attacked["book_after_attacks"] == attacked["book_before"]
    assert re.search(rf"refused .*account={EVE} reason=impersonation", attacked["log"])


@pytest.mark.parametrize("attack", ["link to ada's notebook", "link to the source notebook",
                                    "link to /dev/zero", "a FIFO",
                                    "a link beside the notebook"])
def test_links_and_special_files_are_refused_unread(attacked, attack):
    entry = attacked["attacks"][attack]
    assert entry["state"] == "refused" and entry["reason"] in ("link", "odd-file"), entry
    assert "graded" not in entry and EVE not in attacked["book_after_attacks"]


def test_what_eve_gets_back_holds_no_one_elses_text(attacked):
    pages = attacked["eve_pages"]
    assert pages, "eve was told nothing"
    for text in pages.values():
        assert "BEGIN SOLUTION" not in text and "sigmoid_delta(" not in text
        assert "link" in text or "not a regular file" in text


def test_a_linked_folder_is_never_entered(attacked):
    name = attacked["linked_folder"]
    assert re.search(r"refused .*reason=not-a-folder", attacked["log"])
    assert name in attacked["log"] or json.dumps(name) in attacked["log"]


@pytest.mark.parametrize("odd", ["*", "..", "a\nb", "=HYPERLINK(\"x\")", "ghost",
                                 "bpx<img src=x onerror=alert(1)>"])
def test_odd_names_are_refused_and_never_become_students(attacked, odd):
    entry = attacked["attacks"][f"the name {odd!r}"]
    assert entry["state"] == "refused" and entry["reason"] in ("bad-name", "impersonation")
    assert attacked["book_after_attacks"]["*roster*"] == (ADA, BOB, EVE)


def test_no_folder_a_student_writes_leaves_their_next_submission_ungraded(attacked):
    dead_ends = attacked["dead_ends"]
    assert dead_ends["timestamp.txt as a folder"]["state"] == "refused"
    assert dead_ends["timestamp.txt as a folder"]["reason"] == "odd-file"
    assert dead_ends["an assignment of another course"]["state"] == "refused"
    assert dead_ends["an assignment of another course"]["reason"] == "unknown-assignment"
    assert dead_ends["her own work"]["state"] == "released"
    assert attacked["book_eve_graded"][EVE] == (FULL, None)


def test_the_log_shows_odd_names_escaped(attacked):
    for line in attacked["log"].splitlines():
        assert "\x1b" not in line and "\r" not in line
    assert '\\n' in attacked["log"]  # the name with a line break, on one line


def test_a_flood_of_forged_folders_does_not_delay_an_honest_student(attacked):
    assert all(entry["state"] == "refused" for entry in attacked["flood"].values())
    # Eve's entries are examined 20 a poll, in turn with bob's: bob's folder is not queued
    # behind the 2,100 she wrote before it.
    before, total = attacked["flood_refused_before_bob"], attacked["flood_refused"]
    assert total == FLOOD + JUNK + UNFINISHED - MAX_UNFINISHED and before < total / 2, (
        before, total)
    assert attacked["book_after_attacks"]["*roster*"] == (ADA, BOB, EVE)


def test_junk_and_unfinished_folders_are_refused_cheaply_and_not_queued(attacked):
    assert {entry["reason"] for entry in attacked["junk"].values()} == {"not-a-folder"}
    assert {entry["reason"] for entry in attacked["unfinished"].values()} == {
        "too-many-unfinished"}
    assert "queued=0 " in attacked["health"]  # unfinished folders are not the queue


def test_the_flood_costs_its_writer_not_the_students_it_names(attacked):
    assert attacked["eve_own"]["state"] == "limited"
    assert all(entry["account"] == EVE for entry in attacked["flood"].values())


def test_a_forged_timestamp_does_not_escape_the_late_policy(attacked):
    entry = attacked["forged_time"]
    assert entry["state"] == "released"
    assert attacked["book_late"][BOB] == (FULL, FULL)  # late by the service's clock: zero
    assert entry["time"] > datetime.now(UTC).timestamp() - 600  # trusted, not the claim


def test_a_lost_journal_never_puts_an_older_grade_over_a_newer(attacked):
    rebuilt = attacked["rebuilt"]
    assert rebuilt[attacked["ada_blank"]]["state"] == "superseded"
    assert rebuilt[attacked["ada_key"]]["state"] == "superseded"
    assert attacked["book_rebuilt"] == attacked["book_before_restart"]
    assert attacked["book_rebuilt"][ADA] == (FULL, None)
