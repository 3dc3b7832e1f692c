"""A two-layer ReLU network without bias, gradients by hand (tutorial 002, after
jcjohnson/pytorch-examples), on whichever device is present: seeded inputs, autograd
references, and the timing of the vectorized ReLU gradient.

The loss is jcjohnson's sum((y_pred - y)**2), without a 1/2.
"""

import ast
import functools
import inspect
import textwrap
import time

import torch

from ..diagnosis import LOSS_AFTER_UPDATE, Finding, KnownMistake, rate_mistakes
from ..parts import Assignment, Case, Part, StudentError
from ..tolerances import EXACT, ONE_STEP, TRAINING


@functools.cache
def chosen_device() -> torch.device:
    """The one place the device is chosen: the notebook (as `DEVICE`), its cases and its
    references use it. Chosen on first use, not on import: the sandbox's fork server imports
    this module, and a process that asked CUDA anything can no longer fork children that use
    it."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def __getattr__(name: str):
    if name == "DEVICE":
        return chosen_device()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The vectorized ReLU gradient must be this many times faster than the Python loop.
REQUIRED_SPEEDUP = 20
# The timed input: large enough that the loop takes milliseconds (about 1600 Python-level
# steps) while one vectorized call takes microseconds, so the honest ratio is in the
# hundreds even on two busy cores; small enough that the check costs a few tens of ms.
TIMED_SHAPE = (32, 50)

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


def tutorial_relu_grad_loop(h: torch.Tensor) -> torch.Tensor:
    """The tutorial's loop, element by element (with the slope 0 at h == 0): the baseline
    the vectorized version is timed against."""
    grad = torch.zeros_like(h)
    flat, out = h.reshape(-1), grad.view(-1)
    for i in range(flat.numel()):
        out[i] = 1.0 if flat[i] > 0 else 0.0
    return grad


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
    """Nothing to compare: `_fast_and_loop_free` judges the measurement."""
    return {}


# ---- the timing (untrusted side) ---------------------------------------------------------

_PYTHON_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
                 ast.GeneratorExp)
# Calls that run Python once per entry, a loop in all but name: map(f, ...), h.apply_(f),
# h.tolist() or h.item() (numbers one by one), numpy.vectorize(f).
_PER_ENTRY_CALLS = frozenset({"map", "filter", "apply_", "map_", "map2_", "tolist", "item",
                              "vectorize"})


def python_loops(function) -> int:
    """How many loops, comprehensions and per-entry calls the source of function contains."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise StudentError("the source of relu_grad_vectorized cannot be read: define it with "
                           "`def` in a notebook cell.") from None
    return sum(isinstance(node, _PYTHON_LOOPS) or _calls_per_entry(node)
               for node in ast.walk(ast.parse(source)))


def _calls_per_entry(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    called = node.func
    name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", None)
    return name in _PER_ENTRY_CALLS


# Bound when this module loads, before any student code runs: a notebook that replaces
# time.perf_counter cannot change the clock the speed check reads.
_CLOCK = time.perf_counter


def _best_time(run, repeats: int) -> float:
    """The fastest of `repeats` runs, in seconds: the least disturbed by other processes."""
    best = float("inf")
    for _ in range(repeats):
        start = _CLOCK()
        run()
        if chosen_device().type == "cuda":
            torch.cuda.synchronize()
        best = min(best, _CLOCK() - start)
    return best


def time_against_loop(function, h):
    """Report (speedup over the tutorial's loop, number of Python loops in the source)."""
    loops = python_loops(function)
    function(h)  # a warm-up call: first calls pay for lazy initialisation
    fast = _best_time(lambda: function(h), repeats=20)
    slow = _best_time(lambda: tutorial_relu_grad_loop(h), repeats=2)
    return (torch.tensor(slow / max(fast, 1e-9), dtype=torch.float64),
            torch.tensor(float(loops), dtype=torch.float64))


def _fast_and_loop_free(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    if outputs["python_loops"].item() > 0:
        return Finding("relu_grad_vectorized still loops in Python (a for or while loop, a "
                       "comprehension, or a call that runs Python for each entry: map, apply_, "
                       "tolist, item): express it as one operation on the whole tensor.",
                       "python_loop")
    speedup = outputs["speedup"].item()
    if speedup < REQUIRED_SPEEDUP:
        return Finding(f"it is {speedup:.1f} times as fast as the loop; vectorized code should "
                       f"be at least {REQUIRED_SPEEDUP} times as fast. Avoid per-element Python "
                       f"work (.item(), .tolist(), map, a helper that loops).", "too_slow")
    return None


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


def _trained_without_relu_slope(x, y, w1, w2, learning_rate, steps):
    losses = []
    for _ in range(steps):
        step = _without_relu_slope(x, y, w1, w2)
        w1, w2 = w1 - learning_rate * step["grad_w1"], w2 - learning_rate * step["grad_w2"]
        losses.append(step["loss"])
    return {"losses": torch.stack(losses), "w1": w1, "w2": w2}


_RELU_SLOPE_HINT = ("That is the gradient without the ReLU's slope: grad_h is grad_h_relu "
                    "times ReLU'(h), zero wherever h <= 0 (use relu_grad_vectorized(h)).")
_BACKWARD_MISTAKES = (KnownMistake("relu_factor_missing", _RELU_SLOPE_HINT,
                                   lambda _reference, args: [_without_relu_slope(
                                       *args.values())]),)
_TRAIN_MISTAKES = (KnownMistake("relu_factor_missing", _RELU_SLOPE_HINT,
                                lambda _reference, args: [_trained_without_relu_slope(
                                    *args.values())]),
                   LOSS_AFTER_UPDATE, *rate_mistakes(_USUAL_RATES))


def _one_entry_at_a_time(function, h):
    """Call relu_grad_loop; refuse it when its source has no Python loop (Part 1 teaches the
    loop that Part 5 times the vectorized code against)."""
    result = function(h)
    if python_loops(function) == 0:
        raise StudentError("relu_grad_loop has no Python loop: this part asks for the "
                           "tutorial's first version, one entry at a time (Part 2 is the "
                           "vectorized one).", "route_not_taught")
    return result


# ---- cases -------------------------------------------------------------------------------

def _hidden(kind: str, label: str) -> str:
    return label if kind == "visible" else f"a hidden case ({label})"


def _relu_cases(kind, seed):
    shapes = [(4, 5), (3, 2, 4)] if kind == "visible" else [(6, 3), (2, 7, 4)]
    return [Case(_hidden(kind, f"h of shape {shape}"), {"h": pre_activations(seed + i, shape)})
            for i, shape in enumerate(shapes)]


def _network_label(kind: str, sizes: tuple[int, int, int, int]) -> str:
    batch, n_in, n_hidden, n_out = sizes
    return _hidden(kind, f"a batch of {batch}, a {n_in}-{n_hidden}-{n_out} network")


def _networks(kind, seed):
    sizes = _VISIBLE_SIZES if kind == "visible" else _HIDDEN_SIZES
    return [(_network_label(kind, size), random_data(seed + index, *size))
            for index, size in enumerate(sizes)]


def _backward_cases(kind, seed):
    return [Case(label, dict(zip(("x", "y", "w1", "w2"), data, strict=True)))
            for label, data in _networks(kind, seed)]


# With randn weights, plain gradient descent at a fixed rate blows up on about 2 draws in
# 1000 of the 24-7-9-2 case: a large w1 makes the loss curve more sharply than the rate
# allows. Autograd's own loop overflows there too, so no answer could pass; such a draw is
# replaced by another draw of the same seed, and every other draw stays as it was.
_REDRAW_STRIDE = 1_000_003
_MAX_DRAWS = 100


def learnable_data(seed: int, sizes: tuple[int, int, int, int], learning_rate: float,
                   steps: int):
    """random_data(seed, *sizes), or if autograd's training loop does not bring the loss
    down on it, the first redraw on which it does (always the same one for a seed)."""
    for draw in range(_MAX_DRAWS):
        data = random_data(seed + draw * _REDRAW_STRIDE, *sizes)
        losses = reference_train(*data, learning_rate, steps)["losses"]
        if torch.isfinite(losses).all() and losses[-1] < losses[0]:
            return data
    raise RuntimeError(f"no draw of a {sizes} network that learns at rate {learning_rate}")


def _train_cases(kind, seed):
    sizes = _VISIBLE_SIZES if kind == "visible" else _HIDDEN_SIZES
    settings = _VISIBLE_TRAINING if kind == "visible" else _HIDDEN_TRAINING
    cases = []
    for index, (size, (rate, steps)) in enumerate(zip(sizes, settings, strict=True)):
        data = learnable_data(seed + index, size, rate, steps)
        cases.append(Case(f"{_network_label(kind, size)}, learning rate {rate}, {steps} steps",
                          {**dict(zip(("x", "y", "w1", "w2"), data, strict=True)),
                           "learning_rate": rate, "steps": steps}))
    return cases


def _speed_cases(kind, seed):
    """One timed input; the hidden check times it again on fresh values."""
    count = 1 if kind == "visible" else 2
    shape = TIMED_SHAPE if kind == "visible" else TIMED_SHAPE[::-1]
    return [Case(_hidden(kind, f"h of shape {shape}, timed"),
                 {"h": pre_activations(seed + i, shape)}) for i in range(count)]


ASSIGNMENT = Assignment("two_layer_net", (
    Part("relu_grad_loop", "relu_grad_loop", points=1, returns="relu_grad",
         make_cases=_relu_cases, reference=reference_relu_grad, tolerance=EXACT,
         mistakes=(_SLOPE_AT_ZERO,), call=_one_entry_at_a_time),
    Part("relu_grad_vectorized", "relu_grad_vectorized", points=1, returns="relu_grad",
         make_cases=_relu_cases, reference=reference_relu_grad, tolerance=EXACT,
         mistakes=(_SLOPE_AT_ZERO,)),
    Part("backward", "backward", points=3, returns=("loss", "grad_w1", "grad_w2"),
         make_cases=_backward_cases, reference=reference_backward, tolerance=ONE_STEP,
         builds_on=("relu_grad_vectorized",), manual_backprop=True,
         mistakes=_BACKWARD_MISTAKES),
    Part("train", "train", points=2, returns=("losses", "w1", "w2"), make_cases=_train_cases,
         reference=reference_train, tolerance=TRAINING, sequences=frozenset({"losses"}),
         builds_on=("backward",), manual_backprop=True, mistakes=_TRAIN_MISTAKES),
    Part("speed", "relu_grad_vectorized", points=2, returns=("speedup", "python_loops"),
         make_cases=_speed_cases, reference=reference_speed, tolerance=EXACT,
         call=time_against_loop, extra_check=_fast_and_loop_free),
))
