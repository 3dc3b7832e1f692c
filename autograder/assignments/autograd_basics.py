"""Autograd basics (tutorial 001): seeded inputs, autograd references, and the calls that
report what a student's code did to leaf tensors.

The network is tutorial 001's two layers, each a matrix product, a bias and a sigmoid, on
the same seeded networks as nn_from_scratch.
"""

import torch
import torch.nn.functional as F

from ..diagnosis import Finding, KnownMistake
from ..parts import Assignment, Case, Part, StudentError, refusing, unpack
from ..tolerances import ONE_OPERATION, ONE_STEP
from .nn_from_scratch import loss_function, reference_forward, seeded_networks

_NETWORK = ("X", "y", "w1", "b1", "w2", "b2")
_PREPARED = ("X", "w1", "b1", "w2", "b2")
_PARAMETERS = ("w1", "b1", "w2", "b2")


def _output(X, w1, b1, w2, b2):
    return reference_forward(X, w1, b1, w2, b2)["output"]


def _sum_of_squares(output, y):
    return loss_function(y, output)


def _gradients(loss_of, X, y, w1, b1, w2, b2):
    leaves = [p.detach().clone().requires_grad_() for p in (w1, b1, w2, b2)]
    return torch.autograd.grad(loss_of(_output(X, *leaves), y), leaves)


# ---- how the student's functions are called (untrusted side) -----------------------------

# The flags as torch's C type defines them (immutable, taken before any student code runs):
# a student's subclass is refused by `unpack`, and a patched torch.Tensor property is not read.
_REQUIRES_GRAD = torch._C.TensorBase.__dict__["requires_grad"].__get__
_IS_LEAF = torch._C.TensorBase.__dict__["is_leaf"].__get__


def with_autograd_flags(function, X, w1, b1, w2, b2, *, readers=(_REQUIRES_GRAD, _IS_LEAF)):
    """Call prepare(...) and report, as 0/1 tensors, which results require grad and are
    leaves (read with the readers bound when this module loaded)."""
    result = function(X, w1, b1, w2, b2)
    unpack("prepare", result, _PREPARED)  # a clear StudentError when it is not 5 tensors
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


# ---- references --------------------------------------------------------------------------

def reference_prepare(X, w1, b1, w2, b2):
    """The values do not change; `_prepared_flags` checks the flags."""
    return dict(zip(_PREPARED, (X, w1, b1, w2, b2), strict=True))


def _prepared_flags(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    for name, requires, leaf in zip(_PREPARED, outputs["requires_grad"], outputs["is_leaf"],
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


def reference_grad_fn(z):
    z = z.clone().requires_grad_()
    a = torch.sigmoid(z)
    (local,) = torch.autograd.grad(a.sum(), z)
    return {"a": a.detach(), "local_gradient": local}


def reference_losses(X, y, w1, b1, w2, b2):
    """0.5 * sum of squares and nn.MSELoss, their gradients for w2, and mse / sum = 2 / N."""
    output = _output(X, w1, b1, w2, b2)
    sum_grad = _gradients(_sum_of_squares, X, y, w1, b1, w2, b2)[2]
    mse_grad = _gradients(lambda o, t: F.mse_loss(o, t), X, y, w1, b1, w2, b2)[2]
    return {"sum_loss": loss_function(y, output), "mse_loss": F.mse_loss(output, y),
            "sum_grad_w2": sum_grad, "mse_grad_w2": mse_grad,
            "scale": torch.tensor(2 / y.numel(), dtype=torch.float64)}


def reference_accumulate(X, y, w1, b1, w2, b2):
    """w1.grad after one backward(), after a second one (twice as much), after zeroing and one."""
    grad = _gradients(_sum_of_squares, X, y, w1, b1, w2, b2)[0]
    return {"after_one": grad, "after_two": 2 * grad, "after_zeroing": grad}


def reference_step(w1, b1, w2, b2, X, y, learning_rate):
    """One SGD step on nn.MSELoss: p - learning_rate * grad."""
    grads = _gradients(lambda o, t: F.mse_loss(o, t), X, y, w1, b1, w2, b2)
    return {name: p - learning_rate * g
            for name, p, g in zip(_PARAMETERS, (w1, b1, w2, b2), grads, strict=True)}


def reference_softmax_cross_entropy(logits, labels):
    leaf = logits.clone().requires_grad_()
    loss = F.cross_entropy(leaf, labels)
    (grad,) = torch.autograd.grad(loss, leaf)
    return {"probabilities": torch.softmax(logits, dim=1), "loss": loss.detach(),
            "logits_grad": grad}


# ---- known mistakes: the wrong answers the diagnosis recognises -------------------------

def _without_zeroing(reference, args):
    """.grad not zeroed before the third backward(): it holds three gradients."""
    yield {"after_zeroing": 3 * reference(*args.values())["after_one"]}


def _cleared_between(reference, args):
    """after_two holding one gradient: .grad cleared between the first two backward() calls,
    or w1.grad returned itself (not a copy) and then zeroed and refilled by the third."""
    yield {"after_two": reference(*args.values())["after_one"]}


def _mean_over_batch(reference, args):
    """N taken as the batch size where nn.MSELoss divides by every entry of y."""
    y = args["y"]
    if y.numel() != y.shape[0]:
        expected = reference(*args.values())
        batch_mean = expected["sum_loss"] * 2 / y.shape[0]
        yield {"scale": torch.tensor(2 / y.shape[0], dtype=y.dtype)}
        yield {"mse_loss": batch_mean}


def _naive_softmax(logits):
    return logits.exp() / logits.exp().sum(dim=1, keepdim=True)


def _softmax_over(dim):
    def softmax(logits):
        exps = (logits - logits.max(dim=1, keepdim=True).values).exp()
        return exps / (exps.sum() if dim is None else exps.sum(dim=dim, keepdim=True))
    return softmax


def _probabilities(softmax):
    return lambda _reference, args: [{"probabilities": softmax(args["logits"])}]


def _cross_entropy_of_probabilities(_reference, args):
    probabilities = torch.softmax(args["logits"], dim=1)
    yield {"loss": F.cross_entropy(probabilities, args["labels"])}


_SOFTMAX_MISTAKES = (
    KnownMistake("softmax_overflow", "exp overflowed to inf in the rows with large logits, and "
                                     "inf / inf is NaN: subtract each row's maximum before "
                                     "torch.exp (the result is the same, without overflow).",
                 _probabilities(_naive_softmax)),
    KnownMistake("softmax_wrong_axis", "The probabilities were normalised over the wrong axis: "
                                       "each row (one example) must sum to 1, so sum over the "
                                       "classes, exps.sum(dim=1, keepdim=True).",
                 lambda _reference, args: [{"probabilities": _softmax_over(dim)(args["logits"])}
                                           for dim in (None, 0)]),
    KnownMistake("probabilities_to_cross_entropy", "That is the cross-entropy of the "
                                                   "probabilities: nn.CrossEntropyLoss applies "
                                                   "the softmax itself, so give it the logits.",
                 _cross_entropy_of_probabilities),
)
_LOSSES_MISTAKES = (
    KnownMistake("batch_not_entries", "That divides by the batch size: nn.MSELoss averages over "
                                      "every entry of y, N = y.numel() (batch size times "
                                      "outputs).", _mean_over_batch),
)

_ACCUMULATE_MISTAKES = (
    KnownMistake("missing_zero_grad", "It holds three gradients: .grad was not zeroed before "
                                      "the third backward() (w1.grad.zero_() or w1.grad = "
                                      "None).", _without_zeroing),
    KnownMistake("accumulation_lost", "It is one gradient, not two: either .grad was cleared "
                                      "between the first two backward() calls, which should "
                                      "add up, or the results are all w1.grad itself, which "
                                      "later calls change. Return copies: w1.grad.clone().",
                 _cleared_between),
)


# ---- cases -------------------------------------------------------------------------------

def _networks(kind, seed):
    """(label, {name: tensor}) for nn_from_scratch's seeded networks of this kind."""
    return [(label, dict(zip(_NETWORK, network, strict=True)))
            for label, network in seeded_networks(kind, seed)]


def _network_cases(names):
    def make_cases(kind, seed):
        return [Case(label, {name: network[name] for name in names})
                for label, network in _networks(kind, seed)]
    return make_cases


def _grad_fn_cases(kind, seed):
    shapes = [(3, 4)] if kind == "visible" else [(5, 2), (2, 6)]
    return [Case(f"z of shape {shape}" if kind == "visible" else f"a hidden case (z of shape "
                 f"{shape})", {"z": 3 * torch.randn(*shape, generator=torch.Generator()
                                                    .manual_seed(seed + i), dtype=torch.float64)})
            for i, shape in enumerate(shapes)]


def _step_cases(kind, seed):
    rates = [0.5, 0.1, 2.0] if kind == "visible" else [0.3, 1.0, 0.05, 0.2]
    return [Case(f"{label}, learning rate {rate}",
                 {**{name: network[name] for name in (*_PARAMETERS, "X", "y")},
                  "learning_rate": rate})
            for (label, network), rate in zip(_networks(kind, seed), rates, strict=True)]


# (batch, classes, large): with `large`, every second row of logits is shifted by 750, where
# exp overflows float64: a softmax that does not subtract the row maximum gives NaN there.
_VISIBLE_CLASSIFICATION = [(4, 3, False), (5, 4, True)]
_HIDDEN_CLASSIFICATION = [(6, 5, False), (3, 2, True)]
_LARGE_LOGITS = 750.0


def _classification_cases(kind, seed):
    sizes = _VISIBLE_CLASSIFICATION if kind == "visible" else _HIDDEN_CLASSIFICATION
    cases = []
    for index, (batch, classes, large) in enumerate(sizes):
        g = torch.Generator().manual_seed(seed + index)
        logits = 2 * torch.randn(batch, classes, generator=g, dtype=torch.float64)
        labels = torch.randint(classes, (batch,), generator=g)
        label = f"a batch of {batch}, {classes} classes"
        if large:
            logits += _LARGE_LOGITS * (torch.arange(batch) % 2).to(logits.dtype)[:, None]
            label += f", logits near {_LARGE_LOGITS:.0f} in every second row"
        cases.append(Case(label if kind == "visible" else f"a hidden case ({label})",
                          {"logits": logits, "labels": labels}))
    return cases


# What these parts teach by hand, or by calling a grad_fn, a built-in would do for them.
_BY_THE_NODE = refusing(
    frozenset({"mul", "__mul__", "__rmul__", "mul_", "sub", "__sub__", "__rsub__", "rsub",
               "sub_", "pow", "__pow__", "__rpow__", "square", "div", "__truediv__",
               "__rtruediv__", "true_divide", "addcmul", "neg", "__neg__", "sigmoid_backward",
               "backward", "grad"}),
    "call the node instead: a.grad_fn(torch.ones_like(a)) is the local gradient. This part is "
    "about reading it from the graph, not computing a * (1 - a) or calling backward().")
_SOFTMAX_BY_HAND = refusing(
    frozenset({"softmax", "log_softmax", "_softmax", "special_softmax", "special_log_softmax"}),
    "write the softmax by hand, with torch.exp of the logits minus each row's maximum.")

_STEP = {"returns": _PARAMETERS, "make_cases": _step_cases, "reference": reference_step,
         "tolerance": ONE_STEP, "deltas": {name: name for name in _PARAMETERS},
         "call": step_on_leaves}

ASSIGNMENT = Assignment("autograd_basics", (
    Part("requires_grad", "prepare", points=1, returns=(_PREPARED, "requires_grad", "is_leaf"),
         make_cases=_network_cases(_PREPARED), reference=reference_prepare,
         tolerance=ONE_OPERATION, call=with_autograd_flags, extra_check=_prepared_flags),
    Part("grad_fn", "sigmoid_local_gradient", points=1, returns=("a", "local_gradient"),
         make_cases=_grad_fn_cases, reference=reference_grad_fn, tolerance=ONE_OPERATION,
         call=_BY_THE_NODE),
    Part("losses", "sum_and_mean_losses", points=2,
         returns=("sum_loss", "mse_loss", "sum_grad_w2", "mse_grad_w2", "scale"),
         make_cases=_network_cases(("X", "y", *_PARAMETERS)), reference=reference_losses,
         tolerance=ONE_STEP, leaves_from="prepare", mistakes=_LOSSES_MISTAKES),
    Part("accumulate", "grads_over_two_backward_calls", points=2,
         returns=("after_one", "after_two", "after_zeroing"),
         make_cases=_network_cases(("X", "y", *_PARAMETERS)), reference=reference_accumulate,
         tolerance=ONE_STEP, builds_on=("forward",), mistakes=_ACCUMULATE_MISTAKES,
         leaves_from="prepare"),
    Part("sgd_step", "sgd_step", points=2, builds_on=("forward",), **_STEP),
    Part("manual_step", "manual_step", points=2, builds_on=("forward",), **_STEP),
    Part("softmax_cross_entropy", "softmax_cross_entropy", points=2,
         returns=("probabilities", "loss", "logits_grad"), make_cases=_classification_cases,
         reference=reference_softmax_cross_entropy, tolerance=ONE_STEP,
         mistakes=_SOFTMAX_MISTAKES, call=_SOFTMAX_BY_HAND),
))
