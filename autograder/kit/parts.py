"""What a gradable part is, and how a student's return value becomes named tensors.

A part is one stub in a notebook, worth points. Here it says how the student's function is
called and judged: its name, the values it returns, the tolerance and the facts checked
beyond the reference. Its cases and its autograd reference are the grader's
(`autograder.references.graded`); the kit gets the visible ones as data.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .diagnosis import Finding
from .tolerances import Tolerance

# The shape of a return value: a name for one tensor, or a tuple of such shapes.
ReturnSpec = str | tuple["ReturnSpec", ...]

# What a call leaves behind, returned beside the student's outputs (untimed parts): the
# tensor inputs after the call, flattened into one float64 tensor in the case's order, and
# their requires_grad flags. The trusted side compares them with the inputs it sent.
INPUTS_AFTER = "the inputs after the call"
REQUIRES_GRAD_AFTER = "the inputs' requires_grad after the call"


def after_inputs_changed(output: str) -> str:
    """The name of an output as it reads once the kit has changed every input (parts that
    return new tensors): equal to the output unless it shares memory with an input."""
    return f"{output}, after the inputs changed"


class StudentError(Exception):
    """The student's function failed or returned something unusable; the text says why,
    and `mistake` names the kind of failure (a key of diagnosis.MISTAKES)."""

    def __init__(self, message: str, mistake: str = "wrong_type"):
        super().__init__(message)
        self.mistake = mistake

    def finding(self) -> Finding:
        return Finding(str(self), self.mistake)


@dataclass(frozen=True)
class Case:
    """One call of the student's function: a label for messages and positional arguments.

    `truth` holds what the grader knows about the case but the student's function is not
    given, e.g. the map that generated the targets; only `Part.extra_check` reads it.
    """

    label: str
    args: Mapping[str, Any]
    truth: Mapping[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One graded stub: its notebook cell id, its function and how to judge it."""

    id: str
    function: str
    points: int
    returns: ReturnSpec
    tolerance: Tolerance
    # Outputs judged as a change of one input (output - input), e.g. an updated weight.
    deltas: Mapping[str, str] = field(default_factory=dict)
    # Outputs that may also be given as a list of numbers, e.g. a loss history.
    sequences: frozenset[str] = frozenset()
    # Functions from earlier parts that this one calls.
    builds_on: tuple[str, ...] = ()
    # Outputs that are sums over the batch (bias gradients and updates): only there can a
    # sum over the wrong axis, or over every entry, be named.
    batch_sums: frozenset[str] = frozenset()
    # The notebook's function that makes the leaves requiring grad, when the part uses one.
    leaves_from: str | None = None
    # The student does backprop by hand: autograd is unavailable while the function runs.
    manual_backprop: bool = False
    # The function trains with autograd (backward()): the engine never runs it in a child
    # with a manual-backprop part, where autograd is forbidden from the first cell on.
    uses_autograd: bool = False
    # The part measures speed: its outputs include "cpu_seconds", the CPU time of one call.
    # The engine gives the cases only when it starts the clock, from outside the sandbox,
    # and replaces that output with its own measurement.
    timed: bool = False
    # A condition on the outputs beyond the reference (trusted side, never runs student
    # code): (case, outputs) -> None when it holds, else what is wrong. E.g. "the weight
    # learned the true map", "the gradient is exactly zero".
    extra_check: Callable[[Case, dict[str, torch.Tensor]], Finding | None] | None = None
    # Evidence the call recorded that names the mistake of a wrong result (trusted side):
    # (case, outputs) -> a named finding, or None. E.g. "the step found its gradients cleared".
    explain: Callable[[Case, dict[str, torch.Tensor]], Finding | None] | None = None
    # What a passing result adds to its message: the first note that a case's outputs give
    # ("" gives none), e.g. the speed that was measured.
    passed_note: Callable[[Case, dict[str, torch.Tensor]], str] | None = None
    # How to call the student's function (untrusted side): call(function, *case args)
    # returns what `returns` describes. By default function(*args). A part may set up
    # autograd state here (leaf parameters holding a stale .grad) and report, as tensors,
    # what the call did to it; it raises StudentError for a mistake it recognises.
    call: Callable[..., Any] | None = None
    # The prose says "return new tensors": no output may share memory with an input.
    new_tensors: bool = False

    def returned_names(self) -> list[str]:
        """The names of the tensors the student's function returns, in order."""
        return _leaves(self.returns)

    def output_names(self) -> list[str]:
        """The names of the tensors a call of this part gives back (`grading.call_student`):
        the student's, then what the call left in its inputs (a timed part's: its one tensor
        input itself, which the engine copies into a slot it gives back, at no cost on the
        clock)."""
        returned = self.returned_names()
        if self.timed:
            return [*returned, INPUTS_AFTER]
        aliases = [after_inputs_changed(name) for name in returned] if self.new_tensors else []
        return [*returned, INPUTS_AFTER, REQUIRES_GRAD_AFTER, *aliases]


@dataclass(frozen=True)
class Assignment:
    """An assignment: its name (the nbgrader assignment id) and its parts in notebook order.
    on_device: its cases live on the chosen device, not the CPU (the device that
    `assignments.two_layer_net.chosen_device` chooses)."""

    name: str
    parts: tuple[Part, ...]
    on_device: bool = False

    def part(self, part_id: str) -> Part:
        """The part whose id (the nbgrader grade id of its test cell) is part_id."""
        for part in self.parts:
            if part.id == part_id:
                return part
        known = ", ".join(p.id for p in self.parts)
        raise KeyError(f"{self.name} has no part {part_id!r} (its parts: {known})")


def returning_new_tensors(*parts: Part) -> tuple[Part, ...]:
    """The parts of a notebook whose rules say "do not change the inputs you are given:
    return new tensors", marked so (`Part.new_tensors`)."""
    return tuple(replace(part, new_tensors=True) for part in parts)


def _leaves(spec: ReturnSpec) -> list[str]:
    if isinstance(spec, str):
        return [spec]
    return [name for item in spec for name in _leaves(item)]


def _describe(spec: ReturnSpec) -> str:
    if isinstance(spec, str):
        return spec
    return "(" + ", ".join(_describe(item) for item in spec) + ")"


def unpack(function: str, result: Any, spec: ReturnSpec,
           sequences: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """Turn a student's return value into {name: plain float tensor}, or raise StudentError."""
    if isinstance(spec, str):
        return {spec: as_tensor(function, spec, result, spec in sequences)}
    if not isinstance(result, (tuple, list)) or len(result) != len(spec):
        got = (f"{len(result)} values" if isinstance(result, (tuple, list))
               else f"a {type(result).__name__}")
        raise StudentError(
            f"{function} should return {len(spec)} values {_describe(spec)}, but returned {got}.")
    tensors: dict[str, torch.Tensor] = {}
    for item, item_spec in zip(result, spec, strict=True):
        tensors.update(unpack(function, item, item_spec, sequences))
    return tensors


def as_tensor(function: str, name: str, value: Any, allow_sequence: bool) -> torch.Tensor:
    """A plain (not subclassed, detached) tensor for one returned value, or StudentError.

    A subclass of torch.Tensor is refused unread (its methods and flags are the student's
    code); nn.Parameter, what a model's weights are, is taken as the tensor it holds."""
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return value.detach().as_subclass(torch.Tensor)
    if isinstance(value, torch.Tensor):
        raise StudentError(f"{name} from {function} is a {type(value).__name__}, a subclass "
                           f"of torch.Tensor: return a plain tensor.")
    if value is None:
        raise StudentError(f"{function} returned None for {name}: is a `return` missing?")
    if allow_sequence and isinstance(value, (list, tuple)):
        try:
            return torch.tensor([_number(v) for v in value], dtype=torch.float64)
        except (TypeError, ValueError) as error:
            raise StudentError(
                f"{name} from {function} should be a list of numbers or a 1-D tensor: {error}"
            ) from None
    kind = "a numpy array (use torch.from_numpy)" if type(value).__module__ == "numpy" \
        else f"a {type(value).__name__}"
    raise StudentError(f"{name} from {function} should be a torch.Tensor, but it is {kind}.")


def _number(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"an entry has shape {tuple(value.shape)}, not a single number")
        return value.item()
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"an entry is a {type(value).__name__}, not a number")
