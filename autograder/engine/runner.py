"""Grade one notebook, or every submission of an assignment: the engine's entry points.

`grade_notebook` draws a fresh seed for the hidden cases (recorded in the result, so that
any grade can be reproduced), runs the student's code in the sandbox and judges the tensors
it returns against the autograd references, here, in the trusted process.

`grade_assignment` grades submitted/<student>/<assignment>/ of an nbgrader course: one JSON
result per submission (the mark that it is done), Gradescope's results.json beside it, the
scores in the gradebook, and an autograded notebook for `nbgrader generate_feedback`. It is
resumable and idempotent: a submission whose result file matches its notebook's hash is
not graded again, and an interrupted run loses or duplicates nothing.
"""

import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from .. import assignments
from ..grading import PartResult, failed, grade_outcomes
from .isolation import DEFAULT_LIMITS, Limits
from .launch import Launcher, default_launcher, warm_up
from .protocol import write_atomically
from .results import (
    GradebookEntry,
    SubmissionResult,
    open_gradebook,
    read_json,
    write_gradebook,
    write_gradescope,
    write_json,
)
from .sandbox import run_parts

MB = 1 << 20


def read_submission(path: Path, max_bytes: int = DEFAULT_LIMITS.notebook_bytes
                    ) -> tuple[bytes | None, str | None]:
    """The notebook's bytes, or None and why it cannot be graded (missing, empty, not JSON...)."""
    if not path.is_file():
        return None, "no notebook was submitted."
    size = path.stat().st_size
    if size == 0:
        return None, "the notebook file is empty (0 bytes): it was not graded. Save it again " \
                     "in Jupyter, check that it opens, then submit again."
    if size > max_bytes:
        return None, (f"the notebook is {size / MB:.0f} MB, more than the {max_bytes / MB:.0f} MB "
                      f"a submission may be: it was not graded. Clear its outputs (Kernel > "
                      f"Restart & Clear Output), save, then submit again.")
    data = path.read_bytes()
    try:
        notebook = json.loads(data)
    except json.JSONDecodeError as error:
        return None, (f"the notebook is not valid JSON (line {error.lineno}, column "
                      f"{error.colno}): it could not be opened, so it was not graded. Open it "
                      f"in a text editor or download a fresh copy, then submit again.")
    except UnicodeDecodeError:
        return None, "the notebook is not text (UTF-8): it could not be opened, so it was " \
                     "not graded."
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        return None, "the file is valid JSON but not a Jupyter notebook (it has no list of " \
                     "cells), so it was not graded."
    return data, None


def grade_notebook(path: Path, assignment: str, *, seed: int | None = None,
                   limits: Limits = DEFAULT_LIMITS, student: str | None = None,
                   launcher: Launcher | None = None) -> SubmissionResult:
    """Grade one notebook in the sandbox; a fresh seed for the hidden cases unless given."""
    start = time.monotonic()
    graded = assignments.get(assignment)
    seed = secrets.randbelow(2**31) if seed is None else seed
    data, problem = read_submission(Path(path), limits.notebook_bytes)
    result = SubmissionResult(assignment, [], seed, student=student,
                              notebook_sha256=file_sha256(Path(path)))
    if problem:
        result.note = problem
        result.parts = [PartResult(part.id, 0, part.points, f"Not graded: {problem}",
                                   "not_graded") for part in graded.parts]
    else:
        # Graded on hidden cases only: fresh for this submission, and covering the visible
        # ones' shapes (a batch of 1 included). The visible cases are the student's own check.
        cases = {part.id: part.cases("hidden", seed) for part in graded.parts}
        run = run_parts(data, graded, cases, limits, launcher or default_launcher())
        result.isolation = run.isolation
        result.parts = [failed(part, run.failures[part.id]) if part.id in run.failures
                        else grade_outcomes(part, cases[part.id], run.outcomes[part.id])
                        for part in graded.parts]
    result.seconds = time.monotonic() - start
    return result


@dataclass(frozen=True)
class CourseLayout:
    """Where an nbgrader course keeps an assignment's submissions and the engine's results."""

    root: Path
    assignment: str
    results: Path

    def students(self) -> list[str]:
        submitted = self.root / "submitted"
        if not submitted.is_dir():
            return []
        return sorted(p.name for p in submitted.iterdir() if (p / self.assignment).is_dir())

    def submitted(self, student: str) -> Path:
        return self.root / "submitted" / student / self.assignment / f"{self.assignment}.ipynb"

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment / f"{self.assignment}.ipynb"

    def result(self, student: str) -> Path:
        return self.results / self.assignment / f"{student}.json"

    def gradescope(self, student: str) -> Path:
        return self.results / self.assignment / f"{student}.gradescope.json"


def grade_assignment(course_root: Path, assignment: str, *, results: Path | None = None,
                     limits: Limits = DEFAULT_LIMITS, gradebook: bool = True,
                     regrade: bool = False, jobs: int | None = None,
                     executor: Executor | None = None,
                     on_result: Callable[[SubmissionResult, bool], None] | None = None
                     ) -> list[SubmissionResult]:
    """Grade every submission of an assignment in a course; resumable, idempotent.

    A submission already graded (its result file matches the notebook's hash) is skipped
    and its stored result returned; with regrade=True it is graded again with its recorded
    seed, which gives the same grade. The others are graded `jobs` at a time (all cores by
    default), or on `executor` when one is given (a Dask cluster's, say: see
    engine.cluster). Each result is written here, by the calling thread, once and
    atomically, as soon as it arrives. on_result(result, was_graded_now) is called for each.
    """
    course_root = Path(course_root).resolve()
    layout = CourseLayout(course_root, assignment, Path(results or course_root / "results"))
    # The sandbox never sees the course (gradebook, other students) or the results.
    limits = replace(limits, hidden=(*limits.hidden, str(course_root), str(layout.results)))
    db_url = f"sqlite:///{course_root / 'gradebook.db'}"
    done: dict[str, SubmissionResult] = {}
    pending: dict[str, int | None] = {}  # student -> the seed to grade with
    for student in layout.students():
        stored = read_json(layout.result(student))
        current = stored is not None and stored.assignment == assignment \
            and stored.notebook_sha256 == file_sha256(layout.submitted(student))
        if current and not regrade:
            done[student] = stored
            if on_result:
                on_result(stored, False)
        else:
            pending[student] = stored.seed if current else None

    def record(result: SubmissionResult) -> None:
        student = result.student
        notebook = layout.submitted(student)
        if book:
            write_gradebook(result, GradebookEntry(db_url, student, assignment,
                                                   _timestamp(notebook.parent)), book)
            data, _ = read_submission(notebook, limits.notebook_bytes)
            if data:
                write_autograded(result, data, layout.autograded(student))
        write_gradescope(result, layout.gradescope(student))
        write_json(result, layout.result(student))  # last: marks the submission done
        done[student] = result
        if on_result:
            on_result(result, True)

    own_pool = executor is None and pending
    if own_pool:
        warm_up()  # the fork server imports torch while the submissions are read
    pool = ThreadPoolExecutor(jobs or os.cpu_count() or 1) if own_pool else executor
    # Opened beside the grading: importing nbgrader takes 2 s.
    opening = ThreadPoolExecutor(1).submit(open_gradebook, db_url) \
        if gradebook and pending else None
    book = None
    try:
        futures = [pool.submit(grade_submission, layout.submitted(student).read_bytes()
                               if layout.submitted(student).is_file() else None,
                               assignment, seed, limits, student)
                   for student, seed in pending.items()]
        book = opening and opening.result()
        for future in as_completed(futures):
            record(SubmissionResult.from_json(future.result()))
    finally:
        if own_pool:
            pool.shutdown(cancel_futures=True)
        if book:
            book.close()
    return [done[student] for student in sorted(done)]


def grade_submission(notebook: bytes | None, assignment: str, seed: int | None,
                     limits: Limits, student: str) -> dict:
    """Grade a submission given as bytes; its result as JSON data. The unit of work that
    a thread of the local pool or a Dask worker runs: plain data in, plain data out."""
    with tempfile.TemporaryDirectory(prefix="backprop-submission-") as folder:
        path = Path(folder) / f"{assignment}.ipynb"
        if notebook is not None:
            path.write_bytes(notebook)
        result = grade_notebook(path, assignment, seed=seed, limits=limits, student=student)
    return result.to_json()


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, or None when there is no such file."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _timestamp(folder: Path):
    from nbgrader.utils import parse_utc
    path = folder / "timestamp.txt"
    try:
        return parse_utc(path.read_text().strip()) if path.is_file() else None
    except ValueError:
        return None


def verdict_outputs(part: PartResult) -> list[dict]:
    """A test cell's outputs showing the verdict: its message, then its figures (SVG)."""
    mark = "✔" if part.passed else "✘"
    return [{"output_type": "stream", "name": "stdout", "text": f"{mark} {part.message}\n"},
            *({"output_type": "display_data", "metadata": {},
               "data": {"image/svg+xml": figure, "text/plain": "<figure>"}}
              for figure in part.figures)]


def write_autograded(result: SubmissionResult, notebook: bytes, path: Path) -> None:
    """The submitted notebook with each test cell's output replaced by the part's verdict.

    `nbgrader generate_feedback` renders it with the scores from the gradebook.
    """
    content = json.loads(notebook)
    verdicts = {part.part_id: part for part in result.parts}
    for cell in content["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and grade_id in verdicts:
            part = verdicts.pop(grade_id)
            cell["outputs"] = verdict_outputs(part)
            cell["execution_count"] = None
        elif cell.get("cell_type") == "code":
            cell["outputs"] = []
    for part in verdicts.values():  # test cells the student deleted: the verdict still shows
        content["cells"].append(
            {"cell_type": "code", "execution_count": None, "id": f"restored-{part.part_id}",
             "source": f"# The test cell of {part.part_id}, restored by the grader.",
             "metadata": {"nbgrader": {"grade": True, "grade_id": part.part_id,
                                       "points": part.max_score, "locked": True,
                                       "solution": False, "schema_version": 3}},
             "outputs": verdict_outputs(part)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(content, indent=1).encode())
