"""A second blind corpus: wrong and correct-but-different submissions for all five assignments,
written from the notebooks' prose and the student kit alone (issue 27's held-out cases).

    .venv/bin/python bench/blind_corpus.py --corpus blind_corpus2

Each assignment's module holds `BASE` (the answer cells of the source notebook's solution),
`PARTS` (the parts the labels judge) and `SUBMISSIONS`. A submission replaces some answer
cells; its labels say, per part that should lose points, the points a careful grader would
give by the prose and the mistake's name from `autograder.kit.diagnosis.MISTAKES` (None where
no name fits). A part that fails only because a function it calls is wrong has None among
its `ok` names: a name there is optional.
"""

import ast
import importlib
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "source"
ASSIGNMENTS = ("single_neuron", "autograd_basics", "two_layer_net", "nn_from_scratch",
               "autograd_from_scratch")
# The label of a submission that changes its inputs: any name the grader gives for changed
# or aliased inputs fits it (the harness decides which names those are).
CHANGES_INPUTS = "CHANGES_INPUTS"
_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass(frozen=True)
class Loss:
    """What a part should score, the mistake's name, and other names that also fit."""

    points: float
    name: str | None
    ok: tuple[str | None, ...] = ()


def cascade(*names: str) -> Loss:
    """The label of a part that fails only because a function it calls is wrong: 0 points,
    no name required of it, and the names of the mistake upstream fit it too."""
    return Loss(0, None, ok=(None, *names))


@dataclass(frozen=True)
class Submission:
    name: str
    assignment: str
    why: str
    cells: dict[str, str]
    lost: dict[str, Loss] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return not self.lost

    @property
    def changes_inputs(self) -> bool:
        return any(CHANGES_INPUTS in (loss.name, *loss.ok) for loss in self.lost.values())


def base_cells(assignment: str) -> dict[str, str]:
    """{grade id: source} of the source notebook's answer cells, solution markers removed."""
    path = SOURCE / assignment / f"{assignment}.ipynb"
    cells = {}
    for cell in json.loads(path.read_text())["cells"]:
        info = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and info.get("solution"):
            lines = "".join(cell["source"]).splitlines()
            cells[info["grade_id"]] = "\n".join(
                line for line in lines if line.strip() not in _MARKERS) + "\n"
    return cells


def replace_def(cell: str, new: str) -> str:
    """cell with the function (or method) that `new` defines replaced by `new`, indented as
    the one it replaces."""
    new = textwrap.dedent(new).strip("\n")
    name = ast.parse(new).body[0].name
    lines = cell.splitlines()
    for node in ast.walk(ast.parse(cell)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            indented = textwrap.indent(new, " " * node.col_offset)
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            return "\n".join([*lines[:start], indented, *lines[node.end_lineno:]]) + "\n"
    raise ValueError(f"no function {name} in the cell")


class Corpus:
    """The submissions of one assignment, written against its base cells."""

    def __init__(self, assignment: str):
        self.assignment = assignment
        self.base = base_cells(assignment)
        self.submissions: list[Submission] = []

    def with_defs(self, cell: str, *defs: str) -> str:
        """The base cell with these functions replaced."""
        source = self.base[cell]
        for new in defs:
            source = replace_def(source, new)
        return source

    def add(self, name: str, why: str, cells: dict[str, str], **lost: Loss) -> None:
        self.submissions.append(Submission(f"{self.assignment}/{name}", self.assignment, why,
                                           cells, lost))


def all_submissions() -> list[Submission]:
    return [submission for assignment in ASSIGNMENTS
            for submission in importlib.import_module(f"{__name__}.{assignment}").SUBMISSIONS]
