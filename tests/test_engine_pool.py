"""The warm pool: one fork server serves every submission, and nothing carries over."""

import nbformat

from autograder.course import REPO
from autograder.engine import grade_notebook
from autograder.engine.launch import default_launcher
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


# torch imports some modules on first use, and some of those read the interpreter's frames
# (torch.library), which a sandboxed child may not: the fork server has them loaded before
# it forks. A correct notebook that checks a part with torch.testing.assert_close (which
# imports torch.distributed) lost 5 points when torch._dynamo was no longer imported there.
LOSS = "def loss(X, y, w1, b1, w2, b2):"
SELF_CHECK = Edit("gradient_check_answer", LOSS, f"""z = torch.linspace(-3, 3, 7)
torch.testing.assert_close(sigmoid_delta(sigmoid_activation(z)),
                           torch.sigmoid(z) * (1 - torch.sigmoid(z)))


{LOSS}""")


def test_a_correct_notebook_that_uses_what_torch_imports_late_gets_full_marks(tmp_path):
    result = grade_notebook(write(tmp_path / "self_check.ipynb", (SELF_CHECK,)), ASSIGNMENT)
    assert result.score == result.max_score, result.feedback()
