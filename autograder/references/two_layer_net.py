"""A two-layer ReLU network without bias, gradients by hand (tutorial 002, after
jcjohnson/pytorch-examples), on whichever device is present: seeded inputs, autograd
references and known mistakes (grader only; `autograder.kit.assignment_parts.two_layer_net` says
how each part is called and judged, the timing included).

The loss is jcjohnson's sum((y_pred - y)**2), without a 1/2.
"""

import torch

from ..kit.assignment_parts import two_layer_net as spec
from ..kit.assignment_parts.two_layer_net import TIMED_SHAPE
from ..kit.parts import Case
from ..known_mistakes import LOSS_AFTER_UPDATE, KnownMistake, rate_mistakes
from .graded import Grading, graded, remembered

chosen_device = spec.chosen_device
# The hidden timed inputs: another shape than the visible check's, timed several times.
HIDDEN_TIMED_SHAPE = (128, 512)
TIMED_CALLS = 3

# (batch, inputs, hidden, outputs): non-square and square weights, visible and hidden alike
# (a square weight transposed still has the right shape).
_VISIBLE_SIZES = [(16, 20, 10, 3), (6, 5, 5, 5)]
_HIDDEN_SIZES = [(8, 12, 6, 5), (24, 7, 9, 2), (10, 6, 6, 6)]
_VISIBLE_TRAINING = [(1e-3, 50), (3e-3, 25)]
_HIDDEN_TRAINING = [(5e-4, 80), (2e-3, 30), (1e-3, 40)]


def random_data(seed: int, batch: int, n_in: int, n_hidden: int, n_out: int):
    """Seeded float64 (x, y, w1, w2) on DEVICE, drawn as jcjohnson's example draws them."""
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(*shape, generator=g, dtype=torch.float64)
               for shape in ((batch, n_in), (batch, n_out), (n_in, n_hidden), (n_hidden, n_out))]
    return tuple(t.to(chosen_device()) for t in tensors)


def pre_activations(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Seeded float64 values on DEVICE, a fifth of them exactly 0 (where ReLU has no slope)."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(*shape, generator=g, dtype=torch.float64)
    values[torch.rand(*shape, generator=g) < 0.2] = 0.0
    return values.to(chosen_device())


# ---- references --------------------------------------------------------------------------

def reference_relu_grad(h):
    """d relu(h) / dh by autograd: 1 where h > 0, else 0 (PyTorch's choice at h == 0)."""
    leaf = h.clone().requires_grad_()
    (slope,) = torch.autograd.grad(torch.relu(leaf).sum(), leaf)
    return {"relu_grad": slope}


def _loss_and_gradients(x, y, w1, w2):
    leaves = [w.detach().clone().requires_grad_() for w in (w1, w2)]
    loss = ((torch.relu(x @ leaves[0]) @ leaves[1] - y) ** 2).sum()
    return loss.detach(), *torch.autograd.grad(loss, leaves)


def reference_backward(x, y, w1, w2):
    loss, grad_w1, grad_w2 = _loss_and_gradients(x, y, w1, w2)
    return {"loss": loss, "grad_w1": grad_w1, "grad_w2": grad_w2}


def reference_train(x, y, w1, w2, learning_rate, steps):
    losses = []
    for _ in range(steps):
        loss, grad_w1, grad_w2 = _loss_and_gradients(x, y, w1, w2)
        w1, w2 = w1 - learning_rate * grad_w1, w2 - learning_rate * grad_w2
        losses.append(loss)
    return {"losses": torch.stack(losses), "w1": w1, "w2": w2}


def reference_speed(h):
    """Every timed call's result is checked; the kit's `_fast_enough` judges the CPU time."""
    return reference_relu_grad(h)


# ---- known mistakes: the wrong answers the diagnosis recognises -------------------------

_SLOPE_AT_ZERO = KnownMistake(
    "relu_slope_at_zero", "It gives the slope 1 where h == 0, as the tutorial does (h >= 0). "
                          "PyTorch, and these checks, take ReLU's slope at 0 to be 0: use h > 0.",
    lambda _reference, args: [{"relu_grad": (args["h"] >= 0).to(args["h"].dtype)}])
# Learning rates a student may have written into the loop: the visible cases', and the
# tutorial's (jcjohnson's 1e-6).
_USUAL_RATES = (1e-3, 3e-3, 1e-6)


def _without_relu_slope(x, y, w1, w2):
    """backward with grad_h = grad_h_relu: the ReLU's slope left out."""
    h_relu = (x @ w1).clamp(min=0)
    grad_y_pred = 2 * (h_relu @ w2 - y)
    return {"loss": (grad_y_pred ** 2).sum() / 4, "grad_w1": x.T @ (grad_y_pred @ w2.T),
            "grad_w2": h_relu.T @ grad_y_pred}


def _slope_1_at_zero(x, y, w1, w2):
    """backward with ReLU's slope taken as 1 where h == 0 (h >= 0)."""
    h = x @ w1
    h_relu = h.clamp(min=0)
    grad_y_pred = 2 * (h_relu @ w2 - y)
    grad_h = (grad_y_pred @ w2.T) * (h >= 0).to(h.dtype)
    return {"loss": (grad_y_pred ** 2).sum() / 4, "grad_w1": x.T @ grad_h,
            "grad_w2": h_relu.T @ grad_y_pred}


def _trained_with(mistaken_backward):
    """A known mistake of train: the loop with this wrong backward, as train would run it."""
    def compute(_reference, args):
        x, y, w1, w2, learning_rate, steps = args.values()
        losses = []
        for _ in range(steps):
            step = mistaken_backward(x, y, w1, w2)
            w1, w2 = w1 - learning_rate * step["grad_w1"], w2 - learning_rate * step["grad_w2"]
            losses.append(step["loss"])
        yield {"losses": torch.stack(losses), "w1": w1, "w2": w2}
    return compute


_MASK_AT_ZERO_HINT = (
    "It takes ReLU's slope as 1 where h == 0: a mask h >= 0, or jcjohnson's grad_h[h < 0] = 0, "
    "which leaves those entries. The prose and autograd take it as 0 there: zero grad_h "
    "wherever h <= 0 (or multiply by relu_grad_vectorized(h)).")
_RELU_SLOPE_HINT = ("That is the gradient without the ReLU's slope: grad_h is grad_h_relu "
                    "times ReLU'(h), zero wherever h <= 0 (use relu_grad_vectorized(h)).")
_BACKWARD_MISTAKES = (KnownMistake("relu_factor_missing", _RELU_SLOPE_HINT,
                                   lambda _reference, args: [_without_relu_slope(
                                       *args.values())]),
                      KnownMistake("relu_slope_at_zero", _MASK_AT_ZERO_HINT,
                                   lambda _reference, args: [_slope_1_at_zero(
                                       *args.values())]))
_TRAIN_MISTAKES = (KnownMistake("relu_factor_missing", _RELU_SLOPE_HINT,
                                _trained_with(_without_relu_slope)),
                   KnownMistake("relu_slope_at_zero", _MASK_AT_ZERO_HINT,
                                _trained_with(_slope_1_at_zero)),
                   LOSS_AFTER_UPDATE, *rate_mistakes(_USUAL_RATES))


# ---- cases -------------------------------------------------------------------------------

def _hidden(kind: str, label: str) -> str:
    return label if kind == "visible" else f"a hidden case ({label})"


def _relu_cases(kind, seed):
    shapes = [(4, 5), (3, 2, 4)] if kind == "visible" else [(6, 3), (2, 7, 4)]
    return [Case(_hidden(kind, f"h of shape {shape}"), {"h": pre_activations(seed + i, shape)})
            for i, shape in enumerate(shapes)]


def _network_label(kind: str, sizes: tuple[int, int, int, int], more: str = "") -> str:
    batch, n_in, n_hidden, n_out = sizes
    return _hidden(kind, f"a batch of {batch}, a {n_in}-{n_hidden}-{n_out} network{more}")


def with_a_unit_at_zero(x, y, w1, w2):
    """(x, y, w1, w2) with the last hidden unit's weights 0: h = 0 there in every row, where
    the prose defines ReLU's slope (0, as autograd). Every part that runs the student's ReLU'
    has such a unit: a slope of 1 there moves its weights, where a right backward pass leaves
    them at 0 (the unit never learns)."""
    w1 = w1.clone()
    w1[:, -1] = 0.0
    return x, y, w1, w2


def _backward_cases(kind, seed):
    cases = []
    for index, size in enumerate(_VISIBLE_SIZES if kind == "visible" else _HIDDEN_SIZES):
        x, y, w1, w2 = with_a_unit_at_zero(*random_data(seed + index, *size))
        cases.append(Case(_network_label(kind, size, ", its last hidden unit at h = 0"),
                          {"x": x, "y": y, "w1": w1, "w2": w2}))
    return cases


# With randn weights, plain gradient descent at a fixed rate blows up on about 2 draws in
# 1000 of the 24-7-9-2 case: a large w1 makes the loss curve more sharply than the rate
# allows. Autograd's own loop overflows there too, so no answer could pass; such a draw is
# replaced by another draw of the same seed, and every other draw stays as it was.
_REDRAW_STRIDE = 1_000_003
_MAX_DRAWS = 100


def learnable_data(seed: int, sizes: tuple[int, int, int, int], learning_rate: float,
                   steps: int):
    """with_a_unit_at_zero(*random_data(seed, *sizes)), or if autograd's training loop does
    not bring the loss down on it, the first redraw on which it does (always the same one for
    a seed). The loop's result is remembered: it is the case's reference, which judging
    reads."""
    for draw in range(_MAX_DRAWS):
        data = with_a_unit_at_zero(*random_data(seed + draw * _REDRAW_STRIDE, *sizes))
        losses = remembered(reference_train, *data, learning_rate, steps)["losses"]
        if torch.isfinite(losses).all() and losses[-1] < losses[0]:
            return data
    raise RuntimeError(f"no draw of a {sizes} network that learns at rate {learning_rate}")


def _train_cases(kind, seed):
    sizes = _VISIBLE_SIZES if kind == "visible" else _HIDDEN_SIZES
    settings = _VISIBLE_TRAINING if kind == "visible" else _HIDDEN_TRAINING
    cases = []
    for index, (size, (rate, steps)) in enumerate(zip(sizes, settings, strict=True)):
        data = learnable_data(seed + index, size, rate, steps)
        label = _network_label(kind, size, ", its last hidden unit starting at h = 0")
        cases.append(Case(f"{label}, learning rate {rate}, {steps} steps",
                          {**dict(zip(("x", "y", "w1", "w2"), data, strict=True)),
                           "learning_rate": rate, "steps": steps}))
    return cases


def _speed_cases(kind, seed):
    """Fresh timed inputs, one per call; the hidden check times other values again."""
    count, shape = (1, TIMED_SHAPE) if kind == "visible" else (TIMED_CALLS, HIDDEN_TIMED_SHAPE)
    return [Case(_hidden(kind, f"h of shape {shape}, timed"),
                 {"h": pre_activations(seed + i, shape)}) for i in range(count)]


ASSIGNMENT = graded(spec.ASSIGNMENT, {
    "relu_grad_loop": Grading(_relu_cases, reference_relu_grad, (_SLOPE_AT_ZERO,)),
    "relu_grad_vectorized": Grading(_relu_cases, reference_relu_grad, (_SLOPE_AT_ZERO,)),
    "backward": Grading(_backward_cases, reference_backward, _BACKWARD_MISTAKES),
    "train": Grading(_train_cases, reference_train, _TRAIN_MISTAKES),
    "speed": Grading(_speed_cases, reference_speed, (_SLOPE_AT_ZERO,)),
})

EXAMPLES: dict = {}  # the notebook draws its own data, as jcjohnson's example does
