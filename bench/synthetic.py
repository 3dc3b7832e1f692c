"""Synthetic submissions of nn_from_scratch for the benchmark: correct, wrong and crashing.

Every notebook is the release filled in from the source notebook's solution code, with the
same `Edit`s the demo's students use, so the mix stays valid when the assignment changes.
"""

import shutil
from pathlib import Path

import nbformat

from autograder.submissions import Edit, answered, student_answers

ASSIGNMENT = "nn_from_scratch"

# (label, answer cells solved (None: all), edits); cycled through to make N submissions.
KINDS = [
    ("correct", None, ()),
    ("sign error", None, (Edit("train_step_answer", "(y - output) * sigmoid_delta",
                               "(output - y) * sigmoid_delta"),)),
    ("correct", None, ()),
    ("tutorial bias sum", None, (Edit("train_step_answer", "d_hidn.sum(0, keepdim=True)",
                                      "d_hidn.sum()"),)),
    ("crashes", None, (Edit("forward_answer", "    z1 = torch.mm(X, w1) + b1",
                            "    z1 = torch.mm(w1, X) + b1"),)),
    ("partial", frozenset({"sigmoid_activation_answer", "forward_answer"}), ()),
    ("correct", None, ()),
    ("raises", None, (Edit("sigmoid_delta_answer", "    return a * (1 - a)",
                           "    raise RuntimeError('not today')"),)),
    ("blank", frozenset(), ()),
    ("correct", None, ()),
]


def write_submissions(submitted: Path, release: Path, count: int) -> dict[str, str]:
    """Write `count` notebooks as submitted/<student>/<assignment>/; return {student: kind}."""
    kinds = {}
    for index in range(count):
        label, solved, edits = KINDS[index % len(KINDS)]
        student = f"student{index:04d}"
        folder = submitted / student / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        notebook = answered(release, student_answers(ASSIGNMENT, solved, edits))
        nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
        # What a student fetched beside the notebook, and submits with it: the visible
        # checks' data (stock nbgrader runs those checks in the student's kernel).
        shutil.copy(release.parent / "visible_checks.safetensors", folder)
        (folder / "timestamp.txt").write_text("2026-11-22 12:00:00.000000 UTC")
        kinds[student] = label
    return kinds
