"""Autograd basics (tutorial 001): how each part is called and judged, and the calls that
report what a student's code did to leaf tensors (untrusted side)."""

import torch

from ..diagnosis import Finding
from ..grading import requires_grad
from ..parts import Assignment, Case, Part, StudentError, unpack
from ..routes import Route, follow
from ..tolerances import ONE_OPERATION, ONE_STEP

PREPARED = ("X", "w1", "b1", "w2", "b2")
PARAMETERS = ("w1", "b1", "w2", "b2")

# The flags as torch's C type defines them (immutable, taken before any student code runs,
# requires_grad's in `grading`): a student's subclass is refused by `unpack`, and a patched
# torch.Tensor property is not read.
_IS_LEAF = torch._C.TensorBase.__dict__["is_leaf"].__get__


def with_autograd_flags(function, X, w1, b1, w2, b2, *, readers=(requires_grad, _IS_LEAF)):
    """Call prepare(...) and report, as 0/1 tensors, which results require grad and are
    leaves (read with the readers bound when this module loaded)."""
    result = function(X, w1, b1, w2, b2)
    unpack("prepare", result, PREPARED)  # a clear StudentError when it is not 5 tensors
    as_flags = [[float(read(t)) for t in result] for read in readers]
    return (tuple(result), *(torch.tensor(f, dtype=torch.float64) for f in as_flags))


IN_PLACE_ON_A_LEAF = (
    "an in-place update of a parameter that requires grad (p -= ...) raised an error: autograd "
    "cannot record it. Do the update inside `with torch.no_grad():`.")
STALE_GRADIENT = (
    "the parameters became NaN: their .grad held a gradient from an earlier step (NaN here, "
    "to make it visible) and your step used it. Clear the gradients before backward(): "
    "optimizer.zero_grad(), or p.grad = None for each parameter.")
REBOUND = (
    "backward() filled the parameters' .grad, but the parameters did not change: the update "
    "never reached them. `p = p - ...` makes a new tensor and rebinds the name, leaving the "
    "parameter as it was (so does updating a copy); update it in place (`p -= ...`, inside "
    "torch.no_grad()).")
CLEARED = (
    "backward() ran, but the parameters did not change and their .grad is empty: the gradients "
    "were cleared after backward() and before the update, which then had nothing to apply. "
    "Clear them before backward().")
CLEARED_TO_NONE = (
    "the update raised TypeError: backward() filled the gradients, but every .grad was None "
    "when the update ran, so they were cleared (p.grad = None) after backward() and before "
    "the update. Clear them before backward().")
NO_BACKWARD = (
    "the parameters did not change, and backward() never ran on them: compute the loss from "
    "the parameters you are given and call backward() before the update.")


def step_on_leaves(function, w1, b1, w2, b2, X, y, learning_rate):
    """Call step(params, X, y, learning_rate) on leaf parameters that hold a stale (NaN)
    .grad, as after an earlier step; return the parameters' values after the call.

    When no parameter changed, the evidence says why: a hook on each parameter tells whether
    backward() reached it, and .grad afterwards whether it was cleared before the update."""
    starts = (w1, b1, w2, b2)
    params = [p.clone().requires_grad_() for p in starts]
    reached = []
    for param in params:
        param.grad = torch.full_like(param, float("nan"))
        param.register_hook(lambda grad: reached.append(True))
    try:
        function(params, X, y, learning_rate)
    except RuntimeError as error:
        if "leaf Variable that requires grad" in str(error):
            raise StudentError(IN_PLACE_ON_A_LEAF, "in_place_on_leaf") from None
        raise
    except TypeError:  # e.g. p -= learning_rate * p.grad, with p.grad set to None
        if reached and all(param.grad is None for param in params):
            raise StudentError(CLEARED_TO_NONE, "cleared_before_step") from None
        raise
    after = tuple(param.detach().clone() for param in params)
    if any(value.isnan().any() for value in after):
        raise StudentError(STALE_GRADIENT, "missing_zero_grad")
    if all(torch.equal(value, start) for value, start in zip(after, starts, strict=True)):
        if not reached:
            raise StudentError(NO_BACKWARD, None)
        if all(param.grad is None or not param.grad.any() for param in params):
            raise StudentError(CLEARED, "cleared_before_step")
        raise StudentError(REBOUND, "rebound_parameter")
    return after


def _prepared_flags(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    for name, requires, leaf in zip(PREPARED, outputs["requires_grad"], outputs["is_leaf"],
                                    strict=True):
        if name == "X" and requires:
            return Finding("X requires grad, but it is the input: training never changes it, "
                           "so it needs no gradient (requires_grad=False).",
                           "requires_grad_on_input")
        if name != "X" and not requires:
            return Finding(f"{name} does not require grad, but it is a parameter that training "
                           f"changes.", "missing_requires_grad")
        if not leaf:
            return Finding(f"{name} is not a leaf: it was computed from a tensor that requires "
                           f"grad, so backward() would not fill its .grad. Use "
                           f".clone().requires_grad_().", "not_a_leaf")
    return None


# What these parts teach: the local gradient read off the graph (no arithmetic on its path,
# no autograd), and the softmax by hand (exp and arithmetic only on the probabilities' path).
LOCAL_GRADIENT_RETURNS = ("a", "local_gradient")
SOFTMAX_RETURNS = ("probabilities", "loss", "logits_grad")
_BY_THE_NODE = follow(Route(
    "call the node instead: a.grad_fn(torch.ones_like(a)) is the local gradient. This part is "
    "about reading it from the graph, not computing a * (1 - a) or calling backward().",
    allowed=frozenset({"sigmoid", "grad_fn", "ones_like", "ones", "clone", "detach", "to",
                       "double", "float", "requires_grad", "get", "getitem", "tensor"}),
    outputs=frozenset({"local_gradient"}), anywhere=frozenset({"backward", "grad"})),
    LOCAL_GRADIENT_RETURNS)
_SOFTMAX_BY_HAND = follow(Route(
    "write the softmax by hand, with torch.exp of the logits minus each row's maximum, over "
    "their row sums. This part is about computing it, not calling a built-in that does.",
    outputs=frozenset({"probabilities"})), SOFTMAX_RETURNS)

_STEP = {"returns": PARAMETERS, "tolerance": ONE_STEP,
         "deltas": {name: name for name in PARAMETERS}, "call": step_on_leaves}

ASSIGNMENT = Assignment("autograd_basics", (
    # The prose: "Do not change the tensors you are given: return new ones." (The only part
    # here that says so: the steps update their parameters in place.)
    Part("requires_grad", "prepare", points=1, returns=(PREPARED, "requires_grad", "is_leaf"),
         tolerance=ONE_OPERATION, call=with_autograd_flags, extra_check=_prepared_flags,
         new_tensors=True),
    Part("grad_fn", "sigmoid_local_gradient", points=1, returns=LOCAL_GRADIENT_RETURNS,
         tolerance=ONE_OPERATION, call=_BY_THE_NODE),
    Part("losses", "sum_and_mean_losses", points=2,
         returns=("sum_loss", "mse_loss", "sum_grad_w2", "mse_grad_w2", "scale"),
         tolerance=ONE_STEP, leaves_from="prepare"),
    Part("accumulate", "grads_over_two_backward_calls", points=2,
         returns=("after_one", "after_two", "after_zeroing"), tolerance=ONE_STEP,
         builds_on=("forward",), leaves_from="prepare"),
    Part("sgd_step", "sgd_step", points=2, builds_on=("forward",), **_STEP),
    Part("manual_step", "manual_step", points=2, builds_on=("forward",), **_STEP),
    Part("softmax_cross_entropy", "softmax_cross_entropy", points=2,
         returns=SOFTMAX_RETURNS, tolerance=ONE_STEP,
         call=_SOFTMAX_BY_HAND),
))
