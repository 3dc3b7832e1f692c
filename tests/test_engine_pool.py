"""The warm pool: one fork server serves every submission, and nothing carries over."""

import nbformat
import torch

from autograder.course import REPO
from autograder.engine import grade_notebook
from autograder.engine.isolation import Limits
from autograder.engine.launch import ForkServer, default_launcher
from autograder.engine.sandbox import run_parts
from autograder.kit.assignment_parts.nn_from_scratch import ASSIGNMENT as NN_PARTS
from autograder.kit.parts import Case
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
    vandal = grade_notebook(write(tmp_path / "vandal.ipynb", (VANDAL,)), ASSIGNMENT)
    server = default_launcher().process.pid
    honest = grade_notebook(write(tmp_path / "honest.ipynb"), ASSIGNMENT)
    assert vandal.score < vandal.max_score
    assert honest.score == honest.max_score, honest.feedback()
    assert default_launcher().process.pid == server, "both were forked from the same server"


def test_a_fork_server_that_died_is_started_again(tmp_path):
    first = default_launcher()
    first.process.kill()
    first.process.wait()
    result = grade_notebook(write(tmp_path / "honest.ipynb"), ASSIGNMENT)
    assert result.score == result.max_score and default_launcher() is not first


# A sigmoid_delta that answers with whether torch._dynamo (which an optimizer's step and
# torch.func import, reading frames) was in its process when it ran; the same in notebooks
# whose code may reach it; and one whose product is transposed.
DYNAMO_SEEN = Edit("sigmoid_delta_answer", "def sigmoid_delta(a):", """import sys


def sigmoid_delta(a):
    return torch.full_like(a, float("torch._" + "dynamo" in sys.modules))


def _unused(a):""")
NAMING = {name: Edit("sigmoid_delta_answer", "import sys", f"import sys\n{line}")
          for name, line in (("optim", "from torch import optim"),
                             ("func", "from torch.func import grad"))}
TRANSPOSED = Edit("sigmoid_delta_answer", "return a * (1 - a)", "return a * (1 - a.t())")


def sandboxed(server: ForkServer, *edits: Edit):
    """The outcome of sigmoid_delta on a 2 x 3 input, in a child of server."""
    notebook = nbformat.writes(answered(RELEASE, student_answers(ASSIGNMENT, edits=edits)))
    cases = {"sigmoid_delta": [Case("a", {"a": torch.full((2, 3), 0.5, dtype=torch.float64)})]}
    return run_parts(notebook.encode(), NN_PARTS, cases, Limits(), server).outcomes[
        "sigmoid_delta"][0]


def test_torch_dynamo_is_imported_once_and_only_for_code_that_may_reach_it():
    for name, naming in NAMING.items():
        server = ForkServer()
        try:
            transposed = sandboxed(server, TRANSPOSED)  # named with symbolic shapes
            seen = [sandboxed(server, *edits)["sigmoid_delta(a)"].unique().tolist()
                    for edits in ((DYNAMO_SEEN,), (DYNAMO_SEEN, naming), (DYNAMO_SEEN,))]
        finally:
            server.close()
        assert seen == [[0.0], [1.0], [1.0]], f"{name}: imported for the second, and kept"
        assert transposed.mistake == "transposed", transposed
