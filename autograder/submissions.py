"""Build student notebooks from a release: the demo's class and the tests' corpus.

Answers are never written twice by hand. A correct answer is the solution code of the
source notebook; any other answer is that code with a deliberate `Edit` (a mistake, say).
"""

from dataclasses import dataclass
from pathlib import Path

import nbformat
import torch

from .course import REPO
from .engine.child import exec_cell

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new`, once, in the solution of one answer cell."""

    answer: str
    old: str
    new: str

    def apply(self, code: str) -> str:
        if code.count(self.old) != 1:
            raise ValueError(f"{self.old!r} should occur once in the solution of "
                             f"{self.answer}; update this edit to the source notebook.")
        return code.replace(self.old, self.new)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def solutions(assignment: str, root: Path = REPO, cell_type: str | None = None
              ) -> dict[str, str]:
    """{answer cell id: its solution} from the source notebook, without the markers: code,
    and the model answers of written questions (markdown), or only cells of cell_type."""
    source = nbformat.read(root / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    return {_grade_id(cell): "\n".join(line for line in cell.source.splitlines()
                                       if line.strip() not in SOLUTION_MARKERS)
            for cell in source.cells
            if cell.metadata.get("nbgrader", {}).get("solution")
            and cell_type in (None, cell.cell_type)}


def answered(release: Path, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The release notebook with the given answer cells filled in; the rest untouched."""
    notebook = nbformat.read(release, as_version=4)
    for cell in notebook.cells:
        if _grade_id(cell) in answers:
            cell.source = answers[_grade_id(cell)]
    return notebook


def student_answers(assignment: str, solved: frozenset[str] | None = None,
                    edits: tuple[Edit, ...] = ()) -> dict[str, str]:
    """Answers of a student who solved the cells in `solved` (all by default), then edited."""
    keys = solutions(assignment)
    answers = {cell: code for cell, code in keys.items() if solved is None or cell in solved}
    for edit in edits:
        answers[edit.answer] = edit.apply(answers[edit.answer])
    return answers


def defined_names(assignment: str, edits: tuple[Edit, ...] = ()) -> dict:
    """Run a student's answer cells (the answer key, then edited) in-process; the names
    they define. For tests and benchmarks of our own code only: never a student's."""
    namespace = {"torch": torch, "nn": torch.nn, "optim": torch.optim}
    code_cells = solutions(assignment, cell_type="code")
    for cell, code in student_answers(assignment, None, edits).items():
        if cell in code_cells:
            exec_cell(code, f"<{assignment} {cell}>", namespace)
    return namespace
