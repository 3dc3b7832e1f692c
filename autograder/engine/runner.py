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
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from .. import assignments
from ..grading import PartResult, failed, grade_outcomes
from ..notebook import VISIBLE_SEED
from .isolation import DEFAULT_LIMITS, Limits
from .protocol import write_atomically
from .results import (
    GradebookEntry,
    SubmissionResult,
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
                   limits: Limits = DEFAULT_LIMITS, student: str | None = None
                   ) -> SubmissionResult:
    """Grade one notebook in the sandbox; a fresh seed for the hidden cases unless given."""
    start = time.monotonic()
    graded = assignments.get(assignment)
    seed = secrets.randbelow(2**31) if seed is None else seed
    data, problem = read_submission(Path(path), limits.notebook_bytes)
    result = SubmissionResult(assignment, [], seed, student=student,
                              notebook_sha256=file_sha256(Path(path)))
    if problem:
        result.note = problem
        result.parts = [PartResult(part.id, 0, part.points, f"Not graded: {problem}")
                        for part in graded.parts]
    else:
        cases = {part.id: part.cases("visible", VISIBLE_SEED) + part.cases("hidden", seed)
                 for part in graded.parts}
        run = run_parts(data, graded, cases, limits)
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
                     regrade: bool = False, jobs: int = 1,
                     on_result: Callable[[SubmissionResult, bool], None] | None = None
                     ) -> list[SubmissionResult]:
    """Grade every submission of an assignment in a course; resumable, idempotent.

    A submission already graded (its result file matches the notebook's hash) is skipped
    and its stored result returned; with regrade=True it is graded again with its recorded
    seed, which gives the same grade. `jobs` submissions are graded at a time (each in its
    own sandbox). on_result(result, was_graded_now) is called for each, as it comes.
    """
    course_root = Path(course_root).resolve()
    layout = CourseLayout(course_root, assignment, Path(results or course_root / "results"))
    # The sandbox never sees the course (gradebook, other students) or the results.
    limits = replace(limits, hidden=(*limits.hidden, str(course_root), str(layout.results)))
    db_url = f"sqlite:///{course_root / 'gradebook.db'}"
    gradebook_lock = threading.Lock()  # one writer at a time for SQLite

    def grade(student: str) -> SubmissionResult:
        notebook = layout.submitted(student)
        stored = read_json(layout.result(student))
        current = stored is not None and stored.assignment == assignment \
            and stored.notebook_sha256 == file_sha256(notebook)
        if current and not regrade:
            if on_result:
                on_result(stored, False)
            return stored
        result = grade_notebook(notebook, assignment, limits=limits, student=student,
                                seed=stored.seed if current else None)
        if gradebook:
            with gradebook_lock:
                write_gradebook(result, GradebookEntry(db_url, student, assignment,
                                                       _timestamp(notebook.parent)))
            data, _ = read_submission(notebook, limits.notebook_bytes)
            if data:
                write_autograded(result, data, layout.autograded(student))
        write_gradescope(result, layout.gradescope(student))
        write_json(result, layout.result(student))  # last: marks the submission done
        if on_result:
            on_result(result, True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(grade, layout.students()))


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
            mark = "✔" if part.score == part.max_score else "✘"
            cell["outputs"] = [{"output_type": "stream", "name": "stdout",
                                "text": f"{mark} {part.message}\n"}]
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
             "outputs": [{"output_type": "stream", "name": "stdout",
                          "text": f"{part.message}\n"}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(content, indent=1).encode())
