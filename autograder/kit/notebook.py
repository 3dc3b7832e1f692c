"""The `check` function that the notebooks' test cells call, and their example data.

    from autograder.kit import checker, example
    check = checker("nn_from_scratch")
    X, y, w1, b1, w2, b2 = example("tutorial")
    check("forward", forward)   # the visible cases, from the file next to the notebook

The visible cases and what is expected of them come from `visible_checks.safetensors`,
which the release puts next to the notebook (see `visible`). The hidden cases are the
grader's: it draws fresh ones for every submission.
"""

import functools
from pathlib import Path

import torch

from . import assignment_parts, visible
from .grading import grade_part
from .messages import error_lines


class WrongAnswer(AssertionError):
    """Raised by a test cell whose part is wrong; the message says what to fix."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it: the message alone, in lines that fit the page. A traceback
        would quote the test cell's code, which is the grader's to show, not the page's."""
        return error_lines(f"✘ {type(self).__name__}", str(self))


def checker(assignment: str, folder: Path | None = None):
    """A `check(part_id, function)` function bound to one assignment, whose visible cases
    are read from folder (the notebook's own, the working directory, by default)."""
    spec = assignment_parts.get(assignment)

    def check(part_id: str, function) -> None:
        __tracebackhide__ = True  # pytest hides this frame from the traceback
        part = spec.part(part_id)
        shipped = _shipped(Path(folder or Path.cwd()).resolve(), spec.on_device)
        if shipped.assignment != assignment:
            raise ValueError(f"{visible.FILE} here is {shipped.assignment}'s, not "
                             f"{assignment}'s: run the notebook from its own folder")
        result = grade_part(part, function, shipped.cases(part_id), shipped)
        show(result.figures)
        if not result.passed:
            raise WrongAnswer(result.message)
        print(f"✔ {result.message}")

    return check


def example(name: str, folder: Path | None = None) -> tuple[torch.Tensor, ...]:
    """The example data called name, shipped with the notebook (fresh copies each call)."""
    return _shipped(Path(folder or Path.cwd()).resolve(), False).example(name)


@functools.cache
def _shipped(folder: Path, on_device: bool) -> visible.Shipped:
    if not on_device:
        return visible.read(folder)
    from .assignment_parts.two_layer_net import chosen_device
    return visible.read(folder, chosen_device())


def show(figures: tuple[str, ...]) -> None:
    """Display SVG figures in the running Jupyter kernel (nothing happens outside one)."""
    try:
        from IPython import get_ipython
        from IPython.display import SVG, display
    except ImportError:
        return
    if get_ipython() is not None:
        for figure in figures:
            display(SVG(figure))
