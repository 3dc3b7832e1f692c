"""A submission's grade, and where it goes: a JSON file, Gradescope, nbgrader's gradebook.

Every file is written atomically (a temporary file, then a rename), so an interrupted run
leaves either the old grade or the new one, never half of one.
"""

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..course import COURSE_ID
from ..diagnosis import known_mistake
from ..grading import PartResult
from .protocol import write_atomically


def note_of_part(part: PartResult) -> str:
    """One line of plain-text feedback on a part."""
    return f"{part.part_id}: {part.score:g}/{part.max_score:g}. {part.message}"


@dataclass
class SubmissionResult:
    """The verdict on one submitted notebook: every part, and how to reproduce it."""

    assignment: str
    parts: list[PartResult]
    seed: int | None  # the seed of the hidden cases; grading again with it gives this grade
    notebook_sha256: str | None = None
    student: str | None = None
    isolation: str = ""  # what the sandbox reached (see isolation.isolate)
    note: str = ""  # about the submission as a whole (unreadable, tampered with...)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(part.score for part in self.parts)

    @property
    def max_score(self) -> float:
        return sum(part.max_score for part in self.parts)

    def to_json(self) -> dict:
        """A plain dict: what `grade --json` prints and what the result file holds."""
        return {"assignment": self.assignment, "student": self.student, "seed": self.seed,
                "score": self.score, "max_score": self.max_score, "note": self.note,
                "parts": [{"id": part.part_id, "score": part.score, "max_score": part.max_score,
                           "message": part.message, "mistake": part.mistake,
                           "figures": list(part.figures)} for part in self.parts],
                "notebook_sha256": self.notebook_sha256, "isolation": self.isolation,
                "seconds": round(self.seconds, 3)}

    @classmethod
    def from_json(cls, data: dict) -> "SubmissionResult":
        return cls(assignment=data["assignment"], student=data.get("student"),
                   seed=data.get("seed"), note=data.get("note", ""),
                   parts=[PartResult(part["id"], part["score"], part["max_score"],
                                     part["message"], known_mistake(part.get("mistake")),
                                     tuple(part.get("figures", ()))) for part in data["parts"]],
                   notebook_sha256=data.get("notebook_sha256"),
                   isolation=data.get("isolation", ""), seconds=data.get("seconds", 0.0))

    def feedback(self) -> str:
        """The grade in plain text, one line per part."""
        lines = [f"{self.assignment}: {self.score:g}/{self.max_score:g}"]
        if self.note:
            lines.append(self.note)
        lines += [note_of_part(part) for part in self.parts]
        return "\n".join(lines)


def write_json(result: SubmissionResult, path: Path) -> None:
    """The result as one JSON file at path, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(result.to_json(), indent=1).encode())


def read_json(path: Path) -> SubmissionResult | None:
    """The result stored at path, or None when there is none or it cannot be read."""
    try:
        return SubmissionResult.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gradescope(result: SubmissionResult) -> dict:
    """Gradescope's results.json format: a total and one test per part."""
    return {"score": result.score,
            "output": result.note or f"Graded with seed {result.seed}.",
            "tests": [{"name": part.part_id, "number": part.part_id, "score": part.score,
                       "max_score": part.max_score, "output": part.message}
                      for part in result.parts]}


def write_gradescope(result: SubmissionResult, path: Path) -> None:
    """The result as Gradescope's results.json at path, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(gradescope(result), indent=1).encode())


@dataclass
class GradebookEntry:
    """Where a result goes in nbgrader's gradebook."""

    db_url: str
    student: str
    notebook: str  # the notebook's name without .ipynb (nbgrader's notebook id)
    timestamp: str | None = None
    course_id: str = COURSE_ID


def open_gradebook(db_url: str, course_id: str = COURSE_ID):
    """nbgrader's gradebook, opened once for a whole run (close it when done)."""
    # Importing nbgrader imports jsonschema, whose optional IRI format checker compiles a
    # grammar when imported (1.2 s here, half the import). No gradebook value is an IRI.
    sys.modules.setdefault("rfc3987_syntax", None)
    from nbgrader.api import Gradebook  # slow to import; only needed here

    return Gradebook(db_url, course_id)


def write_gradebook(result: SubmissionResult, entry: GradebookEntry, gradebook=None) -> None:
    """Store each part's score as the auto score of the test cell with the same grade id.

    The points must agree with the test cells' points in the gradebook (nbgrader took them
    from the source notebook); a mismatch raises ValueError rather than store a wrong grade.
    Manual scores a grader already gave are kept, as `nbgrader autograde` keeps them.
    gradebook: an open one (see open_gradebook), else one is opened for this result.
    """
    with contextlib.nullcontext(gradebook) if gradebook else \
            open_gradebook(entry.db_url, entry.course_id) as gradebook:
        gradebook.update_or_create_student(entry.student)
        extra = {"timestamp": entry.timestamp} if entry.timestamp else {}
        # nbgrader builds a new submission's rows before it adds them to the session; an
        # autoflush in between only makes SQLAlchemy 2 warn, so none is run there.
        with gradebook.db.no_autoflush:
            gradebook.update_or_create_submission(result.assignment, entry.student, **extra)
        notebook = gradebook.find_submission_notebook(entry.notebook, result.assignment,
                                                      entry.student)
        grades = {grade.name: grade for grade in notebook.grades}
        for part in result.parts:
            grade = grades.get(part.part_id)
            if grade is None:
                raise ValueError(f"{part.part_id} is not a graded cell of {entry.notebook} in "
                                 f"the gradebook: release the assignment again.")
            if grade.max_score != part.max_score:
                raise ValueError(
                    f"{part.part_id} is worth {part.max_score:g} points in the grader but "
                    f"{grade.max_score:g} in the gradebook: release the assignment again.")
            grade.auto_score = part.score
            grade.needs_manual_grade = grade.manual_score is not None
        gradebook.db.commit()
