"""nbgrader's autograde, graded in the engine's sandbox: the one grading path.

`nbgrader autograde`, the formgrader's Autograde button and `NbGraderAPI.autograde` all run
nbgrader's Autograde converter, a pipeline of preprocessors configured in
nbgrader_config.py. The course's configuration replaces its `Execute` (which runs the
student's notebook, checks included, in the student's own kernel) by `SandboxedExecute`:
the notebook, its locked and hidden test cells restored from the gradebook by nbgrader's
sanitize steps, is graded by `runner.grade_notebook` (the student's code in the sandbox, a
fresh seed for the hidden cases, verdicts in this process), and each test cell's outputs
become its verdict, so that nbgrader's own SaveAutoGrades gives the points and everything
after it (late penalties, manual grades, feedback) is nbgrader's, unchanged.

`SubmissionExporter` lets an unreadable notebook (not JSON, empty, too large) through as a
stand-in that carries the reason, so that it scores 0 with that reason shown to the
instructor and the student instead of stopping at nbgrader's parser.
"""

import json
import tempfile
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbgrader.preprocessors import NbGraderPreprocessor

from .. import references
from ..kit.figures import alt_text, as_image
from ..kit.grading import PartResult
from ..kit.messages import error_lines, wrap
from .launch import warm_up
from .release_metadata import rebuild_from_release
from .runner import grade_notebook, read_submission

METADATA = "backprop_lab"  # the notebook metadata key of the grading record
NOT_GRADED = "not_graded"  # the mistake name of a part that could not be graded


class SubmissionExporter(NotebookExporter):
    """nbgrader's notebook exporter, reading the student's submission (in autograde's first,
    sanitizing pass) as the engine does: an unreadable notebook becomes a stand-in that says
    why (the release, untouched: it scores 0), and a readable one has its nbgrader metadata
    rebuilt from the release (`release_metadata.rebuild_from_release`) before nbformat or
    any of nbgrader's steps reads it, with a note when something was restored."""

    def from_filename(self, filename, resources=None, **kw):
        converter = _owner_with_coursedir(self)
        if not getattr(converter, "_sanitizing", True):  # the sanitized copy: nbgrader's own
            return super().from_filename(filename, resources, **kw)
        data, problem = read_submission(Path(filename))
        ids = resources["nbgrader"]
        coursedir = converter.coursedir
        release = Path(coursedir.format_path(coursedir.release_directory, ".",
                                             ids["assignment"])) / f"{ids['notebook']}.ipynb"
        if problem is not None:
            self.log.warning("%s cannot be graded: %s", filename, problem)
            stand_in = nbformat.read(release, as_version=4)
            stand_in.metadata[METADATA] = {"note": problem}
            return self.from_notebook_node(stand_in, resources, **kw)
        submitted = json.loads(data)  # its cells' sources become text: nbgrader's checksums
        restored = rebuild_from_release(submitted, json.loads(release.read_bytes()))
        if restored:
            self.log.warning("%s: %s", filename, restored)
            submitted["metadata"][METADATA] = {"restored": restored}
        return self.from_notebook_node(nbformat.from_dict(submitted), resources, **kw)


class SandboxedExecute(NbGraderPreprocessor):
    """Grade the notebook in the engine's sandbox; each test cell's outputs show its verdict
    (a pass prints "✔ message", a failure is a WrongAnswer error) and no other cell has any.

    A fault of the grader (`errors.GraderError`) propagates: nbgrader then logs it, keeps
    no autograded copy and stores no grade for the notebook, and the command exits 1.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        warm_up()  # the fork server imports torch while nbgrader reads the notebook

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        student = resources["nbgrader"]["student"]
        graded = references.get(assignment)
        record = nb.metadata.get(METADATA, {})
        if record.get("note"):  # an unreadable notebook's stand-in: nothing to run
            parts = [PartResult(part.id, 0, part.points, f"Not graded: {record['note']}",
                                NOT_GRADED) for part in graded.parts]
            record = {"grader": "not run: the notebook could not be read",
                      "note": record["note"]}
        else:
            result = self._grade(nb, assignment, student)
            parts = result.parts
            note = " ".join(filter(None, (record.get("restored"), result.note)))
            record = {"grader": "the autograder's sandbox", "seed": result.seed,
                      "isolation": result.isolation, "note": note,
                      "seconds": round(result.seconds, 3)}
            self.log.info("%s/%s graded in the sandbox: %g/%g, hidden seed %s; %s", student,
                          assignment, result.score, result.max_score, result.seed,
                          result.isolation)
        if record["note"]:
            self.log.warning("%s/%s: %s", student, assignment, record["note"])
        nb.metadata[METADATA] = record
        show_verdicts(nb, parts)
        return nb, resources

    def _grade(self, nb, assignment: str, student: str):
        # The sandbox sees none of the machine's files: not the course (see isolation.py).
        with tempfile.TemporaryDirectory(prefix="backprop-autograde-") as folder:
            path = Path(folder) / f"{assignment}.ipynb"
            path.write_text(nbformat.writes(nb))
            return grade_notebook(path, assignment, student=student)


def show_verdicts(nb, parts: list[PartResult]) -> None:
    """Each test cell's outputs become its part's verdict; every other code cell's go.
    A test cell missing from the notebook is added at its end, so its part scores."""
    verdicts = {part.part_id: part for part in parts}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        grading = cell.metadata.get("nbgrader", {})
        part = verdicts.pop(grading.get("grade_id"), None) \
            if grading.get("grade") and not grading.get("solution") else None
        cell.outputs = verdict_outputs(part) if part else []
        cell.execution_count = None
    for part in verdicts.values():
        cell = nbformat.v4.new_code_cell(
            f"# The test cell of {part.part_id}, restored by the grader.",
            metadata={"nbgrader": {"grade": True, "grade_id": part.part_id, "locked": True,
                                   "points": part.max_score, "solution": False,
                                   "schema_version": 3}})
        cell.outputs = verdict_outputs(part)
        nb.cells.append(cell)


def verdict_outputs(part: PartResult) -> list:
    """A passing part prints "✔ message"; a failing one raises WrongAnswer (nbgrader scores
    a test cell with an error 0); then its figures, each with its alt text."""
    if part.passed:
        shown = nbformat.v4.new_output("stream", name="stdout",
                                       text="\n".join(wrap(f"✔ {part.message}")) + "\n")
    else:
        shown = nbformat.v4.new_output("error", ename="WrongAnswer", evalue=part.message,
                                       traceback=error_lines("✘ WrongAnswer", part.message))
    return [shown, *(nbformat.v4.new_output(
        "display_data", data={"image/svg+xml": figure, "text/html": as_image(figure),
                              "text/plain": alt_text(figure)}) for figure in part.figures)]


def _owner_with_coursedir(configurable):
    """The nbgrader converter that runs this exporter or preprocessor: it has the course's
    directories (`coursedir`)."""
    owner = configurable
    while getattr(owner, "coursedir", None) is None:
        if owner.parent is None:
            raise RuntimeError(f"{type(configurable).__name__} runs only inside nbgrader's "
                               "autograde (no course directory found)")
        owner = owner.parent
    return owner
