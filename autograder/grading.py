"""Run a student's function on a part's cases and judge each result against autograd.

Two halves, kept apart on purpose: `call_student` runs untrusted code and returns plain
tensors; `judge` computes the reference and the verdict and never runs student code. The
notebook's test cells use both in one process; the sandboxed engine runs them in two.
"""

import contextlib
import io
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from . import manual_backprop
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
    silenced: nbgrader gives 0 to a test cell that writes anything to stderr. A
    manual-backprop part runs with autograd unavailable (see `manual_backprop`).
    """
    args = [value.clone() if isinstance(value, torch.Tensor) else value
            for value in case.args.values()]
    no_autograd = (manual_backprop.forbidden(part.function) if part.manual_backprop
                   else contextlib.nullcontext())
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), no_autograd:
        warnings.simplefilter("ignore")
        try:
            result = part.call(function, *args) if part.call else function(*args)
        except manual_backprop.AutogradForbidden as error:
            raise StudentError(str(error)) from None
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
    expected = cached_reference(part, case)
    for name, reference in expected.items():
        got = outputs[name]
        if name in part.sequences:  # a history of numbers (a list of floats) has no device
            got = got.to(reference.device)
        what = name
        if name in part.deltas:
            start = case.args[part.deltas[name]]
            if got.shape == start.shape and got.dtype == start.dtype:
                got, reference, what = got - start, reference - start, f"the update of {name}"
        problem = compare(what, got, reference, part.tolerance)
        if problem:
            return problem
    return part.extra_check(case, outputs) if part.extra_check else None


def cached_reference(part: Part, case: Case) -> dict[str, torch.Tensor]:
    """The part's autograd reference on this case, computed once per distinct input.

    References are deterministic, so the visible cases (the same for every submission) and
    a re-graded seed cost one computation per process, however many students are graded.
    """
    key = (part.reference.__module__, part.reference.__qualname__,
           tuple(_fingerprint(value) for value in case.args.values()))
    with _REFERENCES_LOCK:
        cached = _REFERENCES.get(key)
    if cached is None:
        cached = part.reference(*case.args.values())
        with _REFERENCES_LOCK:
            _REFERENCES[key] = cached
            while len(_REFERENCES) > REFERENCE_CACHE_SIZE:
                _REFERENCES.pop(next(iter(_REFERENCES)))
    return cached


def _fingerprint(value):
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), value.cpu().numpy().tobytes())
    return repr(value)


REFERENCE_CACHE_SIZE = 512
_REFERENCES: dict[tuple, dict[str, torch.Tensor]] = {}
_REFERENCES_LOCK = threading.Lock()


def grade_part(part: Part, function, cases: list[Case]) -> PartResult:
    """Full points when every case passes, else 0 with the first problem found."""
    if not callable(function):
        return failed(part, f"{part.function} should be a function, but it is a "
                             f"{type(function).__name__}.")
    return grade_outcomes(part, cases, (_attempt(part, function, case) for case in cases))


def _attempt(part: Part, function, case: Case) -> dict[str, torch.Tensor] | str:
    try:
        return call_student(part, function, case)
    except StudentError as error:
        return str(error)


def grade_outcomes(part: Part, cases: list[Case],
                   outcomes: Iterable[dict[str, torch.Tensor] | str]) -> PartResult:
    """Judge each case's outcome (the student's outputs, or why there are none) in order.

    Full points when every case passes, else 0 with the first problem found. Outcomes may
    come lazily (a generator): nothing after the first failing case is asked for.
    """
    for case, outcome in zip(cases, outcomes, strict=False):
        problem = outcome if isinstance(outcome, str) else judge(part, case, outcome)
        if problem:
            return failed(part, f"{part.function} fails on {case.label}: {problem}")
    return PartResult(part.id, part.points, part.points,
                      f"{part.function} is correct on {len(cases)} cases.")


def failed(part: Part, message: str) -> PartResult:
    """0 points for part, with message and a pointer to the parts it builds on."""
    if part.builds_on:
        message += (f" ({part.function} calls your {' and '.join(part.builds_on)}: "
                    f"make their checks pass first.)")
    return PartResult(part.id, 0, part.points, message)
