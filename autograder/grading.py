"""Run a student's function on a part's cases and judge each result against autograd.

Two halves, kept apart on purpose: `call_student` runs untrusted code and returns plain
tensors; `judge` computes the reference and the verdict and never runs student code. The
notebook's test cells use both in one process; the sandboxed engine runs them in two.
"""

import contextlib
import io
import warnings
from dataclasses import dataclass

import torch

from .compare import compare
from .parts import Case, Part, StudentError, unpack


@dataclass
class PartResult:
    """The verdict on one part: points earned and a message for the student."""

    part_id: str
    score: float
    max_score: float
    message: str

    @property
    def passed(self) -> bool:
        return self.score == self.max_score


def call_student(part: Part, function, case: Case) -> dict[str, torch.Tensor]:
    """Call the student's function on copies of the case's inputs; StudentError on failure.

    Whatever it prints is swallowed so that test cells stay readable, and warnings are
    silenced: nbgrader gives 0 to a test cell that writes anything to stderr.
    """
    args = [value.clone() if isinstance(value, torch.Tensor) else value
            for value in case.args.values()]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            result = part.call(function, *args) if part.call else function(*args)
        except StudentError:
            raise
        except NotImplementedError:
            raise StudentError(f"{part.function} is not written yet "
                               f"(it still raises NotImplementedError).") from None
        except (Exception, SystemExit, KeyboardInterrupt) as error:
            raise StudentError(
                f"{part.function} raised {type(error).__name__}: {error}") from None
    return unpack(part.function, result, part.returns, part.sequences)


def judge(part: Part, case: Case, outputs: dict[str, torch.Tensor]) -> str | None:
    """None when every output matches the autograd reference; otherwise what is wrong."""
    expected = part.reference(*case.args.values())
    for name, reference in expected.items():
        got = outputs[name]
        what = name
        if name in part.deltas:
            start = case.args[part.deltas[name]]
            if got.shape == start.shape:
                got, reference, what = got - start, reference - start, f"the update of {name}"
        problem = compare(what, got, reference, part.tolerance)
        if problem:
            return problem
    return part.extra_check(case, outputs) if part.extra_check else None


def grade_part(part: Part, function, cases: list[Case]) -> PartResult:
    """Full points when every case passes, else 0 with the first problem found."""
    if not callable(function):
        return _failed(part, f"{part.function} should be a function, but it is a "
                             f"{type(function).__name__}.")
    for case in cases:
        try:
            problem = judge(part, case, call_student(part, function, case))
        except StudentError as error:
            problem = str(error)
        if problem:
            return _failed(part, f"{part.function} fails on {case.label}: {problem}")
    return PartResult(part.id, part.points, part.points,
                      f"{part.function} is correct on {len(cases)} cases.")


def _failed(part: Part, message: str) -> PartResult:
    if part.builds_on:
        message += (f" ({part.function} calls your {' and '.join(part.builds_on)}: "
                    f"make their checks pass first.)")
    return PartResult(part.id, 0, part.points, message)
