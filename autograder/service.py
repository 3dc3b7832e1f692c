"""Feedback seconds after submit: a grading service on a course's nbgrader exchange.

`python -m autograder serve --course COURSE [--course COURSE2 ...]` polls each course's
exchange (`{Exchange.root}/{course_id}/inbound/`, as the course's configuration sets it)
and, for every new submission there, does what `nbgrader collect`, `autograde`,
`generate_feedback` and `release_feedback` would do for it, with the same data:

1. **collect**: the submission's folder is copied to `submitted/{student}/{assignment}/`
   with nbgrader's own copy (`Exchange.do_copy`: its ignore, include and size settings),
   timestamp.txt and submission_secret.txt included; into a temporary folder first, then
   renamed into place;
2. **grade** in the engine's sandbox on the warm fork server, all cores at once
   (`runner.grade_submission`, the unit of work of `grade-assignment`), and record it as
   `grade-assignment` does (`runner.GradingRun`: the JSON result, Gradescope's file, the
   autograded notebook with its timestamp, the gradebook's scores with nbgrader's late
   penalty as configured);
3. **feedback**: nbgrader's `GenerateFeedback` for that student and assignment, then
   `ExchangeReleaseFeedback`, both through `NbGraderAPI` in a feedback process, so that
   the student's ordinary `nbgrader fetch_feedback` (or the Assignments tab) returns it.
   Up to FEEDBACK_BATCH pages recorded since the last batch are generated in one run (the
   other students excluded; each alone if that run fails), and the run's templates are
   compiled once a process, not once a run (the pages are the same).

**Processes.** The service's own process collects, hands the gradings to the sandbox,
judges what comes back (in threads) and records it. FEEDBACK_PROCESSES feedback processes
(multiprocessing's spawn, started and warmed up before the service says `serving`, a
little less favoured by the scheduler than the gradings) generate and release the
feedback, one batch each at a time. A page costs about 0.1 s of CPU in pure Python
(nbconvert's templates and BeautifulSoup pass, nbgrader's gradebook queries): done on the
service's own thread, it held the interpreter's lock for most of each submission's cost,
and the gradings and records waited for it while the other core stood idle. A feedback
process dies with the service (SIGKILL when its parent dies); only the service's process
writes the journal, after a batch has come back.

**Exactly once, restart-safe.** Each submission (an inbound folder, named
`student+assignment+timestamp+random` by `nbgrader submit`) has a journal file in
`COURSE/results/service/`, written atomically at each step: `collected` (with the seed its
hidden cases will use), `graded` (its score), `released` (or `limited`). Killed at any
moment and started again, the service carries on from the last step written: a submission
is collected again if its journal says nothing, graded with the journal's seed (so that a
grading cut short gives the same grade; a result already written for that seed and notebook
is recorded without running the sandbox again), and its feedback written again under the
same name (`release_feedback` names it by the submission's secret, and renames it into
place), so every submission ends with one grade and one released feedback. A student's
submissions of an assignment go through one at a time, oldest first; inbound/ keeps them all
(as nbgrader does), submitted/ the latest graded one.

**Anti-oracle.** With `--max-per-hour N`, a submission that comes after N graded
submissions of the same student and assignment within the hour before it is not graded:
its released feedback says so, and when the next one will be; it stays in inbound/, not
collected, so the gradebook and submitted/ keep the last graded one.

Logs: one line per event on stdout, `2026-12-06T14:00:00.123Z event key=value ...`.
`python -m autograder serve --health --course COURSE` prints how many submissions are
queued (in inbound/ and not yet released) and the age of the oldest, and exits 0.
"""

import contextlib
import ctypes
import html
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .engine.course_config import CourseBusy, CourseConfig, CourseError, load_course

POLL_SECONDS = 0.25
RETRY_SECONDS = 30.0  # a course, an assignment or a grader that failed is tried again after
JOURNAL = Path("results") / "service"  # in the course root (results/ is git-ignored)
SECRET = "submission_secret.txt"
TIMESTAMP = "timestamp.txt"
COMPLETE_MODE = 0o777  # nbgrader submit's last step: the inbound folder made rwx for all
DONE = ("released", "limited")
FEEDBACK_NICE = 5  # the feedback process's niceness above the service's: gradings first
FEEDBACK_PROCESSES = 2  # each a batch at a time: both cores when the gradings are done
FEEDBACK_BATCH = 6  # pages a batch at most: a batch's pages all go out at its end
FEEDBACK_START_SECONDS = 120  # its imports (nbconvert, nbgrader) on a busy machine


def write_atomically(path: Path, data: bytes) -> None:
    """engine.protocol's, imported on first use (it imports torch, which the feedback
    processes do not need)."""
    from .engine.protocol import write_atomically as write

    write(path, data)


def log(event: str, **fields) -> None:
    """One timestamped line on stdout: the event, then key=value pairs."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    shown = " ".join(f"{key}={_shown(value)}" for key, value in fields.items())
    print(f"{now} {event}{' ' + shown if shown else ''}", flush=True)


def _shown(value) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    text = " ".join(text.split())
    return json.dumps(text) if (" " in text or not text or '"' in text) else text


# ---- the exchange and the journal ---------------------------------------------------------

@dataclass(frozen=True)
class Inbound:
    """One submission in the exchange's inbound/ folder."""

    name: str  # student+assignment+timestamp+random, as nbgrader submit names it
    path: Path
    student: str
    assignment: str
    timestamp: datetime  # when the student submitted (UTC, naive, as nbgrader parses it)

    @property
    def key(self) -> tuple[str, str]:
        return self.student, self.assignment


def parse_inbound(path: Path) -> Inbound | None:
    """The submission an inbound folder holds, or None if its name is not nbgrader's."""
    from nbgrader.utils import parse_utc

    parts = path.name.rsplit("+", 3)
    if len(parts) < 3:
        return None
    try:
        stamp = parse_utc(parts[2])
    except (ValueError, OverflowError):
        return None
    return Inbound(path.name, path, parts[0], parts[1], stamp.replace(tzinfo=None))


def is_complete(path: Path) -> bool:
    """Whether nbgrader submit has finished writing this folder: it writes the secret last,
    then makes the folder rwx for everyone."""
    try:
        return (path / SECRET).stat().st_size > 0 \
            and path.stat().st_mode & 0o777 == COMPLETE_MODE
    except OSError:
        return False


class Journal:
    """A file per submission, COURSE/results/service/NAME.json, each write atomic."""

    def __init__(self, root: Path):
        self.folder = root / JOURNAL

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def read(self, name: str) -> dict | None:
        try:
            return json.loads(self.path(name).read_text())
        except (OSError, ValueError):
            return None

    def write(self, entry: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path(entry["submission"]),
                         json.dumps(entry, indent=1, sort_keys=True).encode())

    def entries(self) -> list[dict]:
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            entry = self.read(path.name[:-len(".json")])
            if entry:
                found.append(entry)
        return found


def exchange_inbound(course: CourseConfig) -> Path:
    """The course's inbound/ folder, as its configuration places the exchange."""
    from nbgrader.exchange.default import Exchange

    return Path(Exchange(config=course.config).root) / course.course_id / "inbound"


def pending(course: CourseConfig, journal: Journal, done: set[str],
            seen: dict[str, Inbound] | None = None, inbound: Path | None = None
            ) -> list[Inbound]:
    """The complete submissions in inbound/ whose journal does not say they are done,
    oldest first.

    done and seen are the caller's memory between calls: names found done, and complete
    submissions whose journal was read and found not done (the caller adds a name to done
    when it writes that it is), so that a folder is parsed and its journal read once, not
    at every poll."""
    inbound = inbound or exchange_inbound(course)
    seen = {} if seen is None else seen
    found = []
    try:
        entries = list(os.scandir(inbound))
    except OSError:
        return []
    for entry in entries:
        if entry.name in done:
            continue
        if entry.name in seen:
            found.append(seen[entry.name])
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        submission = parse_inbound(Path(entry.path))
        if submission is None or not is_complete(submission.path):
            continue
        state = (journal.read(submission.name) or {}).get("state")
        if state in DONE:
            done.add(submission.name)
            continue
        seen[submission.name] = submission
        found.append(submission)
    return sorted(found, key=lambda s: (s.timestamp, s.name))


# ---- one course ---------------------------------------------------------------------------

@dataclass
class Work:
    """A submission on its way through the service."""

    inbound: Inbound
    entry: dict
    future: Future | None = None  # its grading; None once recorded (or before it starts)
    submission: object = None  # runner.Submission, as collected
    reused: bool = False  # its result was written before a restart: not graded again
    started: float = field(default_factory=time.monotonic)


class CourseService:
    """The service for one course: its configuration, journal, grading and feedback."""

    def __init__(self, root: Path, pool: ThreadPoolExecutor, feedback: "FeedbackProcess",
                 max_per_hour: int | None):
        from nbgrader.exchange.default import ExchangeCollect

        self.course = load_course(root)
        self.root = self.course.root
        self.journal = Journal(self.root)
        self.pool, self.feedback, self.max_per_hour = pool, feedback, max_per_hour
        self.done: set[str] = set()
        self.seen: dict[str, Inbound] = {}  # complete, journal read, not done (see pending)
        self.busy: dict[tuple[str, str], Work] = {}  # (student, assignment) -> in flight
        self.run = None  # the open runner.GradingRun (one assignment at a time)
        self.blocked: dict[str, float] = {}  # assignment -> when to try it again
        self.graded: list[Work] = []  # recorded, their feedback not yet asked for
        self.sending: dict[Future, tuple[list[Work], float]] = {}  # batches, when sent
        self.collector = ExchangeCollect(coursedir=course_directory(self.course),
                                         config=self.course.config)
        self.inbound = exchange_inbound(self.course)
        log("course", course=self.course.course_id, root=self.root, inbound=self.inbound)

    # -- the loop's steps --

    def step(self) -> list[Future]:
        """Start what can start now, gradings and feedback batches; the futures of those
        in flight."""
        now = time.monotonic()
        for submission in pending(self.course, self.journal, self.done, self.seen,
                                  self.inbound):
            if submission.key in self.busy or max(self.blocked.get(submission.assignment, 0),
                                                  self.blocked.get(submission.name, 0)) > now:
                continue
            if self.run is not None and self.run.assignment != submission.assignment:
                continue  # another assignment's run is open: after it
            try:
                self.start(submission)
            except CourseError as error:  # the course or the assignment: all of it waits
                self._block(submission.assignment, error)
            except Exception as error:  # this submission only (a folder too big to copy...)
                self.busy.pop(submission.key, None)
                log("collect-fault", course=self.course.course_id, student=submission.student,
                    assignment=submission.assignment, submission=submission.name,
                    error=f"{type(error).__name__}: {error}")
                self._block(submission.name, error)
        self.close_if_idle()
        self.release_graded()
        return [work.future for work in self.busy.values() if work.future is not None] \
            + list(self.sending)

    def take(self, finished: set[Future]) -> None:
        """Record the gradings, and journal the feedback batches, that have finished."""
        for future in [future for future in self.sending if future in finished]:
            self.released_batch(future)
        for work in [w for w in self.busy.values() if w.future in finished]:
            self.finish(work.future)

    def start(self, submission: Inbound) -> None:
        entry = self.journal.read(submission.name) or {
            "submission": submission.name, "course": self.course.course_id,
            "student": submission.student, "assignment": submission.assignment,
            "timestamp": submission.timestamp.isoformat(), "state": "new",
            "seen": time.time()}
        if entry["state"] == "graded":  # killed before its feedback went out
            self.busy[submission.key] = work = Work(submission, entry)
            self.graded.append(work)
            return
        limit = self.over_limit(submission)
        if limit:
            self.limit(submission, entry, limit)
            return
        run = self.open_run(submission.assignment)
        if entry["state"] != "collected":
            self.collect(submission)
            entry.update(state="collected", seed=secrets.randbelow(2**31),
                         collected=time.time())
            self.journal.write(entry)
            log("collected", course=self.course.course_id, student=submission.student,
                assignment=submission.assignment, submission=submission.name)
        work = self.busy[submission.key] = Work(submission, entry)
        work.submission = run.layout.read(submission.student, run.limits.notebook_bytes)
        stored = self._stored_result(work)
        if stored is not None:  # graded, recorded or not, before a restart: not again
            future = Future()
            future.set_result(stored.to_json())
            work.future, work.reused = future, True
            return
        from .engine.runner import grade_submission

        work.future = self.pool.submit(
            grade_submission, work.submission.notebook, submission.assignment,
            entry["seed"], run.limits, submission.student, work.submission.problem,
            work.submission.sha256)

    def _stored_result(self, work: Work):
        from .engine.results import read_json

        stored = read_json(self.run.layout.result(work.inbound.student))
        if stored is not None and stored.seed == work.entry["seed"] \
                and stored.notebook_sha256 == work.submission.sha256 \
                and stored.assignment == work.inbound.assignment:
            return stored
        return None

    def finish(self, future: Future) -> None:
        """A grading came back: record it; its feedback goes out with release_graded."""
        from .engine.results import SubmissionResult
        from .engine.runner import describe_fault

        work = next(w for w in self.busy.values() if w.future is future)
        student, assignment = work.inbound.key
        try:
            result = SubmissionResult.from_json(future.result())
        except Exception as error:  # the grader's own fault, twice: no grade, try later
            log("grader-fault", course=self.course.course_id, student=student,
                assignment=assignment, submission=work.inbound.name,
                error=describe_fault(error))
            del self.busy[work.inbound.key]
            self._block(assignment, error)
            return
        try:
            self.run.record(result, work.submission, True)
        except Exception as error:  # the gradebook or a disk: try again later
            self.run.rollback()
            log("record-fault", course=self.course.course_id, student=student,
                assignment=assignment, submission=work.inbound.name,
                error=describe_fault(error))
            del self.busy[work.inbound.key]
            self._block(assignment, error)
            return
        work.future = None
        work.entry.update(state="graded", score=result.score, max_score=result.max_score,
                          graded=time.time(), note=result.note)
        self.journal.write(work.entry)
        log("recorded" if work.reused else "graded", course=self.course.course_id,
            student=student, assignment=assignment,
            submission=work.inbound.name, score=f"{result.score:g}/{result.max_score:g}",
            seed=result.seed, seconds=time.monotonic() - work.started)
        self.graded.append(work)

    def release_graded(self) -> None:
        """Send the feedback of the submissions recorded and not yet sent to the feedback
        processes, oldest first, while one is free: a batch is at most FEEDBACK_BATCH
        pages of one assignment, one GenerateFeedback run (every other student excluded)
        then ReleaseFeedback for each. A batch's pages all go out when it ends: the cap
        keeps the first pages from waiting for the last; a run's overhead is small (its
        templates are compiled once a process)."""
        while self.graded and len(self.sending) < self.feedback.processes:
            assignment = self.graded[0].inbound.assignment
            batch = [work for work in self.graded
                     if work.inbound.assignment == assignment][:FEEDBACK_BATCH]
            self.graded = [work for work in self.graded if all(work is not w for w in batch)]
            future = self.feedback.submit(self.root, assignment,
                                          [work.inbound.student for work in batch])
            self.sending[future] = batch, time.monotonic()

    def released_batch(self, future: Future) -> None:
        """The feedback batch came back: journal and log each submission it released."""
        batch, sent = self.sending.pop(future)
        try:
            faults, cpu = future.result()
        except Exception as error:  # the feedback process died (the next batch starts
            # another), or could not start
            why = f"the feedback process failed: {type(error).__name__}: {error}"
            faults, cpu = {work.inbound.student: why for work in batch}, 0.0
        log("feedback-batch", course=self.course.course_id,
            assignment=batch[0].inbound.assignment, submissions=len(batch),
            seconds=time.monotonic() - sent, cpu=cpu)
        for work in batch:
            self.released(work, faults.get(work.inbound.student, "no answer"))

    def released(self, work: Work, fault: str | None) -> None:
        student, assignment = work.inbound.key
        if fault is not None:
            log("feedback-fault", course=self.course.course_id, student=student,
                assignment=assignment, submission=work.inbound.name, error=fault)
            del self.busy[work.inbound.key]
            self._block(assignment, RuntimeError(fault))
            return
        work.entry.update(state="released", released=time.time())
        self.journal.write(work.entry)
        self._done(work.inbound.name)
        del self.busy[work.inbound.key]
        log("released", course=self.course.course_id, student=student, assignment=assignment,
            submission=work.inbound.name,
            after=time.time() - work.inbound.timestamp.replace(tzinfo=UTC).timestamp())

    def drain(self) -> None:
        """Release the feedback of everything recorded, waiting for it (when stopping)."""
        self.release_graded()
        while self.sending:
            future = next(iter(self.sending))
            future.exception()
            self.released_batch(future)
            self.release_graded()

    def _done(self, name: str) -> None:
        self.done.add(name)
        self.seen.pop(name, None)

    # -- collect, the rate limit --

    def collect(self, submission: Inbound) -> None:
        """Copy the inbound folder to submitted/ as nbgrader collect does (its own copy),
        into a temporary folder that is then renamed into place."""
        dest = self.course.path(self.course.submitted_directory, submission.student,
                                submission.assignment)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temporary = dest.parent / f".{dest.name}.collecting"
        old = dest.parent / f".{dest.name}.replaced"
        for litter in (temporary, old):
            shutil.rmtree(litter, ignore_errors=True)
        self.collector.do_copy(str(submission.path), str(temporary))
        if dest.exists():
            dest.rename(old)
        temporary.rename(dest)
        shutil.rmtree(old, ignore_errors=True)

    def over_limit(self, submission: Inbound) -> str | None:
        """Why this submission is over --max-per-hour, or None."""
        if not self.max_per_hour:
            return None
        start = submission.timestamp - timedelta(hours=1)
        graded = sorted(datetime.fromisoformat(entry["timestamp"])
                        for entry in self.journal.entries()
                        if entry.get("student") == submission.student
                        and entry.get("assignment") == submission.assignment
                        and entry.get("state") in ("graded", "released")
                        and entry["submission"] != submission.name
                        and start < datetime.fromisoformat(entry["timestamp"])
                        <= submission.timestamp)
        if len(graded) < self.max_per_hour:
            return None
        again = graded[-self.max_per_hour] + timedelta(hours=1)
        return (f"This submission of {submission.assignment} (submitted "
                f"{submission.timestamp:%Y-%m-%d %H:%M:%S} UTC) was not graded: this course "
                f"grades at most {self.max_per_hour} submission(s) of an assignment per "
                f"student per hour, and you had {len(graded)} graded in the hour before it. "
                f"It is kept, and your instructor can see it. Keep working with the checks in "
                f"the notebook, then submit again after {again:%Y-%m-%d %H:%M} UTC to have it "
                f"graded.")

    def limit(self, submission: Inbound, entry: dict, message: str) -> None:
        """Release a page with the message in place of feedback, under the name
        fetch_feedback looks for."""
        from nbgrader.utils import notebook_hash

        secret = (submission.path / SECRET).read_text()
        feedback = self.inbound.parent / "feedback"
        feedback.mkdir(parents=True, exist_ok=True)
        page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Not graded"
                "</title></head><body><h1>Not graded: too many submissions this hour</h1>"
                f"<p>{html.escape(message)}</p></body></html>\n").encode()
        for notebook in sorted(submission.path.glob("*.ipynb")):
            name = notebook_hash(secret=secret, notebook_id=notebook.stem)
            write_atomically(feedback / f"{name}.html", page)
            os.chmod(feedback / f"{name}.html", 0o644)
        entry.update(state="limited", released=time.time(), note=message)
        self.journal.write(entry)
        self._done(submission.name)
        log("limited", course=self.course.course_id, student=submission.student,
            assignment=submission.assignment, submission=submission.name,
            max_per_hour=self.max_per_hour)

    # -- the grading run --

    def open_run(self, assignment: str):
        from .engine.runner import GradingRun

        if self.run is None:
            self.run = GradingRun(self.root, assignment)
            log("run-open", course=self.course.course_id, assignment=assignment)
        return self.run

    def close_if_idle(self) -> None:
        if self.run is not None and not self.busy:
            self.run.close()
            log("run-closed", course=self.course.course_id, assignment=self.run.assignment)
            self.run = None

    def _block(self, what: str, error: BaseException) -> None:
        """Try an assignment (or one submission, by its name) again later."""
        wait_seconds = 2.0 if isinstance(error, CourseBusy) else RETRY_SECONDS
        self.blocked[what] = time.monotonic() + wait_seconds
        log("retry-later", course=self.course.course_id, waiting=what,
            seconds=wait_seconds, why=" ".join(str(error).split())[:300])
        self.close_if_idle()

    def close(self) -> None:
        if self.run is not None:
            self.run.close()
            self.run = None


# ---- the feedback process ------------------------------------------------------------------

def course_directory(course: CourseConfig):
    """nbgrader's CourseDirectory for a course, rooted where the course is."""
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=course.config)
    coursedir.root = str(course.root)
    return coursedir


class FeedbackProcess:
    """The processes that generate and release feedback (see feedback_batch), started with
    multiprocessing's spawn (the service's process has threads: no fork), and again if one
    dies."""

    def __init__(self, processes: int = 1):
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_feedback_process_start, initargs=(os.getpid(), FEEDBACK_NICE))
        return self._pool

    def warm_up(self, roots: list[Path]) -> list[Future]:
        """Import nbgrader and nbconvert there and read the courses' configurations: one
        task a process (the pool starts a process for each task while none is idle)."""
        return [self._executor().submit(_feedback_warm_up, [str(root) for root in roots])
                for _ in range(self.processes)]

    def submit(self, root: Path, assignment: str, students: list[str]) -> Future:
        """Send a batch (see feedback_batch). A pool whose process died is broken (its
        batches failed, and are sent again later): new processes take its place."""
        try:
            return self._executor().submit(feedback_batch, str(root), assignment, students)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            return self._executor().submit(feedback_batch, str(root), assignment, students)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


_FEEDBACK_COURSES: dict[str, tuple] = {}  # in the feedback process: root -> (course, api)


def _feedback_process_start(parent: int, nice: int) -> None:
    """The feedback process's start: it dies with the service (SIGKILL when its parent
    dies; its parent asks it to stop otherwise, after the last batch), and gives way to
    the gradings."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C or a unit's SIGTERM to the group:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the service stops it when it is done
    try:
        armed = ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0  # DEATHSIG
    except (OSError, AttributeError):
        armed = False
    if not armed:  # not Linux: look for the parent every second
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)
    os.nice(nice)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _feedback_course(root: str):
    """A course's configuration and NbGraderAPI, in the feedback process; its feedback
    exporter keeps its compiled templates from one run to the next (_keeping_templates)."""
    if root not in _FEEDBACK_COURSES:
        from nbgrader.apps import NbGraderAPI
        from traitlets.config import Config
        from traitlets.utils.importstring import import_item

        course = load_course(Path(root))
        config = Config(course.config)
        exporter = config.GenerateFeedback.get("exporter_class")
        if exporter is not None:
            config.GenerateFeedback.exporter_class = _keeping_templates(
                import_item(exporter) if isinstance(exporter, str) else exporter)
        _FEEDBACK_COURSES[root] = course, NbGraderAPI(coursedir=course_directory(course),
                                                      config=config)
    return _FEEDBACK_COURSES[root]


_COMPILED_TEMPLATES = None  # in the feedback process: jinja2's compiled templates, by source


def _keeping_templates(exporter_class: type) -> type:
    """The exporter class, its jinja2 environment given a bytecode cache held in memory:
    each GenerateFeedback run makes a new exporter, whose new environment compiled every
    template again (70 ms a run, most of a one-page run's overhead); jinja2 checks each
    cached template against its source's checksum. The pages are the same."""
    global _COMPILED_TEMPLATES
    from jinja2 import BytecodeCache

    if not hasattr(exporter_class, "_create_environment"):  # not a TemplateExporter
        return exporter_class
    if _COMPILED_TEMPLATES is None:
        class Compiled(BytecodeCache):
            def __init__(self):
                self.code: dict[str, tuple[str, object]] = {}

            def load_bytecode(self, bucket):
                checksum, code = self.code.get(bucket.key, (None, None))
                if checksum == bucket.checksum:
                    bucket.code = code

            def dump_bytecode(self, bucket):
                self.code[bucket.key] = bucket.checksum, bucket.code

        _COMPILED_TEMPLATES = Compiled()
    cache = _COMPILED_TEMPLATES

    class KeepingTemplates(exporter_class):
        def _create_environment(self):
            environment = super()._create_environment()
            environment.bytecode_cache = cache
            return environment

    return KeepingTemplates


def _feedback_warm_up(roots: list[str]) -> None:
    """Import what a batch needs, the exporter and preprocessors that the courses name
    included, before the first batch."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    from nbgrader.converters import GenerateFeedback
    from traitlets.config import Config

    for root in roots:
        _, api = _feedback_course(root)
        converter = GenerateFeedback(coursedir=api.coursedir, parent=api)
        config = Config()
        config.HTMLExporter.template_name = "feedback"  # as NbGraderAPI.generate_feedback
        converter.update_config(config)
        page = new_notebook(cells=[new_markdown_cell("*warm-up* $x$"), new_code_cell("x = 1")])
        exporter = converter.exporter_class(parent=converter, config=converter.config)
        # A page of nothing: the exporter's own imports, before the first batch. Only a
        # warm-up: if it fails, the first batch says what fails.
        with contextlib.suppress(Exception):
            exporter.from_notebook_node(page, {"nbgrader": {
                "score": 0, "max_score": 0, "late_penalty": 0, "student": "",
                "assignment": "", "notebook": ""}})


def feedback_batch(root: str, assignment: str, students: list[str]
                   ) -> tuple[dict[str, str | None], float]:
    """In the feedback process: nbgrader's GenerateFeedback for these students of a course,
    in one run (every other student excluded), then ReleaseFeedback for each; if the run
    fails, each student's page is generated on its own, so that one page's fault is that
    student's alone. ({student: None, or what failed}, the CPU seconds it took)."""
    cpu = time.process_time()
    course, api = _feedback_course(root)
    together = len(students) > 1 and _generate(course, api, assignment, set(students))
    faults: dict[str, str | None] = {}
    for student in students:
        steps = [("release_feedback", api.release_feedback)]
        if not together:
            steps.insert(0, ("generate_feedback", api.generate_feedback))
        faults[student] = None
        try:
            for step, call in steps:
                outcome = call(assignment, student)
                if not outcome.get("success"):
                    raise RuntimeError(f"{step} failed: "
                                       f"{(outcome.get('error') or outcome.get('log'))[-500:]}")
        except Exception as error:
            faults[student] = str(error)
    return faults, time.process_time() - cpu


def _generate(course: CourseConfig, api, assignment: str, students: set[str]) -> bool:
    """GenerateFeedback for these students only, in one run; whether it worked."""
    autograded = replace(course, submitted_directory=course.autograded_directory)
    others = set(autograded.students(assignment)) - students
    api.coursedir.student_id_exclude = ",".join(sorted(others))
    try:
        return bool(api.generate_feedback(assignment).get("success"))
    except Exception:  # each is generated on its own then, and says what failed
        return False
    finally:
        api.coursedir.student_id_exclude = ""


# ---- the service ---------------------------------------------------------------------------

def serve(courses: list[Path], max_per_hour: int | None = None, jobs: int | None = None,
          poll: float = POLL_SECONDS) -> int:
    """Run until SIGTERM or SIGINT; 2 when a course cannot be served at all."""
    from .engine.launch import warm_up

    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)
        log("stopping", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    jobs = jobs or os.cpu_count() or 1
    warm_up()  # the fork server imports torch while this process imports nbgrader
    pool = ThreadPoolExecutor(jobs)
    feedback = FeedbackProcess(FEEDBACK_PROCESSES)
    try:
        warming = feedback.warm_up(courses)  # and the feedback processes nbconvert
        try:
            services = [CourseService(root, pool, feedback, max_per_hour) for root in courses]
        except CourseError as error:
            log("error", why=str(error))
            return 2
        # What grading and recording need (torch, the gradebook's ORM) is imported before
        # the first submission, not while it waits.
        import nbgrader.api  # noqa: F401

        from .engine import runner  # noqa: F401
        try:
            for future in warming:
                future.result(timeout=FEEDBACK_START_SECONDS)
        except Exception as error:  # each batch says so again, and is tried again later
            log("feedback-fault", error=f"the feedback process did not start: "
                                        f"{type(error).__name__}: {error}")
        log("serving", courses=len(services), jobs=jobs, max_per_hour=max_per_hour or "none",
            poll=poll)
        while not stopping:
            futures = []
            for service in services:
                futures += service.step()
            if futures:
                finished, _ = wait(futures, timeout=poll, return_when=FIRST_COMPLETED)
                for service in services:
                    service.take(finished)
            else:
                time.sleep(poll)
        # Stopping: what is being graded is finished and recorded, its feedback released;
        # nothing new starts.
        for service in services:
            for work in list(service.busy.values()):
                if work.future is not None:
                    work.future.exception()
                    service.finish(work.future)
            service.drain()
            service.close()
        log("stopped")
        return 0
    finally:
        pool.shutdown(cancel_futures=True)
        feedback.close()


def health(courses: list[Path]) -> int:
    """Print the queue of each course: submissions in inbound/ not yet released, the age
    of the oldest. Exit 0 (2 if a course's configuration cannot be read)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    for root in courses:
        try:
            course = load_course(root)
        except CourseError as error:
            print(f"{root}: error: {error}")
            return 2
        queued = pending(course, Journal(course.root), set())
        oldest = max(((now - s.timestamp).total_seconds() for s in queued), default=0.0)
        print(f"course={course.course_id} root={course.root} queued={len(queued)} "
              f"oldest_seconds={oldest:.1f}")
    return 0


def main(args) -> int:
    """`python -m autograder serve` (see cli.py)."""
    courses = [Path(course) for course in (args.course or [Path.cwd()])]
    if args.health:
        return health(courses)
    return serve(courses, args.max_per_hour, args.jobs)


if __name__ == "__main__":
    sys.exit("run it as: python -m autograder serve --course COURSE")
