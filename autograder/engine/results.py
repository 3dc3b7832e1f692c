"""A submission's grade, and where it goes: a JSON file, Gradescope, nbgrader's gradebook.

Every file is written atomically (a temporary file, then a rename), so an interrupted run
leaves either the old grade or the new one, never half of one.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..kit.diagnosis import known_mistake
from ..kit.grading import PartResult
from .course_config import skip_iri_grammar
from .protocol import write_atomically


def note_of_part(part: PartResult) -> str:
    """Plain-text feedback on a part: its score, then its message, every line after the
    first indented (so that no line of a message passes for another part's score)."""
    return f"{part.part_id}: {part.score:g}/{part.max_score:g}. " + \
        part.message.replace("\n", "\n    ")


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
            lines.append(self.note.replace("\n", "\n    "))
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
            "extra_data": {"seed": result.seed, "isolation": result.isolation},
            "tests": [{"name": part.part_id, "number": part.part_id, "score": part.score,
                       "max_score": part.max_score, "output": part.message}
                      for part in result.parts]}


def write_gradescope(result: SubmissionResult, path: Path, unless_same: bool = False) -> None:
    """The result as Gradescope's results.json at path, written atomically (unless_same:
    not when the file already holds it)."""
    data = json.dumps(gradescope(result), indent=1).encode()
    if unless_same and path.is_file() and not path.is_symlink() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data)


def open_gradebook(db_url: str, course_id: str):
    """nbgrader's gradebook, opened once for a whole run (close it when done)."""
    skip_iri_grammar()
    from nbgrader.api import Gradebook  # slow to import; only needed here

    return Gradebook(db_url, course_id)


def write_gradebook(result: SubmissionResult, gradebook, student: str, notebook_id: str,
                    timestamp=None, late=None) -> None:
    """Store each part's score as the auto score of the test cell with the same grade id,
    then the late penalty as `nbgrader autograde` assigns it; one commit.

    The points must agree with the test cells' points in the gradebook (nbgrader took them
    from the source notebook); a mismatch raises ValueError rather than store a wrong grade.
    Manual scores a grader already gave are kept, as `nbgrader autograde` keeps them, and
    the cells the grader does not grade (written answers) are marked as needing a person.
    gradebook: an open one (see open_gradebook). late: nbgrader's AssignLatePenalties
    preprocessor, configured by the course (see CourseConfig.late_penalty), or None.
    """
    gradebook.update_or_create_student(student)
    extra = {"timestamp": timestamp} if timestamp else {}
    # nbgrader builds a new submission's rows before it adds them to the session; an
    # autoflush in between only makes SQLAlchemy 2 warn, so none is run there.
    with gradebook.db.no_autoflush:
        submission = gradebook.update_or_create_submission(result.assignment, student, **extra)
    notebook = gradebook.find_submission_notebook(notebook_id, result.assignment, student)
    grades = {grade.name: grade for grade in notebook.grades}
    for part in result.parts:
        grade = grades.get(part.part_id)
        if grade is None:
            raise ValueError(f"{part.part_id} is not a graded cell of {notebook_id} in "
                             f"the gradebook: release the assignment again.")
        if grade.max_score != part.max_score:
            raise ValueError(
                f"{part.part_id} is worth {part.max_score:g} points in the grader but "
                f"{grade.max_score:g} in the gradebook: release the assignment again.")
        grade.auto_score = part.score
        grade.needs_manual_grade = grade.manual_score is not None
    graded_here = {part.part_id for part in result.parts}
    for name, grade in grades.items():
        if name not in graded_here:  # a written answer: a person grades it (as nbgrader says)
            grade.needs_manual_grade = True
    if late is not None:
        _assign_late_penalty(gradebook, submission, notebook, student, late)
    gradebook.db.commit()


def _assign_late_penalty(gradebook, submission, notebook, student: str, late) -> None:
    """What nbgrader's AssignLatePenalties.preprocess does, on the scores just set."""
    gradebook.db.flush()
    gradebook.db.expire(notebook)  # its score is computed from the grades
    notebook.late_submission_penalty = None
    seconds_late = submission.total_seconds_late
    if seconds_late > 0:
        penalty = late.plugin_inst.late_submission_penalty(student, notebook.score,
                                                           seconds_late)
        if penalty is not None:
            notebook.late_submission_penalty = late._check_late_penalty(notebook, penalty)


def gradebook_agrees(gradebook, result: SubmissionResult, student: str,
                     notebook_id: str) -> bool:
    """Whether the gradebook holds this result's auto scores for the student."""
    from nbgrader.api import MissingEntry

    try:
        notebook = gradebook.find_submission_notebook(notebook_id, result.assignment, student)
    except MissingEntry:
        return False
    scores = {grade.name: grade.auto_score for grade in notebook.grades}
    return all(scores.get(part.part_id) == part.score for part in result.parts)
