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
   `ExchangeReleaseFeedback`, both in-process through `NbGraderAPI`, so that the student's
   ordinary `nbgrader fetch_feedback` (or the Assignments tab) returns it. The pages of
   all the submissions recorded since the last pass are generated in one run (the other
   students excluded): nbconvert compiles its templates once a run, half a page's cost.

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

import html
import json
import os
import secrets
import shutil
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .engine.course_config import CourseBusy, CourseConfig, CourseError, load_course
from .engine.protocol import write_atomically

POLL_SECONDS = 0.5
RETRY_SECONDS = 30.0  # a course, an assignment or a grader that failed is tried again after
JOURNAL = Path("results") / "service"  # in the course root (results/ is git-ignored)
SECRET = "submission_secret.txt"
TIMESTAMP = "timestamp.txt"
COMPLETE_MODE = 0o777  # nbgrader submit's last step: the inbound folder made rwx for all
DONE = ("released", "limited")


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


def pending(course: CourseConfig, journal: Journal, done: set[str]) -> list[Inbound]:
    """The complete submissions in inbound/ whose journal does not say they are done,
    oldest first."""
    inbound = exchange_inbound(course)
    found = []
    try:
        entries = list(os.scandir(inbound))
    except OSError:
        return []
    for entry in entries:
        if entry.name in done or not entry.is_dir(follow_symlinks=False):
            continue
        submission = parse_inbound(Path(entry.path))
        if submission is None or not is_complete(submission.path):
            continue
        state = (journal.read(submission.name) or {}).get("state")
        if state in DONE:
            done.add(submission.name)
            continue
        found.append(submission)
    return sorted(found, key=lambda s: (s.timestamp, s.name))


# ---- one course ---------------------------------------------------------------------------

@dataclass
class Work:
    """A submission on its way through the service."""

    inbound: Inbound
    entry: dict
    future: Future | None = None
    submission: object = None  # runner.Submission, as collected
    reused: bool = False  # its result was written before a restart: not graded again
    started: float = field(default_factory=time.monotonic)


class CourseService:
    """The service for one course: its configuration, journal, nbgrader API and grading."""

    def __init__(self, root: Path, pool: ThreadPoolExecutor, max_per_hour: int | None):
        self.course = load_course(root)
        self.root = self.course.root
        self.journal = Journal(self.root)
        self.pool, self.max_per_hour = pool, max_per_hour
        self.done: set[str] = set()
        self.busy: dict[tuple[str, str], Work] = {}  # (student, assignment) -> in flight
        self.run = None  # the open runner.GradingRun (one assignment at a time)
        self.blocked: dict[str, float] = {}  # assignment -> when to try it again
        self.graded: list[Work] = []  # recorded, their feedback not yet out
        self.api = self._api()
        self.inbound = exchange_inbound(self.course)
        log("course", course=self.course.course_id, root=self.root, inbound=self.inbound)

    def _api(self):
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        coursedir = CourseDirectory(config=self.course.config)
        coursedir.root = str(self.root)
        return NbGraderAPI(coursedir=coursedir, config=self.course.config)

    # -- the loop's steps --

    def step(self) -> list[Future]:
        """Start what can start now; the futures of the gradings in flight."""
        now = time.monotonic()
        for submission in pending(self.course, self.journal, self.done):
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
        return [work.future for work in self.busy.values() if work.future is not None]

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
            self.run._record(result, work.submission, True)
        except Exception as error:  # the gradebook or a disk: try again later
            self.run._rollback()
            log("record-fault", course=self.course.course_id, student=student,
                assignment=assignment, submission=work.inbound.name,
                error=describe_fault(error))
            del self.busy[work.inbound.key]
            self._block(assignment, error)
            return
        work.entry.update(state="graded", score=result.score, max_score=result.max_score,
                          graded=time.time(), note=result.note)
        self.journal.write(work.entry)
        log("recorded" if work.reused else "graded", course=self.course.course_id,
            student=student, assignment=assignment,
            submission=work.inbound.name, score=f"{result.score:g}/{result.max_score:g}",
            seed=result.seed, seconds=time.monotonic() - work.started)
        self.graded.append(work)

    def release_graded(self) -> None:
        """Generate and release the feedback of every submission recorded since the last
        call. Several of one assignment share one GenerateFeedback run (its HTML templates
        are compiled once a run, most of its cost): every other student is excluded."""
        waiting, self.graded = self.graded, []
        for assignment in sorted({work.inbound.assignment for work in waiting}):
            group = [work for work in waiting if work.inbound.assignment == assignment]
            together = len(group) > 1 and self._generate(
                assignment, {work.inbound.student for work in group})
            for work in group:
                self.release(work, generated=together)

    def _generate(self, assignment: str, students: set[str]) -> bool:
        """GenerateFeedback for these students only, in one run; whether it worked."""
        autograded = replace(self.course, submitted_directory=self.course.autograded_directory)
        others = set(autograded.students(assignment)) - students
        self.api.coursedir.student_id_exclude = ",".join(sorted(others))
        try:
            return bool(self.api.generate_feedback(assignment).get("success"))
        except Exception:  # each is generated on its own then, and says what failed
            return False
        finally:
            self.api.coursedir.student_id_exclude = ""

    def release(self, work: Work, generated: bool = False) -> None:
        """GenerateFeedback (unless generated) and ReleaseFeedback for this student and
        assignment."""
        student, assignment = work.inbound.key
        steps = [("release_feedback", self.api.release_feedback)]
        if not generated:
            steps.insert(0, ("generate_feedback", self.api.generate_feedback))
        try:
            for step, call in steps:
                outcome = call(assignment, student)
                if not outcome.get("success"):
                    raise RuntimeError(f"{step} failed: "
                                       f"{(outcome.get('error') or outcome.get('log'))[-500:]}")
        except Exception as error:
            log("feedback-fault", course=self.course.course_id, student=student,
                assignment=assignment, submission=work.inbound.name, error=error)
            del self.busy[work.inbound.key]
            self._block(assignment, error)
            return
        work.entry.update(state="released", released=time.time())
        self.journal.write(work.entry)
        self.done.add(work.inbound.name)
        del self.busy[work.inbound.key]
        log("released", course=self.course.course_id, student=student, assignment=assignment,
            submission=work.inbound.name,
            after=time.time() - work.inbound.timestamp.replace(tzinfo=UTC).timestamp())

    # -- collect, the rate limit --

    def collect(self, submission: Inbound) -> None:
        """Copy the inbound folder to submitted/ as nbgrader collect does (its own copy),
        into a temporary folder that is then renamed into place."""
        from nbgrader.exchange.default import ExchangeCollect

        dest = self.course.path(self.course.submitted_directory, submission.student,
                                submission.assignment)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temporary = dest.parent / f".{dest.name}.collecting"
        old = dest.parent / f".{dest.name}.replaced"
        for litter in (temporary, old):
            shutil.rmtree(litter, ignore_errors=True)
        collector = ExchangeCollect(coursedir=self.api.coursedir, config=self.course.config)
        collector.do_copy(str(submission.path), str(temporary))
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
        self.done.add(submission.name)
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
    try:
        try:
            services = [CourseService(root, pool, max_per_hour) for root in courses]
        except CourseError as error:
            log("error", why=str(error))
            return 2
        log("serving", courses=len(services), jobs=jobs, max_per_hour=max_per_hour or "none",
            poll=poll)
        while not stopping:
            futures = []
            for service in services:
                futures += service.step()
            if futures:
                finished, _ = wait(futures, timeout=poll, return_when=FIRST_COMPLETED)
                for service in services:
                    for future in [f for f in finished if any(
                            w.future is f for w in service.busy.values())]:
                        service.finish(future)
            elif not any(service.graded for service in services):
                time.sleep(poll)
            for service in services:
                service.release_graded()
        # Stopping: what is being graded is finished and recorded; nothing new starts.
        for service in services:
            for work in list(service.busy.values()):
                if work.future is not None and all(work is not w for w in service.graded):
                    work.future.exception()
                    service.finish(work.future)
            service.release_graded()
            service.close()
        log("stopped")
        return 0
    finally:
        pool.shutdown(cancel_futures=True)


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
