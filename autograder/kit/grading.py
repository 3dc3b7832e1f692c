"""Run a student's function on a part's cases and judge each result against autograd.

Two halves, kept apart on purpose: `call_student` runs untrusted code and returns plain
tensors; `judge` compares them with what is expected and never runs student code. The
notebook's test cells use both in one process; the sandboxed engine runs them in two.

What is expected comes from `Expectations`: the grader computes it with autograd
(`autograder.references.Computed`); the kit reads the visible cases' from the data that
`make release` ships with the notebook (`visible.Shipped`).
"""

import contextlib
import io
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch.overrides import TorchFunctionMode

from . import figures, manual_backprop
from .compare import layout_problem, matches, value_finding, wrong_by
from .diagnosis import Finding, KnownMistake, Scales, exception_finding
from .parts import (
    INPUTS_AFTER,
    REQUIRES_GRAD_AFTER,
    Case,
    Part,
    StudentError,
    after_inputs_changed,
    unpack,
)
from .tolerances import KNOWN_MISTAKE

Outputs = dict[str, torch.Tensor]


class Expectations(Protocol):
    """What a case's outputs should be, and what the part's known mistakes give there."""

    def reference(self, part: Part, case: Case) -> Outputs:
        """The reference outputs (autograd's) of part on case."""

    def mistakes(self, part: Part, case: Case) -> Iterable[tuple[KnownMistake, list[Outputs]]]:
        """Each known mistake of part, in order, with the outputs it gives on case (lazily:
        the first that matches ends the search)."""


@dataclass
class PartResult:
    """The verdict on one part: points earned, a message for the student, the mistake's
    name when it was recognised, and figures (SVG) that show the result against autograd's."""

    part_id: str
    score: float
    max_score: float
    message: str
    mistake: str | None = None
    figures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.score == self.max_score


def call_student(part: Part, function, case: Case, args: list | None = None) -> Outputs:
    """Call the student's function on copies of the case's inputs; StudentError on failure.

    Whatever it prints is swallowed so that test cells stay readable, and warnings are
    silenced: nbgrader gives 0 to a test cell that writes anything to stderr. A
    manual-backprop part runs with autograd unavailable (see `manual_backprop`).

    Beside the student's outputs it returns what the call left in its inputs (see
    `parts.INPUTS_AFTER`), raw: the trusted side compares them with what it sent. For a
    timed part that is the copy of its one tensor input itself, nothing computed (the engine
    makes that copy where it is given back: `args`, the copies, made by the caller).
    """
    args = _copies(case) if args is None else args
    try:
        result = _run(part, function, args)
    except manual_backprop.AutogradForbidden as error:
        raise StudentError(str(error), "autograd_used") from None
    except StudentError:
        raise
    except NotImplementedError:
        raise StudentError(f"{part.function} is not written yet "
                           f"(it still raises NotImplementedError).", "not_written") from None
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        operands = _failing_operands(part, function, case) if _BROADCAST in str(error) \
            else None
        finding = exception_finding(part.function, error, dict(case.args), operands,
                                    part.leaves_from)
        raise StudentError(finding.message, finding.mistake) from None
    outputs = unpack(part.function, result, part.returns, part.sequences)
    if part.timed:
        outputs[INPUTS_AFTER] = next(arg for arg in args if isinstance(arg, torch.Tensor))
    else:
        outputs.update(_left_behind(part, args, outputs))
    return outputs


def _copies(case: Case) -> list:
    """The case's arguments, each tensor a fresh copy for the student's function."""
    return [value.clone() if isinstance(value, torch.Tensor) else value
            for value in case.args.values()]


def _run(part: Part, function, args: list, mode: TorchFunctionMode | None = None):
    """The student's function called on args, as `call_student` says."""
    no_autograd = (manual_backprop.forbidden(part.function) if part.manual_backprop
                   else contextlib.nullcontext())
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), no_autograd, \
            mode or contextlib.nullcontext():
        warnings.simplefilter("ignore")
        return part.call(function, *args) if part.call else function(*args)


# requires_grad as torch's C type defines it (bound on import, before any student code): a
# patched torch.Tensor property is not read.
requires_grad = torch._C.TensorBase.__dict__["requires_grad"].__get__


def flat_inputs(args) -> torch.Tensor:
    """The tensors among args, flattened into one float64 tensor, in order."""
    tensors = [value.detach().reshape(-1).to(torch.float64) for value in args
               if isinstance(value, torch.Tensor)]
    return torch.cat(tensors) if tensors else torch.zeros(0, dtype=torch.float64)


def _left_behind(part: Part, args: list, outputs: Outputs) -> Outputs:
    """What the call left in its inputs: their values and requires_grad flags; for a part
    that returns new tensors, each output again after every input was changed here (an
    output that shares memory with an input changes with it). Facts for the trusted side
    to judge, nothing judged here. (The outputs returned are copies, taken before.)"""
    tensors = [value for value in args if isinstance(value, torch.Tensor)]
    flags = torch.tensor([requires_grad(t) for t in tensors], dtype=torch.bool)
    left: Outputs = {INPUTS_AFTER: flat_inputs(tensors), REQUIRES_GRAD_AFTER: flags}
    if part.new_tensors:
        returned = {name: tensor.clone() for name, tensor in outputs.items()}
        for tensor in tensors:
            with torch.no_grad():
                plain = tensor.detach()
                plain.logical_not_() if plain.dtype == torch.bool else plain.add_(1)
        left.update({after_inputs_changed(name): tensor for name, tensor in outputs.items()})
        left.update(returned)  # the outputs as the call returned them
    return left


_BROADCAST = "must match the size of tensor b"


class _FailingOperands(TorchFunctionMode):
    """Records the shapes of the tensors given to the first torch operation that raises."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return func(*args, **(kwargs or {}))
        except RuntimeError:
            if self.shapes is None:
                self.shapes = [tuple(arg.shape) for arg in args
                               if isinstance(arg, torch.Tensor)]
            raise


def _failing_operands(part: Part, function, case: Case) -> list[tuple[int, ...]] | None:
    """The operand shapes of the operation that failed, found by calling the (untrusted)
    function once more with a recorder: an error's message gives only the clashing sizes."""
    recorder = _FailingOperands()
    with contextlib.suppress(Exception, SystemExit, KeyboardInterrupt):
        _run(part, function, _copies(case), recorder)
    return recorder.shapes


def judge(part: Part, case: Case, outputs: Outputs, expected: Expectations) -> Finding | None:
    """None when every output matches the autograd reference; otherwise what is wrong,
    with the mistake named when a known wrong answer or a pattern shows it.

    The layout of every output (shape, dtype, device, length of a history) is checked
    before any values: a bias of the wrong shape says more than the losses it changed. Then
    whether the call changed its inputs' values, then the outputs' values, the part's own
    check (its own mistakes name more than a flag: `requires_grad_on_input`, `python_loop`),
    and last whether it changed an input's requires_grad or returned an input's memory
    (what the call left behind, `_left_behind`)."""
    case_scales = Scales.of(dict(case.args))
    references = expected.reference(part, case)
    compared = [(name, *_judged(part, case, name, outputs[name], reference),
                 replace(case_scales, batch_sum=name in part.batch_sums))
                for name, reference in references.items()]
    for name, what, got, reference, scales in compared:
        finding = _epochs_finding(part, case, name, got, reference) \
            or layout_problem(what, got, reference, scales)
        if finding and finding.mistake in ("shape", "transposed"):
            finding = _in_place_of(part, name, outputs, references) or finding
        # A result that became NaN or inf may be a known mistake's (one that diverges); any
        # other wrong layout says more than a known mistake could.
        if finding and finding.mistake == "not_finite":
            finding = _named(part, case, outputs, name, finding.message, expected) \
                or finding
        if finding:
            return replace(finding, output=name)
    changed = _values_changed(part, case, outputs)
    if changed:
        return changed
    for name, what, got, reference, scales in compared:
        if not matches(got, reference, part.tolerance):
            finding = (part.explain and part.explain(case, outputs)) \
                or _named(part, case, outputs, name, wrong_by(what, got, reference),
                          expected) \
                or _swapped(part, name, outputs, references) \
                or _same_as(part, name, what, outputs, references) \
                or value_finding(what, got, reference, scales, part.tolerance)
            return replace(finding, output=name)
    return (part.extra_check(case, outputs) if part.extra_check else None) \
        or _flags_changed_or_shared(part, case, outputs)


def _sent_and_returned(case: Case, outputs: Outputs) -> tuple[list, torch.Tensor, torch.Tensor,
                                                             torch.Tensor]:
    """(the case's tensor inputs by name, their values as sent, as the call left them, their
    requires_grad flags as the call left them), flat (see `parts.INPUTS_AFTER`)."""
    inputs = [(name, value) for name, value in case.args.items()
              if isinstance(value, torch.Tensor)]
    return (inputs, flat_inputs(value for _, value in inputs).cpu(),
            flat_inputs([outputs[INPUTS_AFTER]]).cpu(), outputs.get(REQUIRES_GRAD_AFTER))


def _values_changed(part: Part, case: Case, outputs: Outputs) -> Finding | None:
    """Evidence, from the tensors the call gave back: an input that holds other values after
    the call than those it was given. (Checked before the outputs: a changed input can make
    an output that aliases it wrong, and the change is the mistake to fix.)"""
    inputs, sent, after, _ = _sent_and_returned(case, outputs)
    if after.shape != sent.shape:
        return Finding(f"{part.function} changed what its inputs are (their sizes after the "
                       f"call differ): leave the tensors you are given as they are.",
                       "changed_input")
    offset = 0
    for name, value in inputs:
        was, now = sent[offset:offset + value.numel()], after[offset:offset + value.numel()]
        if not (torch.equal(was.isnan(), now.isnan())
                and torch.equal(was.nan_to_num(), now.nan_to_num())):
            return Finding(f"{part.function} changed its input {name} in place: after the "
                           f"call it holds other values than it was given, and the caller "
                           f"still needs them (the notebook's later cells reuse the same "
                           f"tensors). `{name} = {name} - ...` makes a new tensor; `{name} -= "
                           f"...`, `{name}[...] = ...`, a method ending in _ and a write into "
                           f"{name}.view(...) all change the old one. Work on new tensors (or "
                           f"on {name}.clone()) and return those.", "changed_input")
        offset += value.numel()
    return None


def _flags_changed_or_shared(part: Part, case: Case, outputs: Outputs) -> Finding | None:
    """Evidence, from the tensors the call gave back: an input whose requires_grad differs
    after the call, or (a part that returns new tensors) an output that changed when the
    inputs did, so shares memory with one."""
    if part.timed:
        return None
    inputs, _, _, flags = _sent_and_returned(case, outputs)
    if flags.shape != (len(inputs),):
        return Finding(f"{part.function} changed what its inputs are: leave the tensors you "
                       f"are given as they are.", "changed_input")
    for (name, value), requires_grad in zip(inputs, flags.tolist(), strict=True):
        if requires_grad != value.requires_grad:
            return Finding(f"{part.function} switched requires_grad on its input {name} "
                           f"itself ({name}.requires_grad_() changes the caller's tensor): "
                           f"make a new leaf from it, {name}.clone().requires_grad_(), and "
                           f"leave the input as it was given.", "changed_input")
    for name in part.returned_names() if part.new_tensors else ():
        moved = outputs[after_inputs_changed(name)]
        if moved.shape != outputs[name].shape or moved.device != outputs[name].device \
                or not torch.equal(moved.nan_to_num(), outputs[name].nan_to_num()):
            return Finding(f"{name} shares memory with an input (it changed when the inputs "
                           f"did): a caller who later changes that input changes your result "
                           f"too. Return a new tensor: compute it out of place, or .clone() "
                           f"it.", "aliased_output")
    return None


def _swapped(part: Part, name: str, outputs: Outputs, references: Outputs) -> Finding | None:
    """Evidence: this output holds what another output should be, and that one holds what
    this one should be (two results returned in each other's place)."""
    for other, reference in references.items():
        if other != name and _holds(part, outputs[name], reference) \
                and _holds(part, outputs[other], references[name]) \
                and not _holds(part, reference, references[name]):
            order = ", ".join(part.returned_names())
            return Finding(f"{name} holds what {other} should be, and {other} what {name} "
                           f"should be: {part.function} returns ({order}), in that order.",
                           "swapped_outputs")
    return None


def _in_place_of(part: Part, name: str, outputs: Outputs,
                 references: Outputs) -> Finding | None:
    """Evidence: this output, of the wrong shape, holds exactly what another output should
    be (results returned in another order, not a transposed product)."""
    for other, reference in references.items():
        if other != name and reference.numel() > 1 and _holds(part, outputs[name], reference):
            order = ", ".join(part.returned_names())
            return Finding(f"{name} holds what {other} should be: {part.function} returns "
                           f"({order}), in that order.", "swapped_outputs")
    return None


def _same_as(part: Part, name: str, what: str, outputs: Outputs,
             references: Outputs) -> Finding | None:
    """Evidence: this output, of several entries (one number may equal another by chance),
    holds exactly the values of another output, though the two should differ. No name: it
    may be one tensor returned twice (a .grad kept without a copy, then zeroed in place and
    refilled) or a quantity computed from the wrong inputs."""
    for other in references:
        if other != name and outputs[name].numel() > 1 \
                and outputs[other].shape == outputs[name].shape \
                and outputs[other].dtype == outputs[name].dtype \
                and torch.equal(outputs[other], outputs[name]) \
                and not _holds(part, references[other], references[name]):
            return Finding(f"{wrong_by(what, outputs[name], references[name])} It holds "
                           f"exactly the values of {other}, though the two should differ: "
                           f"check what {name} is computed from. (If it is the same tensor as "
                           f"{other}, kept without .clone() and changed in place later, like "
                           f"a .grad that the next backward() refills, keep a copy.)")
    return None


def _holds(part: Part, got: torch.Tensor, reference: torch.Tensor) -> bool:
    return got.shape == reference.shape and got.dtype == reference.dtype \
        and got.device == reference.device and matches(got, reference, part.tolerance)


def _judged(part: Part, case: Case, name: str, got: torch.Tensor,
            reference: torch.Tensor) -> tuple[str, torch.Tensor, torch.Tensor]:
    """(what to call it, the student's tensor, the reference) as they are compared: an
    updated parameter as its change (a wrong update cannot hide behind the parameter's
    size), a history of numbers on the reference's device (a list has no device)."""
    if name in part.sequences:
        got = got.to(reference.device)
    if name in part.deltas:
        start = case.args[part.deltas[name]]
        if got.shape == start.shape and got.dtype == start.dtype:
            return f"the update of {name}", got - start, reference - start
    return name, got, reference


def _epochs_finding(part: Part, case: Case, name: str, got: torch.Tensor,
                    reference: torch.Tensor) -> Finding | None:
    """A loss history of another length than the epochs asked for."""
    epochs = next((case.args[arg] for arg in ("epochs", "steps") if arg in case.args), None)
    if name not in part.sequences or epochs is None or got.dim() != 1 \
            or got.shape == reference.shape:
        return None
    tail = got[-reference.numel():]
    if got.numel() > reference.numel() and reference.dim() == 1 and tail.dtype == reference.dtype \
            and matches(tail, reference, part.tolerance):
        return Finding(f"{name} has {got.numel()} entries, though the loop runs {epochs} times: "
                       f"its last {epochs} are right, and the others come from an earlier "
                       f"call. A list that outlives a call (a default argument such as "
                       f"losses=[], made once and shared by every call, or a global) keeps "
                       f"growing: make a new list inside the function.")
    return Finding(f"{name} has {got.numel()} entries, but the loop should run {epochs} times "
                   f"and record one loss each time: use the epochs you are given (the checks "
                   f"pass other values than the default) and append once per epoch.",
                   "wrong_epochs")


def _named(part: Part, case: Case, outputs: Outputs, wrong: str, what_is_wrong: str,
           expected: Expectations) -> Finding | None:
    """A finding that names the known mistake the outputs are, if they are one."""
    known = _known_mistake(part, case, outputs, wrong, expected)
    # plain: a helper's own mistake (a Value whose ** drops out.grad) can make the outputs
    # of a known mistake of this part (a learning rate N times too large).
    return Finding(f"{what_is_wrong} {known.hint}", known.mistake,
                   plain=what_is_wrong) if known else None


def _known_mistake(part: Part, case: Case, outputs: Outputs, wrong: str,
                   expected: Expectations) -> KnownMistake | None:
    """The first of the part's known mistakes that produces exactly the student's outputs,
    the wrong output `wrong` among them."""
    reference = expected.reference(part, case)[wrong]
    for known, candidates in expected.mistakes(part, case):
        if any(agrees_with_mistake(part, case, known, outputs, candidate)
               for candidate in candidates
               if _shows(candidate.get(wrong), reference)):
            return known
    return None


def _shows(value: torch.Tensor | None, reference: torch.Tensor) -> bool:
    """Evidence: the mistake computes the wrong output, and something other than the
    reference there (a mistake that does not show on this case names nothing)."""
    return value is not None and (
        value.shape != reference.shape or value.dtype != reference.dtype
        or not torch.isclose(value, reference, rtol=KNOWN_MISTAKE.rtol,
                             atol=KNOWN_MISTAKE.atol, equal_nan=True).all())


def agrees_with_mistake(part: Part, case: Case, known: KnownMistake, outputs: Outputs,
                        candidate: Outputs) -> bool:
    """Whether the student's outputs equal what the known mistake produces, as far as the
    mistake says to compare them.

    A run that diverged (NaN or inf in a loss history, the student's or the mistake's) is
    compared on its losses before the divergence only: what NaN does after that depends on
    how each implementation happens to propagate it. Elsewhere an entry agrees when both are
    finite and close, or both are NaN or inf (which of them an overflow gives depends on the
    order of the operations); some finite entry must agree, in some output (a run whose
    losses stayed finite can still leave every entry of a weight NaN)."""
    compared = {name: _judged(part, case, name, outputs[name], value)[1:]
                for name, value in candidate.items()}
    if any(got.shape != value.shape or got.dtype != value.dtype or got.device != value.device
           for got, value in compared.values()):
        return False
    histories = {name: pair for name, pair in compared.items() if name in part.sequences}
    limits = [n for n in (known.first_epochs, *map(_diverges_after, histories.values()))
              if n is not None]
    if limits:
        epochs = min(limits)
        if epochs < 3:  # too short a history to tell one mistake from another
            return False
        compared = {name: (got[:epochs], value[:epochs])
                    for name, (got, value) in histories.items()}
    return all(_agrees_where_finite(got, value * _scale(got, value)
                                    if name in known.scaled else value)
               for name, (got, value) in compared.items()) \
        and any(torch.isfinite(value).any() for _, value in compared.values())


def _agrees_where_finite(got: torch.Tensor, value: torch.Tensor) -> bool:
    """got is NaN or inf where value is, and close to it everywhere else."""
    finite = torch.isfinite(value)
    return torch.equal(torch.isfinite(got), finite) and bool(torch.isclose(
        got[finite], value[finite], rtol=KNOWN_MISTAKE.rtol, atol=KNOWN_MISTAKE.atol).all())


def _diverges_after(pair: tuple[torch.Tensor, torch.Tensor]) -> int | None:
    """How many entries two histories have before either becomes NaN or inf (None: never)."""
    bad = ~(torch.isfinite(pair[0]) & torch.isfinite(pair[1]))
    return int(bad.nonzero()[0, 0]) if bad.any() else None


def _scale(got: torch.Tensor, value: torch.Tensor) -> float:
    """The factor that best turns value into got (1 when there is none to find)."""
    mask = (value.abs() > 1e-12) & torch.isfinite(value) & torch.isfinite(got)
    ratio = (got[mask] / value[mask]).median().item() if mask.any() else 1.0
    return ratio if ratio == ratio and ratio != 0 else 1.0


def grade_part(part: Part, function, cases: list[Case], expected: Expectations,
               helpers_failed_with: frozenset[str | None] = frozenset()) -> PartResult:
    """Full points when every case passes, else 0 with the first problem found
    (helpers_failed_with: as `grade_outcomes` says)."""
    if not callable(function):
        return failed(part, Finding(f"{part.function} should be a function, but it is a "
                                    f"{type(function).__name__}.", "missing_function"))
    outcomes = timed_outcomes(part, function, cases) if part.timed \
        else (_attempt(part, function, case) for case in cases)
    return grade_outcomes(part, cases, outcomes, expected, helpers_failed_with)


def helpers_failed(part: Part, failing: dict[str, str | None]) -> frozenset[str | None]:
    """The mistakes named in the failing parts of the student's functions that part calls
    (`failing`: each failing part's function and its mistake, parts graded in notebook
    order): `grade_outcomes`'s helpers_failed_with, as the engine passes it."""
    return frozenset(failing[function] for function in part.builds_on if function in failing)


def timed_outcomes(part: Part, function, cases: list[Case]) -> list[Outputs | Finding]:
    """A timed part's outcomes, its "cpu_seconds" measured as the engine measures them: a
    call on zeros first (not timed), then this process's CPU time over every call (a copy
    of the inputs, the call, a copy of its outputs), shared out over the calls."""
    _attempt(part, function, Case(cases[0].label, {
        name: torch.zeros_like(value) if isinstance(value, torch.Tensor) else value
        for name, value in cases[0].args.items()}))
    start = time.process_time()
    outcomes = [_attempt(part, function, case) for case in cases]
    outcomes = [outcome if isinstance(outcome, Finding)  # copied out, as the engine does
                else {name: tensor if name == INPUTS_AFTER else tensor.clone()
                      for name, tensor in outcome.items()}
                for outcome in outcomes]
    seconds = torch.tensor((time.process_time() - start) / len(cases), dtype=torch.float64)
    return [outcome if isinstance(outcome, Finding) else {**outcome, "cpu_seconds": seconds}
            for outcome in outcomes]


def _attempt(part: Part, function, case: Case) -> Outputs | Finding:
    try:
        return call_student(part, function, case)
    except StudentError as error:
        return error.finding()


def grade_outcomes(part: Part, cases: list[Case], outcomes: Iterable[Outputs | Finding],
                   expected: Expectations,
                   helpers_failed_with: frozenset[str | None] = frozenset()) -> PartResult:
    """Judge each case's outcome (the student's outputs, or why there are none) in order.

    Full points when every case passes, else 0 with the first problem found. Outcomes may
    come lazily (a generator): nothing after the first failing case is asked for. The
    figures show the first failing case (or the first case, when all pass).
    helpers_failed_with: the mistakes named in the failing parts of the student's functions
    that this part calls. A pattern between result and reference (a ratio, say) that names
    another mistake is stated, not named: the helper's own mistake can make it.
    """
    shown, passed = None, []
    for case, outcome in zip(cases, outcomes, strict=False):
        finding = outcome if isinstance(outcome, Finding) \
            else judge(part, case, outcome, expected)
        if finding and finding.plain and helpers_failed_with \
                and finding.mistake not in helpers_failed_with:
            finding = Finding(finding.plain, None, finding.output)
        shown = shown or (case, outcome)
        passed.append((case, outcome))
        if finding:
            return failed(part, Finding(f"{part.function} fails on {case.label}: "
                                        f"{finding.message}", finding.mistake),
                          _figures(part, case, outcome, finding, expected))
    figures_shown = _figures(part, *shown, None, expected) if shown else ()
    count = f"{len(cases)} case{'s' * (len(cases) != 1)}"
    notes = (part.passed_note(*case_outcome) for case_outcome in passed) \
        if part.passed_note else ()
    note = next((note for note in notes if note), "")
    measured = f" {note}" if note else ""
    return PartResult(part.id, part.points, part.points,
                      f"{part.function} is correct on {count}.{measured}", None, figures_shown)


def _figures(part: Part, case: Case, outcome: Outputs | Finding, finding: Finding | None,
             expected: Expectations) -> tuple[str, ...]:
    """The loss curve of a training part against the reference's, and for a wrong tensor a
    map of where it differs. No values are shown: the axes of a loss curve carry no scale."""
    if isinstance(outcome, Finding):
        return ()
    reference = expected.reference(part, case)
    shown = []
    for name in sorted(part.sequences & reference.keys()):
        shown.append(figures.loss_curves(outcome[name], reference[name],
                                         f"{part.function}: {name} per epoch", case.label))
    wrong = finding and finding.output
    if wrong and wrong not in part.sequences and wrong in reference:
        what, got, theirs = _judged(part, case, wrong, outcome[wrong], reference[wrong])
        if got.numel() > 1 and layout_problem(what, got, theirs) is None:
            shown.append(figures.error_map(got, theirs, f"{part.function}: where {what} "
                                           f"differs from autograd's", case.label))
    return tuple(shown)


def failed(part: Part, finding: Finding, figures_shown: tuple[str, ...] = ()) -> PartResult:
    """0 points for part, with the finding and a pointer to the parts it builds on."""
    message = finding.message
    if part.builds_on:  # the check alone cannot know whether those parts pass
        advice = ("if its check fails too, fix it first" if len(part.builds_on) == 1 else
                  "if their checks fail too, fix them first")
        message += f" ({part.function} calls your {' and '.join(part.builds_on)}: {advice}.)"
    return PartResult(part.id, 0, part.points, message, finding.mistake, figures_shown)
