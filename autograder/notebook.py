"""The `check` function that the notebooks' test cells call.

    from autograder.notebook import checker
    check = checker("nn_from_scratch")
    check("forward", forward)               # visible cases: the student runs these
    check("forward", forward, hidden=True)  # hidden cases: only in the grader's copy
"""

from . import assignments
from .grading import grade_part
from .messages import error_lines

VISIBLE_SEED = 0
# The seed of the hidden cases in nbgrader's own grading. The sandboxed engine draws a
# fresh seed for every submission instead.
HIDDEN_SEED = 20_261_122


class WrongAnswer(AssertionError):
    """Raised by a test cell whose part is wrong; the message says what to fix."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it: the message alone, in lines that fit the page. A traceback
        would quote the test cell, and in nbgrader's autograded copy (and its feedback)
        that cell holds the hidden tests."""
        return error_lines(f"✘ {type(self).__name__}", str(self))


def checker(assignment: str):
    """A `check(part_id, function, hidden=False)` function bound to one assignment."""
    graded = assignments.get(assignment)

    def check(part_id: str, function, hidden: bool = False) -> None:
        __tracebackhide__ = True  # pytest hides this frame from the traceback
        part = graded.part(part_id)
        kind, seed = ("hidden", HIDDEN_SEED) if hidden else ("visible", VISIBLE_SEED)
        result = grade_part(part, function, part.cases(kind, seed))
        show(result.figures)
        if not result.passed:
            raise WrongAnswer(result.message)
        print(f"✔ {result.message}")

    return check


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
