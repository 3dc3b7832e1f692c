"""Autograd basics (tutorial 001): seeded inputs, autograd references and known mistakes
(grader only; `autograder.kit.assignment_parts.autograd_basics` says how each part is called,
and holds the calls that report what a student's code did to leaf tensors).

The network is tutorial 001's two layers, each a matrix product, a bias and a sigmoid, on
the same seeded networks as nn_from_scratch.
"""

import torch
import torch.nn.functional as F

from ..kit.assignment_parts import autograd_basics as spec
from ..kit.parts import Case
from ..known_mistakes import KnownMistake
from .graded import Grading, graded
from .nn_from_scratch import loss_function, random_network, reference_forward, seeded_networks

_NETWORK = ("X", "y", "w1", "b1", "w2", "b2")
_PREPARED = spec.PREPARED
_PARAMETERS = spec.PARAMETERS


def _output(X, w1, b1, w2, b2):
    return reference_forward(X, w1, b1, w2, b2)["output"]


def _sum_of_squares(output, y):
    return loss_function(y, output)


def _gradients(loss_of, X, y, w1, b1, w2, b2):
    leaves = [p.detach().clone().requires_grad_() for p in (w1, b1, w2, b2)]
    return torch.autograd.grad(loss_of(_output(X, *leaves), y), leaves)


# ---- references --------------------------------------------------------------------------

def reference_prepare(X, w1, b1, w2, b2):
    """The values do not change; the kit's `_prepared_flags` checks the flags."""
    return dict(zip(_PREPARED, (X, w1, b1, w2, b2), strict=True))


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


ASSIGNMENT = graded(spec.ASSIGNMENT, {
    "requires_grad": Grading(_network_cases(_PREPARED), reference_prepare),
    "grad_fn": Grading(_grad_fn_cases, reference_grad_fn),
    "losses": Grading(_network_cases(("X", "y", *_PARAMETERS)), reference_losses,
                      _LOSSES_MISTAKES),
    "accumulate": Grading(_network_cases(("X", "y", *_PARAMETERS)), reference_accumulate,
                          _ACCUMULATE_MISTAKES),
    "sgd_step": Grading(_step_cases, reference_step),
    "manual_step": Grading(_step_cases, reference_step),
    "softmax_cross_entropy": Grading(_classification_cases, reference_softmax_cross_entropy,
                                     _SOFTMAX_MISTAKES),
})

# The data the notebook's cells load with `example(name)`, shipped with the release.
EXAMPLES = {"network": lambda: dict(zip(_NETWORK, random_network(0, 4, 5, 3, 1), strict=True))}
