"""The notebooks run top to bottom in a fresh Jupyter kernel."""

from functools import cache

import nbformat
import pytest
from nbclient import NotebookClient
from nbgrader.utils import determine_grade, is_grade

from autograder.course import REPO, assignment_names

pytestmark = pytest.mark.slow


@cache  # the answer key of nn_from_scratch runs once for the two tests that read it
def execute(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def errors(notebook):
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


@pytest.mark.parametrize("assignment", assignment_names())
def test_answer_key_runs_cleanly_and_earns_every_point(assignment):
    notebook = execute(REPO / "solutions" / assignment / f"{assignment}.ipynb")
    assert errors(notebook) == []
    grades = [determine_grade(cell) for cell in notebook.cells
              if is_grade(cell) and cell.cell_type == "code"]
    assert grades and all(score == maximum for score, maximum in grades)


def test_nn_from_scratch_reproduces_the_tutorial():
    notebook = execute(REPO / "solutions" / "nn_from_scratch" / "nn_from_scratch.ipynb")
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "a1 = tensor([[0.9697, 0.8139, 0.3020]]" in printed
    assert "output = tensor([[0.8594]]" in printed
    assert "final loss:" in printed


@pytest.mark.parametrize("assignment", assignment_names())
def test_blank_release_runs_without_crashing_the_kernel(assignment):
    notebook = execute(REPO / "assignments" / assignment / f"{assignment}.ipynb")
    names = {o.ename for o in errors(notebook)}
    assert names <= {"NotImplementedError", "WrongAnswer", "NameError"}, names
