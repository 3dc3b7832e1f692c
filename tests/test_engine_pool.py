"""The warm pool: one fork server serves every submission, and nothing carries over."""

import re

import nbformat
import pytest

from autograder.course import REPO
from autograder.engine import grade_notebook
from autograder.engine.launch import ColdLauncher, WarmLauncher, _fork_server
from autograder.submissions import Edit, answered, student_answers

ASSIGNMENT = "nn_from_scratch"
RELEASE = REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

# A first cell that changes every piece of torch state a later student could trip on.
VANDAL = Edit("sigmoid_activation_answer", "def sigmoid_activation(z):", """import torch
torch.set_default_dtype(torch.float32)
torch.manual_seed(0)
torch.Tensor.__add__ = lambda self, other: self
torch.mm = lambda a, b: a
torch.exp = lambda z: z * 0
import builtins
builtins.sum = lambda *args: 0


def sigmoid_activation(z):""")


def write(path, edits=()):
    nbformat.write(answered(RELEASE, student_answers(ASSIGNMENT, edits=edits)), path)
    return path


def test_a_submission_that_vandalizes_torch_does_not_touch_the_next_one(tmp_path):
    vandal = grade_notebook(write(tmp_path / "vandal.ipynb", (VANDAL,)), ASSIGNMENT,
                            launcher=WarmLauncher())
    server = _fork_server().process.pid
    honest = grade_notebook(write(tmp_path / "honest.ipynb"), ASSIGNMENT,
                            launcher=WarmLauncher())
    assert vandal.score < vandal.max_score
    assert honest.score == honest.max_score, honest.feedback()
    assert _fork_server().process.pid == server, "both were forked from the same server"


@pytest.mark.slow
def test_warm_and_cold_children_give_the_same_grades(tmp_path):
    for name, edits in {"honest": (), "vandal": (VANDAL,)}.items():
        path = write(tmp_path / f"{name}.ipynb", edits)
        warm = grade_notebook(path, ASSIGNMENT, seed=11, launcher=WarmLauncher())
        cold = grade_notebook(path, ASSIGNMENT, seed=11, launcher=ColdLauncher())
        assert [(p.score, p.message) for p in warm.parts] == \
            [(p.score, p.message) for p in cold.parts]
        # The same isolation, but for the uid, which is the child's own (base + pid).
        assert re.sub(r"uid \d+", "uid", warm.isolation) == re.sub(r"uid \d+", "uid",
                                                                    cold.isolation)
