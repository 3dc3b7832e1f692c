"""Autograd built by hand: a scalar `Value` with its backward pass, a small network on it, then
the same network in idiomatic PyTorch. How each part is called and judged (untrusted side).

The grader cannot send a student's class a graph: only tensors cross the sandbox. A case
describes expressions as tensors (operands, operation codes, constants); the calls here build
them with the student's `Value` in the child, run its backward pass, and return the numbers
they read off the nodes as float64 tensors. The trusted side builds the same expressions in
torch and asks autograd.
"""

import contextlib

import torch

from ..datasets import HeldOut
from ..diagnosis import Finding
from ..parts import Assignment, Part, StudentError, unpack
from ..tolerances import ONE_OPERATION, ONE_STEP, TRAINING
from ..training import STEPS, cleared_before_step, recording_steps

# Each operation of Value by code (the index), written as the check applies it: `a` and `b`
# are Values, `c` a plain number.
OPERATIONS = ("a + b", "a * b", "a + c", "c * a", "a ** c", "a.exp()", "a.tanh()",
              "a.sigmoid()", "a.relu()")
ADD, MUL, ADD_NUMBER, NUMBER_TIMES, POW, EXP, TANH, SIGMOID, RELU = range(len(OPERATIONS))
BINARY = frozenset({ADD, MUL})
_APPLY = (lambda a, b, c: a + b, lambda a, b, c: a * b, lambda a, b, c: a + c,
          lambda a, b, c: c * a, lambda a, b, c: a ** c, lambda a, b, c: a.exp(),
          lambda a, b, c: a.tanh(), lambda a, b, c: a.sigmoid(), lambda a, b, c: a.relu())
# The outputs of the two parts about single operations: one per operation.
FORWARD_RETURNS = OPERATIONS
LOCAL_RETURNS = tuple(f"_backward of {operation}" for operation in OPERATIONS)
GRADIENTS = "node.grad"
PARAMETERS = ("w1", "b1", "w2", "b2")
MLP_RETURNS = ("loss", "grad_w1", "grad_b1", "grad_w2", "grad_b2")

_NUMBER_HINT = {
    ADD_NUMBER: " a + 2.0 gives __add__ a plain number: wrap it, other = other if "
                "isinstance(other, Value) else Value(other).",
    NUMBER_TIMES: " 2.0 * a asks float first, which does not know Value, then Value.__rmul__: "
                  "define __rmul__ (and __radd__), returning self * other.",
}


def _apply(Value, operation: int, a, b, c: float, shown: str):
    """A new node: operation applied to the student's Values (a, b) or to a and the number c;
    StudentError when it raises on a plain number or returns something else than a Value."""
    try:
        out = _APPLY[operation](a, b, c)
    except (TypeError, AttributeError) as error:
        if operation not in _NUMBER_HINT:
            raise
        raise StudentError(f"{shown} raised {type(error).__name__}: {error}."
                           f"{_NUMBER_HINT[operation]}", "exception") from None
    if not isinstance(out, Value):
        raise StudentError(f"{shown} returned a {type(out).__name__}, not a Value: each "
                           f"operation returns a new Value that remembers its inputs.",
                           "wrong_type")
    return out


def _number(node, attribute: str) -> float:
    """A node's .data or .grad as a float, or StudentError."""
    value = getattr(node, attribute)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StudentError(f"a Value's .{attribute} is a {type(value).__name__}, not a number: "
                           f"keep .data and .grad plain Python floats.", "wrong_type")
    return float(value)


def _numbers(nodes, attribute: str) -> torch.Tensor:
    return torch.tensor([_number(node, attribute) for node in nodes], dtype=torch.float64)


def _leaf(Value, data: float, grad: float | None = None):
    node = Value(data)
    if grad is not None:
        node.grad = grad
    return node


def operation_results(Value, a: torch.Tensor, b: torch.Tensor):
    """Each operation applied to each column of its row of a (and b: the second Value, or
    the number c): the .data of every result, per operation."""
    results = []
    for operation, (row_a, row_b) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        outs = [_apply(Value, operation, _leaf(Value, x),
                       _leaf(Value, y) if operation in BINARY else None, y,
                       OPERATIONS[operation])
                for x, y in zip(row_a, row_b, strict=True)]
        results.append(_numbers(outs, "data"))
    return tuple(results)


def local_gradients(Value, a, b, upstream, earlier_a, earlier_b):
    """For each operation and column: inputs whose .grad already holds a contribution from
    elsewhere in a graph (earlier_a, earlier_b), the result's .grad set to the gradient
    flowing in (upstream), then out._backward(). Per operation, the inputs' .grad after it:
    (a.grad, b.grad) per column for a + b and a * b, a.grad for the others."""
    results = []
    for operation in range(len(OPERATIONS)):
        grads = []
        for x, y, g, ea, eb in zip(*(t[operation].tolist()
                                     for t in (a, b, upstream, earlier_a, earlier_b)),
                                   strict=True):
            first = _leaf(Value, x, ea)
            second = _leaf(Value, y, eb) if operation in BINARY else None
            out = _apply(Value, operation, first, second, y, OPERATIONS[operation])
            out.grad = g
            out._backward()
            grads.append([_number(first, "grad")] + ([_number(second, "grad")]
                                                      if second is not None else []))
        tensor = torch.tensor(grads, dtype=torch.float64)
        results.append(tensor if operation in BINARY else tensor[:, 0])
    return tuple(results)


def graph_gradients(Value, leaves, program, constants):
    """The expression a case describes, built with the student's Value: a leaf per entry of
    leaves, then one node per row (operation, first, second) of program, its operands the
    nodes at those positions (second < 0: none) or the row's constant. backward() from the
    last node; the .grad of every node, in order."""
    nodes = [_leaf(Value, x) for x in leaves.tolist()]
    for (operation, first, second), c in zip(program.tolist(), constants.tolist(),
                                             strict=True):
        nodes.append(_apply(Value, operation, nodes[first],
                            nodes[second] if second >= 0 else None, c, OPERATIONS[operation]))
    nodes[-1].backward()
    return _numbers(nodes, "grad")


# The output a recording train_mlp call adds: (backward() calls, those after which a
# parameter's gradient was set to 0 and then its value updated).
BACKWARD_CALLS = "backward() calls"


class _ClearedBeforeUpdate:
    """Watches the notebook's Value while train_mlp runs: its backward(), and what is
    assigned to the .grad and .data of the leaves (nodes without `_prev`) that a backward()
    gave a nonzero gradient. Evidence of gradients cleared between backward() and the
    update: after a backward(), a leaf's .grad set to 0, then its .data assigned (the update,
    which then had nothing to apply). A loop that clears them first, or after the update,
    assigns .data first; one that never updates (p = p - ..., a new Value) assigns no .data.
    Nothing here changes what the code does."""

    def __init__(self):
        self.watched: dict[int, list] = {}  # id of a leaf: [the leaf, "filled" or "cleared"]
        self.counts = [0, 0]
        self.seen_update = False

    def wrapping(self, backward):
        def recorded(root, *args, **kwargs):
            self.settle()
            result = backward(root, *args, **kwargs)
            self.counts[0] += 1
            self.watched = {id(leaf): [leaf, "filled"] for leaf in _leaves(root)
                            if _nonzero(getattr(leaf, "grad", None))}
            return result
        return recorded

    def assigned(self, node, name: str, value) -> None:
        entry = self.watched.get(id(node))
        if entry is None or entry[0] is not node:
            return
        if name == "grad" and entry[1] == "filled" and not _nonzero(value):
            entry[1] = "cleared"
        elif name == "data":
            self.seen_update = self.seen_update or entry[1] == "cleared"
            entry[1] = "updated"

    def settle(self) -> None:
        self.counts[1] += self.seen_update
        self.watched, self.seen_update = {}, False


def _nonzero(grad) -> bool:
    return isinstance(grad, (int, float)) and grad != 0


def _leaves(root) -> list:
    """The nodes without inputs that root was computed from (none if the graph cannot be
    read through `_prev`)."""
    leaves, seen, stack = [], {id(root)}, [root]
    try:
        while stack:
            node = stack.pop()
            inputs = tuple(node._prev)
            if not inputs:
                leaves.append(node)
            for child in inputs:
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append(child)
    except Exception:  # noqa: BLE001 - a graph of the student's own making: no evidence
        return []
    return leaves


def recording_backward_calls(function, *args):
    """train_mlp's `Part.call`: its values, then BACKWARD_CALLS, as `_ClearedBeforeUpdate`
    records them on the notebook's Value (its backward and __setattr__ wrapped during the
    call, then put back as they were)."""
    record = _ClearedBeforeUpdate()
    Value = getattr(function, "__globals__", {}).get("Value")
    backward = getattr(Value, "backward", None) if isinstance(Value, type) else None
    if callable(backward):
        setattr_ = Value.__setattr__

        def recorded_setattr(node, name, value):
            setattr_(node, name, value)
            record.assigned(node, name, value)

        with _replaced(Value, backward=record.wrapping(backward),
                       __setattr__=recorded_setattr):
            result = function(*args)
    else:
        result = function(*args)
    record.settle()
    unpack("train_mlp", result, _TRAINING["returns"], _TRAINING["sequences"])
    return (*result, torch.tensor(record.counts, dtype=torch.float64))


@contextlib.contextmanager
def _replaced(cls: type, **attributes):
    """cls with these attributes set, then each put back as it was (or removed)."""
    own = {name: cls.__dict__[name] for name in attributes if name in cls.__dict__}
    for name, value in attributes.items():
        setattr(cls, name, value)
    try:
        yield
    finally:
        for name in attributes:
            if name in own:
                setattr(cls, name, own[name])
            else:
                delattr(cls, name)


def _cleared_before_update(_case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """Evidence: a backward()'s gradients were set back to 0 before any parameter moved."""
    counts = outputs[BACKWARD_CALLS]
    if counts.shape != (2,) or not counts[1] > 0:
        return None
    return Finding("the gradients that backward() had just filled were set back to 0 before "
                   "the update used them, so p.data -= learning_rate * p.grad moved nothing "
                   "and the parameters never changed. Clear them before backward() (or after "
                   "the update), never between the two.", "cleared_before_step")


# The boundary the module's run draws, checked on held-out points.
_HELD_OUT = HeldOut(torch.tanh)


_TRAINING = {"returns": ("losses", PARAMETERS), "tolerance": TRAINING,
             "sequences": frozenset({"losses"})}

ASSIGNMENT = Assignment("autograd_from_scratch", (
    Part("operations", "Value", points=2, returns=FORWARD_RETURNS, tolerance=ONE_OPERATION,
         manual_backprop=True, call=operation_results),
    Part("local_gradients", "Value", points=2, returns=LOCAL_RETURNS, tolerance=ONE_STEP,
         manual_backprop=True, call=local_gradients),
    Part("backward", "Value", points=3, returns=GRADIENTS, tolerance=ONE_STEP,
         manual_backprop=True, call=graph_gradients),
    Part("mlp_gradients", "mlp_gradients", points=2, returns=MLP_RETURNS, tolerance=ONE_STEP,
         builds_on=("Value",), manual_backprop=True),
    Part("train_mlp", "train_mlp", points=2, builds_on=("Value",), manual_backprop=True,
         **{**_TRAINING, "returns": (*_TRAINING["returns"], BACKWARD_CALLS)},
         call=recording_backward_calls, explain=_cleared_before_update),
    Part("torch_module", "train_module", points=3, uses_autograd=True,
         extra_check=_HELD_OUT.check, passed_note=_HELD_OUT.note,
         **{**_TRAINING, "returns": (*_TRAINING["returns"], STEPS)},
         call=recording_steps("train_module", _TRAINING["returns"], _TRAINING["sequences"]),
         explain=cleared_before_step),
))
