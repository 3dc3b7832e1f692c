"""One neuron, step by step (tutorial 000): seeded inputs, autograd references and known
mistakes (grader only; `autograder.kit.assignment_parts.single_neuron` says how each part is
called and judged).

Every model is trained on the mean squared error (`nn.MSELoss`) with plain gradient descent
(`optim.SGD`), in float64, from a starting weight the case gives. The targets come from a
known map (the case's `truth`), so the checks can also ask whether that map was learned.
"""

import torch
import torch.nn.functional as F

from ..kit.assignment_parts import single_neuron as spec
from ..kit.parts import Case
from ..known_mistakes import LOSS_AFTER_UPDATE, KnownMistake, rate_mistakes
from .graded import Grading, graded

# The one-input examples: (batch, learning rate, epochs) per case; the second case of each
# kind has negative inputs (where the dead start is a positive weight, not a negative one).
# Visible and hidden cases vary the same things: batch sizes, rates, epoch counts, signs.
_VISIBLE_LINEAR = [(8, 0.1, 60), (6, 0.15, 80)]
_HIDDEN_LINEAR = [(5, 0.2, 40), (12, 0.05, 150)]
# Neurons with a bias: (batch, inputs, negative slope, learning rate, epochs); slopes other
# than nn.LeakyReLU's default 0.01 in both kinds.
_VISIBLE_BIAS = [(10, 1, 0.01, 0.3, 400), (12, 1, 0.2, 0.4, 350)]
# Hidden runs are as short as learning allows (every submission pays for them twice): over
# 1000 seeds a correct run came within 5e-5 of the true map (20 times inside LEARNED) by
# epoch 50, 65, 140 and 75 at the latest; each runs about 1.6 times that or more.
_HIDDEN_BIAS = [(7, 1, 0.1, 0.4, 100), (16, 1, 0.05, 0.3, 120)]
_VISIBLE_SEVERAL = [(20, 3, 0.01, 0.3, 400), (18, 2, 0.1, 0.35, 350)]
_HIDDEN_SEVERAL = [(24, 3, 0.05, 0.3, 220), (30, 2, 0.1, 0.4, 120)]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_input_data(seed: int, batch: int, sign: float = 1.0):
    """Seeded float64 (x, y, true_weight): x of shape (batch, 1) with the given sign,
    y = x * true_weight with a true weight in (1, 3)."""
    g = _generator(seed)
    x = sign * (0.5 + 1.5 * torch.rand(batch, 1, generator=g, dtype=torch.float64))
    true_weight = 1 + 2 * torch.rand(1, 1, generator=g, dtype=torch.float64)
    return x, x @ true_weight.T, true_weight


def leaky_data(seed: int, batch: int, n_inputs: int, negative_slope: float):
    """Seeded float64 (x, y, true_weight, true_bias, start_weight, start_bias) for a Leaky
    ReLU neuron with a bias: y = leaky_relu(x @ true_weight.T + true_bias).

    x lies in (-1, 1) and the true map keeps x @ true_weight.T + true_bias above 0, so the
    map is learnable to any precision. The start has a negative bias: part of the data, or
    all of it, begins on the leaky side.
    """
    g = _generator(seed)

    def uniform(*shape, low, high):
        return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)

    # Stratified: one value in each of `batch` equal slices of (-1, 1), in a random order for
    # each input, so that the inputs are spread out for every seed. Inputs that happen to
    # cluster make the weight learn far more slowly than the bias (one seed in thousands
    # left it 2.6e-3 from the true map after 400 epochs).
    slices = torch.stack([torch.randperm(batch, generator=g) for _ in range(n_inputs)], dim=1)
    x = -1 + 2 * (slices + uniform(batch, n_inputs, low=0.0, high=1.0)) / batch
    true_weight = uniform(1, n_inputs, low=0.2, high=0.6)
    true_bias = uniform(1, low=2.5, high=3.0)
    y = F.leaky_relu(x @ true_weight.T + true_bias, negative_slope)
    start_weight = uniform(1, n_inputs, low=-0.5, high=0.5)
    return x, y, true_weight, true_bias, start_weight, uniform(1, low=-1.0, high=0.0)


def neuron(x, weight, bias, negative_slope):
    """The neuron's output leaky_relu(x @ weight.T + bias); slope 0 is ReLU, None is linear."""
    z = x @ weight.T + (0 if bias is None else bias)
    return z if negative_slope is None else F.leaky_relu(z, negative_slope)


def _trained(x, y, params, negative_slope, learning_rate, epochs, accumulate=False):
    """Gradient descent by autograd: the loss of each epoch (before its update) and the
    parameters after the last one. accumulate: the mistake of never clearing .grad, so
    that each step uses the sum of every gradient so far."""
    params = [p.clone() for p in params]
    totals = [torch.zeros_like(p) for p in params]
    losses = []
    for _ in range(epochs):
        leaves = [p.detach().requires_grad_() for p in params]
        loss = F.mse_loss(neuron(x, leaves[0], leaves[1] if len(leaves) > 1 else None,
                                 negative_slope), y)
        grads = torch.autograd.grad(loss, leaves)
        totals = [t + g if accumulate else g for t, g in zip(totals, grads, strict=True)]
        params = [p - learning_rate * g for p, g in zip(params, totals, strict=True)]
        losses.append(loss.detach())
    return torch.stack(losses), params


def _weight_gradient(x, y, weight, negative_slope):
    weight = weight.detach().clone().requires_grad_()
    loss = F.mse_loss(neuron(x, weight, None, negative_slope), y)
    return torch.autograd.grad(loss, weight)[0]


# ---- references -------------------------------------------------------------------------

def reference_train_linear(x, y, weight, learning_rate, epochs):
    losses, (trained,) = _trained(x, y, [weight], None, learning_rate, epochs)
    return {"losses": losses, "weight": trained}


def reference_relu_backprop(x, y, weight):
    """The chain-rule factors of dL/dw for L = mean((relu(x w^T) - y)**2), each by autograd."""
    z = (x @ weight.T).requires_grad_()
    output = torch.relu(z)
    (relu_slope,) = torch.autograd.grad(output.sum(), z)
    output = output.detach().requires_grad_()
    (d_loss_d_output,) = torch.autograd.grad(F.mse_loss(output, y), output)
    return {"d_loss_d_output": d_loss_d_output, "relu_slope": relu_slope,
            "weight_grad": _weight_gradient(x, y, weight, 0.0)}


def reference_dead_relu_start(x):
    """Nothing to compare: any dead start will do; the kit's `_is_dead_start` checks it."""
    return {}


def reference_leaky_relu_gradient(x, y, weight, negative_slope):
    return {"weight_grad": _weight_gradient(x, y, weight, negative_slope)}


def reference_train_neuron(x, y, weight, bias, negative_slope, learning_rate, epochs):
    losses, (w, b) = _trained(x, y, [weight, bias], negative_slope, learning_rate, epochs)
    return {"losses": losses, "weight": w, "bias": b}


# ---- known mistakes: the wrong answers the diagnosis recognises -------------------------

_ZERO_GRAD_HINT = ("Its gradients pile up: each step used the sum of every gradient so far, "
                   "because .grad was never cleared. Call optimizer.zero_grad() before "
                   "loss.backward() in every epoch.")
_NOT_LEAKY_HINT = ("That is the gradient of a plain ReLU neuron: it is zero wherever x * w < 0. "
                   "Use nn.LeakyReLU(negative_slope), whose slope there is negative_slope.")
_DEFAULT_SLOPE_HINT = ("That is a Leaky ReLU with slope 0.01, nn.LeakyReLU()'s default: pass "
                       "the negative_slope you are given, nn.LeakyReLU(negative_slope).")
# Learning rates a student may have written into the code: the visible cases'.
_USUAL_RATES = (0.1, 0.15, 0.3, 0.4, 0.35)
_DEFAULT_SLOPE = 0.01


def _without_zero_grad(_reference, args):
    names = [name for name in ("weight", "bias") if name in args]
    losses, params = _trained(args["x"], args["y"], [args[name] for name in names],
                              args.get("negative_slope"), args["learning_rate"],
                              args["epochs"], accumulate=True)
    yield {"losses": losses, **dict(zip(names, params, strict=True))}


def _as_relu(reference, args):
    yield reference(*{**args, "negative_slope": 0.0}.values())


def _with_default_slope(reference, args):
    if args["negative_slope"] != _DEFAULT_SLOPE:
        yield reference(*{**args, "negative_slope": _DEFAULT_SLOPE}.values())


_SLOPE_MISTAKES = (KnownMistake("relu_not_leaky", _NOT_LEAKY_HINT, _as_relu),
                   KnownMistake("default_negative_slope", _DEFAULT_SLOPE_HINT,
                                _with_default_slope))


# Gradients that pile up make training oscillate, and rounding differences between two
# correct computations of it grow without bound after about 150 epochs: the first 100
# losses tell it apart (observed equal to 1e-13 there).
_TRAINING_MISTAKES = (KnownMistake("missing_zero_grad", _ZERO_GRAD_HINT, _without_zero_grad,
                                   first_epochs=100),
                      LOSS_AFTER_UPDATE, *rate_mistakes(_USUAL_RATES))


# ---- cases ------------------------------------------------------------------------------

def _hidden(kind: str, label: str) -> str:
    return label if kind == "visible" else f"a hidden case ({label})"


def _sign(index: int) -> float:
    """Positive inputs in the first case of each kind, negative ones in the second."""
    return -1.0 if index % 2 else 1.0


def _start(seed: int) -> torch.Tensor:
    """A starting weight in (-1, 1), drawn apart from the data."""
    return 2 * torch.rand(1, 1, generator=_generator(seed + 1000), dtype=torch.float64) - 1


def _linear_cases(kind, seed):
    settings = _VISIBLE_LINEAR if kind == "visible" else _HIDDEN_LINEAR
    cases = []
    for index, (batch, rate, epochs) in enumerate(settings):
        x, y, true_weight = one_input_data(seed + index, batch, _sign(index))
        cases.append(Case(_hidden(kind, f"{batch} examples, learning rate {rate}, "
                                        f"{epochs} epochs"),
                          {"x": x, "y": y, "weight": _start(seed + index),
                           "learning_rate": rate, "epochs": epochs},
                          truth={"weight": true_weight}))
    return cases


def _gradient_starts(kind, seed):
    """(label, x, y, weight): for each data set, a live start and a dead one."""
    batches = [8, 6] if kind == "visible" else [5, 12]
    starts = []
    for index, batch in enumerate(batches):
        sign = _sign(index)
        x, y, _ = one_input_data(seed + index, batch, sign)
        live = _start(seed + index).abs() * sign
        for weight, where in ((live, "a live start"), (-live, "a dead start")):
            starts.append((_hidden(kind, f"{batch} examples, {where}"), x, y, weight))
    return starts


def _relu_backprop_cases(kind, seed):
    """The gradient starts, each with its last example at x = 0: there z = 0, where the
    prose defines ReLU's slope (0, as PyTorch)."""
    return [Case(label.replace(" examples,", " examples (the last at x = 0),"),
                 {"x": _last_at_zero(x), "y": _last_at_zero(y), "weight": weight})
            for label, x, y, weight in _gradient_starts(kind, seed)]


def _last_at_zero(tensor: torch.Tensor) -> torch.Tensor:
    """tensor with its last row exactly 0."""
    zeroed = tensor.clone()
    zeroed[-1] = 0.0
    return zeroed


def _dead_start_cases(kind, seed):
    return [Case(_hidden(kind, f"{batch} {'positive' if sign > 0 else 'negative'} inputs"),
                 {"x": one_input_data(seed + index, batch, sign)[0]})
            for index, (batch, sign) in enumerate(
                [(8, 1.0), (6, -1.0)] if kind == "visible" else [(5, -1.0), (12, 1.0)])]


def _leaky_cases(kind, seed):
    slopes = [0.01, 0.1, 0.25, 0.02] if kind == "visible" else [0.05, 0.2, 0.01, 0.3]
    return [Case(f"{label}, negative slope {slope}",
                 {"x": x, "y": y, "weight": weight, "negative_slope": slope})
            for (label, x, y, weight), slope in zip(_gradient_starts(kind, seed), slopes,
                                                    strict=True)]


def _neuron_cases(settings):
    def make_cases(kind, seed):
        cases = []
        for index, (batch, n_in, slope, rate, epochs) in enumerate(settings[kind]):
            x, y, true_w, true_b, w, b = leaky_data(seed + index, batch, n_in, slope)
            label = (f"{batch} examples with {n_in} input{'s' * (n_in > 1)}, negative slope "
                     f"{slope}, learning rate {rate}, {epochs} epochs")
            cases.append(Case(_hidden(kind, label),
                              {"x": x, "y": y, "weight": w, "bias": b, "negative_slope": slope,
                               "learning_rate": rate, "epochs": epochs},
                              truth={"weight": true_w, "bias": true_b}))
        return cases
    return make_cases


_RELU_SLOPE_AT_ZERO = KnownMistake(
    "relu_slope_at_zero", "It gives the slope 1 where z == 0 (z >= 0). The prose, and "
                          "PyTorch, take ReLU's slope at 0 to be 0: use z > 0.",
    lambda _reference, args: [{"relu_slope": (args["x"] @ args["weight"].T >= 0).to(
        args["x"].dtype)}])
_TRAINED_MISTAKES = (*_SLOPE_MISTAKES, *_TRAINING_MISTAKES)

ASSIGNMENT = graded(spec.ASSIGNMENT, {
    "linear": Grading(_linear_cases, reference_train_linear, _TRAINING_MISTAKES),
    "relu_backprop": Grading(_relu_backprop_cases, reference_relu_backprop,
                             (_RELU_SLOPE_AT_ZERO,)),
    "dead_relu": Grading(_dead_start_cases, reference_dead_relu_start),
    "leaky_relu": Grading(_leaky_cases, reference_leaky_relu_gradient, _SLOPE_MISTAKES),
    "bias": Grading(_neuron_cases({"visible": _VISIBLE_BIAS, "hidden": _HIDDEN_BIAS}),
                    reference_train_neuron, _TRAINED_MISTAKES),
    "several_inputs": Grading(_neuron_cases({"visible": _VISIBLE_SEVERAL,
                                             "hidden": _HIDDEN_SEVERAL}),
                              reference_train_neuron, _TRAINED_MISTAKES),
})

# The data the notebook's cells load with `example(name)`, shipped with the release.
_LEAKY = ("x", "y", "true_weight", "true_bias", "start_weight", "start_bias")
EXAMPLES = {
    "one input": lambda: dict(zip(("x", "y", "true_weight"), one_input_data(0, 8), strict=True)),
    "leaky, one input": lambda: dict(zip(_LEAKY, leaky_data(0, 10, 1, 0.01), strict=True)),
    "leaky, three inputs": lambda: dict(zip(_LEAKY, leaky_data(0, 20, 3, 0.01), strict=True)),
}
