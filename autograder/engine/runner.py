"""Grade one notebook, or every submission of an assignment: the engine's entry points.

`grade_notebook` draws a seed for the hidden cases (from `references.graded.SEED_POOL`: never one
the student had before; recorded in the result, so that any grade can be reproduced), runs
the student's code in the sandbox and judges the tensors it returns against the autograd
references, here, in the trusted process.

`GradingRun` (and `grade_assignment`, which runs one) grades the submissions of an
assignment in an nbgrader course, as the course's own configuration lays it out
(`course_config`). Before it grades anything it checks the course, the assignment and the
gradebook, and takes the course's lock: one run per course at a time. For each submission
it writes, in this order, the JSON result (the mark that it is done), Gradescope's
results.json, the autograded notebook with its timestamp, and the scores in the gradebook
(with nbgrader's late penalty). It is resumable and idempotent: a submission whose result
matches its notebook's hash is not graded again, only what is missing after it is written
again, so a crash never leaves the gradebook and the results disagreeing after a rerun.

A grade is the student's or there is none: a submission whose grading fails for the
grader's own reasons (`errors.GraderError`, an OSError of the grading machinery) is
graded once more, and if that fails too, nothing is recorded for it; the run goes on and
ends with `UngradedSubmissions` naming each one.
"""

import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from .. import references
from ..kit.grading import PartResult, failed, grade_outcomes, helpers_failed
from ..references.graded import COMPUTED, SEED_POOL
from ..student_ids import shown, student_id_problem
from .course_config import CourseConfig, CourseError, course_lock, load_course
from .errors import GraderError
from .isolation import DEFAULT_LIMITS, Limits
from .launch import ForkServer, default_launcher, warm_up
from .protocol import write_atomically
from .release_metadata import rebuild_from_release, rebuilt_bytes, release_of
from .results import (
    SubmissionResult,
    gradebook_agrees,
    open_gradebook,
    read_json,
    write_gradebook,
    write_gradescope,
    write_json,
)
from .sandbox import run_parts

MB = 1 << 20
# The files nbgrader's submit writes beside the notebook, which autograded/ must hold too
# (`nbgrader release_feedback` reads them); nothing else of a submission is copied.
BOOKKEEPING = ("timestamp.txt", "submission_secret.txt")
BOOKKEEPING_BYTES = 4096
GRADING_ATTEMPTS = 2  # a grader fault is retried once, on a fresh fork server
TEMP_PREFIX = "backprop-"  # what the engine's temporary folders are called
# A live sandbox touches its folder at least once a stage (the cells, then each part);
# a folder untouched for this many stages past the run's start belongs to no live run.
STALE_STAGES = 3


class UngradedSubmissions(RuntimeError):
    """Some submissions were not graded (or not recorded) for the grader's own faults;
    every other result was recorded. A rerun grades (or records) them."""

    def __init__(self, results: list[SubmissionResult], faults: dict[str, str]):
        super().__init__(f"{len(faults)} submission(s) not graded or not recorded: "
                         + "; ".join(f"{student}: {fault}" for student, fault in faults.items()))
        self.results = results
        self.faults = faults


@dataclass(frozen=True)
class Submission:
    """A submitted notebook as read for grading."""

    notebook: bytes | None  # nbformat 4 JSON, or None when it cannot be graded
    problem: str | None = None  # why it cannot be graded
    sha256: str | None = None  # of the file as submitted: a changed file is graded again
    bookkeeping: tuple[tuple[str, bytes], ...] = ()  # nbgrader's files beside it, as read

    @property
    def timestamp(self) -> str | None:
        """Its timestamp.txt, as nbgrader's submit wrote it."""
        text = dict(self.bookkeeping).get("timestamp.txt", b"").decode(errors="replace")
        return text.strip() or None


def read_submission(path: Path, max_bytes: int = DEFAULT_LIMITS.notebook_bytes
                    ) -> tuple[bytes | None, str | None]:
    """The notebook's bytes (nbformat 4), or None and why it cannot be graded (missing,
    a link or not a regular file, empty, too large, not JSON, not a notebook...)."""
    path = Path(path)
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None, "no notebook was submitted."
    try:
        submission = _read_notebook_at(folder, path.name, max_bytes)
    finally:
        os.close(folder)
    return submission.notebook, submission.problem


def _read_notebook_at(folder: int, name: str, max_bytes: int) -> Submission:
    """Read the notebook name in the open folder: never through a link, never opening a
    FIFO or a device, never more than max_bytes."""
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return Submission(None, _missing_notebook(folder, name))
    refused = _not_a_file(info.st_mode, "the notebook")
    if refused:
        return Submission(None, refused)
    try:
        handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=folder)
    except OSError as error:  # replaced by a link or removed since: refused all the same
        return Submission(None, f"the notebook could not be opened ({error.strerror}), so "
                                f"it was not graded.")
    with os.fdopen(handle, "rb") as file:
        refused = _not_a_file(os.fstat(handle).st_mode, "the notebook")
        data = b"" if refused else file.read(max_bytes + 1)
    if refused:
        return Submission(None, refused)
    sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        return Submission(None, "the notebook file is empty (0 bytes): it was not graded. "
                                "Save it again in Jupyter, check that it opens, then submit "
                                "again.", sha256)
    if len(data) > max_bytes:
        return Submission(None, f"the notebook is more than the {max_bytes / MB:.0f} MB a "
                                f"submission may be: it was not graded. Clear its outputs "
                                f"(Kernel > Restart & Clear Output), save, then submit again.")
    notebook, problem = parse_notebook(data)
    return Submission(notebook, problem, sha256, _read_bookkeeping(folder))


def _not_a_file(mode: int, what: str) -> str | None:
    """Why a file of this mode is refused unopened, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return (f"{what} is {_kind(mode)}, not a regular file: it was not opened, so it was not "
            f"graded. Submit the notebook file itself.")


def _kind(mode: int) -> str:
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a regular file" if stat.S_ISREG(mode) else "a named pipe (FIFO)"
            if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device")


def _missing_notebook(folder: int, name: str) -> str:
    """No notebook of that name: say which notebooks the submission has instead."""
    others = sorted(entry.name for entry in os.scandir(folder)
                    if entry.name.endswith(".ipynb") and entry.name != name)
    if not others:
        return "no notebook was submitted."
    found = ", ".join(repr(other) for other in others[:3])
    return (f"no notebook named {name} was submitted, only {found}: rename it {name} (or "
            f"fetch the assignment again), then submit again.")


def _read_bookkeeping(folder: int) -> tuple[tuple[str, bytes], ...]:
    """nbgrader's small files beside the notebook, read as carefully as the notebook."""
    found = []
    for name in BOOKKEEPING:
        try:
            handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=folder)
        except OSError:
            continue
        with os.fdopen(handle, "rb") as file:
            if stat.S_ISREG(os.fstat(handle).st_mode):
                found.append((name, file.read(BOOKKEEPING_BYTES)))
    return tuple(found)


def parse_notebook(data: bytes) -> tuple[bytes | None, str | None]:
    """The notebook as nbformat 4 JSON (a version 3 one is upgraded), or None and why not.
    Nothing in the student's JSON may crash the grader: every failure is a note."""
    try:
        notebook = json.loads(data)
    except json.JSONDecodeError as error:
        return None, (f"the notebook is not valid JSON (line {error.lineno}, column "
                      f"{error.colno}): it could not be opened, so it was not graded. Open it "
                      f"in a text editor or download a fresh copy, then submit again.")
    except UnicodeDecodeError:
        return None, "the notebook is not text (UTF-8): it could not be opened, so it was " \
                     "not graded."
    except RecursionError:
        return None, "the notebook's JSON is nested too deeply to be read, so it was not " \
                     "graded. Download a fresh copy of the assignment and submit again."
    except ValueError as error:  # a number too long to convert, say
        return None, f"the notebook's JSON cannot be read ({error}), so it was not graded."
    if isinstance(notebook, dict) and notebook.get("nbformat") == 3:
        return _upgrade(data)
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list) \
            or not all(isinstance(cell, dict) for cell in notebook["cells"]):
        return None, "the file is valid JSON but not a Jupyter notebook (it has no list of " \
                     "cells), so it was not graded."
    return data, None


def _upgrade(data: bytes) -> tuple[bytes | None, str | None]:
    """An nbformat 3 notebook converted to nbformat 4, as Jupyter would open it."""
    import nbformat  # slow to import; only old notebooks need it

    try:
        notebook = nbformat.reads(data.decode(), as_version=4)
        nbformat.validate(notebook)
        return nbformat.writes(notebook).encode(), None  # a lone surrogate fails here
    except Exception as error:  # nbformat's errors on a malformed old notebook vary
        return None, (f"the notebook is in the old format (nbformat 3) and could not be "
                      f"converted ({type(error).__name__}), so it was not graded. Open and "
                      f"save it in a current Jupyter, then submit again.")


def grade_notebook(path: Path, assignment: str, *, seed: int | None = None,
                   limits: Limits = DEFAULT_LIMITS, student: str | None = None,
                   launcher: ForkServer | None = None) -> SubmissionResult:
    """Grade one notebook in the sandbox; a seed from the pool for the hidden cases unless
    given."""
    data, problem = read_submission(Path(path), limits.notebook_bytes)
    return grade_data(Submission(data, problem, file_sha256(Path(path))), assignment,
                      seed=seed, limits=limits, student=student, launcher=launcher)


def grade_data(submission: Submission, assignment: str, *, seed: int | None = None,
               limits: Limits = DEFAULT_LIMITS, student: str | None = None,
               launcher: ForkServer | None = None) -> SubmissionResult:
    """Grade a submission already read; GraderError when the grader fails."""
    start = time.monotonic()
    # One core a grading (the jobs take them all): on the trusted side's small tensors,
    # torch's intra-op threads cost 1.8 to 5 times the CPU, spinning.
    torch.set_num_threads(1)
    graded = references.get(assignment)
    seed = SEED_POOL.draw(assignment, student) if seed is None else seed
    result = SubmissionResult(assignment, [], seed, student=student,
                              notebook_sha256=submission.sha256)
    if submission.notebook is None:
        result.note = submission.problem or "no notebook was submitted."
        result.parts = [PartResult(part.id, 0, part.points, f"Not graded: {result.note}",
                                   "not_graded") for part in graded.parts]
    else:
        # Graded on hidden cases only: fresh for this submission, and covering the visible
        # ones' shapes (a batch of 1 included). The visible cases are the student's own check.
        cases = {part.id: part.cases("hidden", seed) for part in graded.parts}
        notebook, restored = rebuilt_bytes(submission.notebook, assignment)
        result.note = restored or ""
        run = run_parts(notebook, graded, cases, limits, launcher or default_launcher())
        result.isolation = run.isolation
        result.parts, failing = [], {}
        for part in graded.parts:  # in notebook order: a part's helpers come before it
            verdict = failed(part, run.failures[part.id]) if part.id in run.failures \
                else grade_outcomes(part, cases[part.id], run.outcomes[part.id], COMPUTED,
                                    helpers_failed_with=helpers_failed(part, failing))
            result.parts.append(verdict)
            if not verdict.passed:
                failing[part.function] = verdict.mistake
    result.seconds = time.monotonic() - start
    return result


def grade_submission(notebook: bytes | None, assignment: str, seed: int | None,
                     limits: Limits, student: str, problem: str | None = None,
                     sha256: str | None = None) -> dict:
    """Grade a submission given as bytes; its result as JSON data. The unit of work that
    a thread of the local pool or a Dask worker runs: plain data in, plain data out.

    A fault of the grader is tried once more (the fork server restarts on the next launch
    if it died); if it happens again, it is raised: there is no grade."""
    submission = Submission(notebook, problem, sha256)
    for attempt in range(1, GRADING_ATTEMPTS + 1):
        try:
            return grade_data(submission, assignment, seed=seed, limits=limits,
                              student=student).to_json()
        except (GraderError, OSError):
            if attempt == GRADING_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def describe_fault(error: BaseException) -> str:
    """A grader fault in a few words, for one line of the console."""
    text = " ".join(str(error).split())
    return text if isinstance(error, GraderError) else f"{type(error).__name__}: {text}"


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, or None when there is no such file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class CourseLayout:
    """Where an assignment's submissions are (as the course configures it) and where the
    engine's results go: RESULTS/<assignment>/<student>.json, and Gradescope's file in
    RESULTS/<assignment>/gradescope/<student>.json, so that no student id (`ada.gradescope`,
    `gradescope`) can name another student's file."""

    course: CourseConfig
    assignment: str
    results: Path

    @property
    def notebook_name(self) -> str:
        return f"{self.assignment}.ipynb"

    def submitted_folder(self, student: str) -> Path:
        return self.course.path(self.course.submitted_directory, student, self.assignment)

    def autograded_folder(self, student: str) -> Path:
        return self.course.path(self.course.autograded_directory, student, self.assignment)

    def result(self, student: str) -> Path:
        return self.results / self.assignment / f"{student}.json"

    def gradescope(self, student: str) -> Path:
        return self.results / self.assignment / "gradescope" / f"{student}.json"

    def read(self, student: str, max_bytes: int) -> Submission:
        """A student's submission, read without following any link from the course root
        down: a linked or odd folder or notebook is refused with a note, never opened."""
        relative = self.submitted_folder(student).relative_to(self.course.root)
        folder = os.open(self.course.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, name in enumerate(relative.parts, start=1):
                try:
                    inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                    | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
                except OSError as error:
                    if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
                    return Submission(None, f"the submission's folder "
                                            f"{Path(*relative.parts[:depth])} is "
                                            f"{_kind(mode)}, not a folder: it was not "
                                            f"opened, so nothing was graded.")
                os.close(folder)
                folder = inner
            return _read_notebook_at(folder, self.notebook_name, max_bytes)
        finally:
            os.close(folder)


class GradingRun:
    """One run of grade-assignment over a course: everything checked and the course's lock
    taken on creation (CourseError, in one line, if anything is wrong), then `grade`.

    Use it as a context manager: closing releases the lock and the gradebook and removes
    the litter of killed runs (also removed on creation)."""

    def __init__(self, course_root: Path, assignment: str, *, results: Path | None = None,
                 limits: Limits = DEFAULT_LIMITS, gradebook: bool = True,
                 regrade: bool = False, wait: bool = False,
                 on_wait: Callable[[str], None] = lambda holder: None):
        self.started = time.time()
        if assignment not in references.ASSIGNMENTS:
            raise CourseError(f"unknown assignment {assignment!r}: the grader knows "
                              f"{', '.join(sorted(references.ASSIGNMENTS))}.")
        self.course = load_course(course_root, gradebook)
        self.assignment, self.regrade = assignment, regrade
        self.layout = CourseLayout(self.course, assignment,
                                   Path(results or self.course.root / "results").absolute())
        self.limits = limits  # the sandbox sees none of the machine's files (isolation.py)
        self._stale_seconds = STALE_STAGES * max(limits.startup_seconds, limits.part_seconds)
        self._closing = ExitStack()
        try:
            self._closing.enter_context(course_lock(self.course.root, wait, on_wait))
            self._closing.callback(self._remove_litter)
            self._remove_litter()
            self.book = self._open_gradebook() if gradebook else None
            self.late = self.course.late_penalty() if gradebook else None
            self.students = self.course.students(assignment)
        except BaseException:
            self._closing.close()
            raise

    def __enter__(self) -> "GradingRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._closing.close()

    @property
    def submissions_glob(self) -> Path:
        """Where the submissions are looked for: COURSE/submitted/*/ASSIGNMENT."""
        return self.layout.submitted_folder("*")

    def _open_gradebook(self):
        """The course's gradebook, checked to hold the assignment with the grader's parts."""
        from nbgrader.api import MissingEntry
        from sqlalchemy.exc import SQLAlchemyError

        try:
            book = open_gradebook(self.course.db_url, self.course.course_id)
        except (SQLAlchemyError, OSError) as error:
            raise CourseError(f"the gradebook ({_shown(self.course.db_url)}) cannot be opened: "
                              f"{' '.join(str(error).split())[:300]}") from None
        self._closing.callback(book.close)
        release = f"nbgrader generate_assignment {self.assignment}"
        try:
            notebook = book.find_notebook(self.assignment, self.assignment)
        except MissingEntry:
            try:
                book.find_assignment(self.assignment)
            except MissingEntry:
                raise CourseError(f"assignment {self.assignment!r} is not in the gradebook "
                                  f"({_shown(self.course.db_url)}): release it first "
                                  f"({release}).") from None
            raise CourseError(f"the gradebook's assignment {self.assignment!r} has no notebook "
                              f"{self.assignment}.ipynb: release it again ({release} "
                              f"--force).") from None
        points = {cell.name: cell.max_score for cell in notebook.grade_cells}
        for part in references.get(self.assignment).parts:
            if points.get(part.id) != part.points:
                raise CourseError(f"the gradebook's {self.assignment} does not have the "
                                  f"grader's test cell {part.id} worth {part.points:g} points: "
                                  f"release it again ({release} --force).")
        return book

    def grade(self, jobs: int | None = None, executor: Executor | None = None,
              on_result: Callable[[SubmissionResult, bool], None] | None = None,
              on_fault: Callable[[str, str], None] | None = None) -> list[SubmissionResult]:
        """Grade every submission not graded yet; the results of all, sorted by student.

        A submission already graded (its result file matches the notebook's hash) is not
        graded again, and whatever is missing after its result (Gradescope file, autograded
        notebook, gradebook row) is written again; with regrade it is graded again with its
        recorded seed, which gives the same grade. The others are graded `jobs` at a time
        (all cores by default), or on `executor` (a Dask cluster's, say: see
        engine.cluster). Each result is recorded here, by the calling thread, as soon as it
        arrives. on_result(result, was_graded_now) is called for each recorded result,
        on_fault(student, why) for each submission the grader failed; those raise
        UngradedSubmissions at the end, after everything else is recorded."""
        done: dict[str, SubmissionResult] = {}
        faults: dict[str, str] = {}
        submissions: dict[str, Submission] = {}
        pending: dict[str, int | None] = {}  # student -> the seed to grade with

        def record(result: SubmissionResult, graded_now: bool) -> None:
            try:
                self.record(result, submissions[result.student], graded_now)
            except Exception as error:  # the gradebook or a disk: the JSON result is kept
                self.rollback()
                fault(result.student, f"graded {result.score:g}/{result.max_score:g} but not "
                                      f"recorded in full ({describe_fault(error)})")
                return
            done[result.student] = result
            if on_result:
                on_result(result, graded_now)

        def fault(student: str, why: str) -> None:
            faults[student] = why
            if on_fault:
                on_fault(student, why)

        for student in self.students:
            problem = student_id_problem(student)
            if problem:  # a folder a student named: never a path, page or gradebook row
                fault(shown(student), f"not graded: the student id is refused ({problem})")
                continue
            try:
                submission = submissions[student] = self.layout.read(
                    student, self.limits.notebook_bytes)
            except OSError as error:  # the course's disk, not the student's file
                fault(student, f"not graded: its submission could not be read "
                               f"({describe_fault(error)})")
                continue
            stored = read_json(self.layout.result(student))
            current = stored is not None and stored.assignment == self.assignment \
                and stored.student == student and stored.notebook_sha256 == submission.sha256
            if current and not self.regrade:
                record(stored, False)
            else:
                pending[student] = stored.seed if current else None

        own_pool = executor is None and pending
        if own_pool:
            warm_up()
        pool = ThreadPoolExecutor(jobs or os.cpu_count() or 1) if own_pool else executor
        try:
            futures = {pool.submit(grade_submission, submissions[student].notebook,
                                   self.assignment, seed, self.limits, student,
                                   submissions[student].problem,
                                   submissions[student].sha256): student
                       for student, seed in pending.items()}
            for future in as_completed(futures):
                student = futures[future]
                try:
                    result = SubmissionResult.from_json(future.result())
                except Exception as error:  # the grader's fault, twice: no grade at all
                    fault(student, f"not graded: the grader failed ({describe_fault(error)})")
                    continue
                record(result, True)
        finally:
            if own_pool:
                pool.shutdown(cancel_futures=True)
        results = [done[student] for student in sorted(done)]
        if faults:
            raise UngradedSubmissions(results, dict(sorted(faults.items())))
        return results

    def record(self, result: SubmissionResult, submission: Submission,
               graded_now: bool) -> None:
        """Store a result: the JSON first (the graded work is kept whatever fails after
        it), then what derives from it, each written again only where it is missing."""
        student = result.student
        if graded_now:
            write_json(result, self.layout.result(student))
        write_gradescope(result, self.layout.gradescope(student), unless_same=not graded_now)
        if self.book is None:
            return
        folder = self.layout.autograded_folder(student)
        notebook = folder / self.layout.notebook_name
        if graded_now or not notebook.is_file():
            write_autograded(result, submission.notebook, notebook)
            for name, data in submission.bookkeeping:
                write_atomically(folder / name, data)
        if graded_now or not gradebook_agrees(self.book, result, student, self.assignment):
            write_gradebook(result, self.book, student, self.assignment,
                            _parse_timestamp(submission.timestamp), self.late)

    def rollback(self) -> None:
        """Undo the gradebook's uncommitted writes after a failed `record`."""
        if self.book is not None:
            self.book.db.rollback()

    def _remove_litter(self) -> None:
        remove_litter(self.layout.results, min(self.started, time.time()) - self._stale_seconds)


def grade_assignment(course_root: Path, assignment: str, *, results: Path | None = None,
                     limits: Limits = DEFAULT_LIMITS, gradebook: bool = True,
                     regrade: bool = False, jobs: int | None = None,
                     executor: Executor | None = None,
                     on_result: Callable[[SubmissionResult, bool], None] | None = None
                     ) -> list[SubmissionResult]:
    """Grade every submission of an assignment in a course (see GradingRun.grade)."""
    with GradingRun(course_root, assignment, results=results, limits=limits,
                    gradebook=gradebook, regrade=regrade) as run:
        return run.grade(jobs, executor, on_result)


def remove_litter(results: Path, before: float) -> None:
    """Remove what killed runs left behind: the engine's temporary folders untouched since
    `before` that no live process uses, and half-written `.*.tmp` results whose writer is
    gone."""
    temp = Path(tempfile.gettempdir())
    stale = [path for path in temp.glob(f"{TEMP_PREFIX}*")
             if not path.is_symlink() and path.is_dir() and _last_touched(path) < before]
    if stale:
        used = _paths_in_use()
        for path in stale:
            if not any(used_path == str(path) or used_path.startswith(f"{path}/")
                       for used_path in used):
                shutil.rmtree(path, ignore_errors=True)
    for path in results.rglob(".*.tmp") if results.is_dir() else ():
        writer = path.name.rsplit(".", 2)[-2]  # .NAME.PID.tmp: see protocol.write_atomically
        if not path.is_symlink() and path.is_file() and (
                not writer.isdigit() or int(writer) == os.getpid()
                or not psutil.pid_exists(int(writer))):
            path.unlink(missing_ok=True)


def _last_touched(folder: Path) -> float:
    """When anything was last added, renamed or removed in folder or a folder inside it."""
    latest = folder.lstat().st_mtime
    with suppress(OSError):
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                latest = max(latest, entry.stat(follow_symlinks=False).st_mtime)
    return latest


def _paths_in_use() -> set[str]:
    """The working directories, roots and open files of every process we may look at."""
    used = set()
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        links = [process / "cwd", process / "root"]
        with suppress(OSError):
            links += list((process / "fd").iterdir())
        for link in links:
            with suppress(OSError):
                used.add(os.readlink(link))
    return used


def _parse_timestamp(text: str | None):
    """A timestamp.txt's time as nbgrader reads it, or None."""
    if not text:
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text)
    except ValueError:
        return None


def _shown(db_url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:
        return "the configured CourseDirectory.db_url"


def verdict_outputs(part: PartResult) -> list[dict]:
    """A test cell's outputs showing the verdict: its message, then its figures (SVG)."""
    mark = "✔" if part.passed else "✘"
    return [{"output_type": "stream", "name": "stdout", "text": f"{mark} {part.message}\n"},
            *({"output_type": "display_data", "metadata": {},
               "data": {"image/svg+xml": figure, "text/plain": "<figure>"}}
              for figure in part.figures)]


def write_autograded(result: SubmissionResult, notebook: bytes | None, path: Path) -> None:
    """The submitted notebook with each test cell's output replaced by the part's verdict.

    `nbgrader generate_feedback` renders it with the scores from the gradebook, and the
    formgrader shows it. A notebook that could not be read becomes one that says why, with
    the test cells' verdicts. Whatever the student's JSON holds, this does not fail: its
    metadata is rebuilt from the release (`release_metadata`), its outputs replaced."""
    if notebook is None:
        content = {"cells": [{"cell_type": "markdown", "id": "not-graded", "metadata": {},
                              "source": f"**This notebook was not graded:** {result.note}"}],
                   "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    else:
        content = json.loads(notebook)
        rebuild_from_release(content, release_of(result.assignment))
    verdicts = {part.part_id: part for part in result.parts}
    for cell in content["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if cell["cell_type"] == "code":
            part = verdicts.pop(grade_id, None)
            cell["outputs"] = verdict_outputs(part) if part else []
    ids = {cell["id"] for cell in content["cells"]}
    for part in verdicts.values():  # test cells the student deleted: the verdict still shows
        cell_id = f"restored-{part.part_id}"
        while cell_id in ids:
            cell_id += "-"
        content["cells"].append(
            {"cell_type": "code", "execution_count": None, "id": cell_id,
             "source": f"# The test cell of {part.part_id}, restored by the grader.",
             "metadata": {"nbgrader": {"grade": True, "grade_id": part.part_id,
                                       "points": part.max_score, "locked": True,
                                       "solution": False, "schema_version": 3}},
             "outputs": verdict_outputs(part)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(content, indent=1).encode())
