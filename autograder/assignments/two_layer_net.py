"""A two-layer ReLU network without bias, gradients by hand (tutorial 002, after
jcjohnson/pytorch-examples), on whichever device is present: seeded inputs, autograd
references, and the timing of the vectorized ReLU gradient.

The loss is jcjohnson's sum((y_pred - y)**2), without a 1/2.
"""

import functools
import time
import weakref

import torch

from ..diagnosis import LOSS_AFTER_UPDATE, Finding, KnownMistake, rate_mistakes
from ..parts import Assignment, Case, Part, StudentError
from ..python_loops import UNREADABLE, loops_of
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


# The vectorized ReLU gradient must be this many times as fast as the tutorial's loop, and
# this many times as fast as the fastest Python loop over the entries (a comprehension over
# `.tolist()`): per-entry Python work anywhere, in a helper too, cannot reach that.
REQUIRED_SPEEDUP = 20
OVER_ANY_PYTHON_LOOP = 3
# The timed inputs: large enough that per-entry Python work costs milliseconds (one
# vectorized call costs about 0.1 ms here, the fastest Python loop about 10 ms).
TIMED_SHAPE = (256, 256)  # the visible check's; the hidden ones are of another shape
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
    """Every timed call's result is checked; `_fast_enough` judges the CPU time."""
    return reference_relu_grad(h)


# ---- the source of a function, and the timing ---------------------------------------------

def python_loops(function) -> int:
    """How many loops, comprehensions and per-entry calls the source of function (and of
    the helpers it calls) contains."""
    loops = loops_of(function)
    if loops is None:
        raise StudentError(f"the source of {getattr(function, '__name__', 'the function')} "
                           f"cannot be read: define it with `def` in a notebook cell.")
    return loops


def timed_call(function, h):
    """(the student's gradient of h, the CPU seconds the call took, the Python loops in its
    source); the first call of a function is preceded by a warm-up call on zeros.

    In the notebook's own check this process measures itself. The sandboxed engine gives
    these inputs only when the fork server starts its clock, and replaces both numbers with
    its own: the CPU time measured from outside (`forkserver`) and the loops it finds in the
    notebook's source (`python_loops`). Student code reaches neither."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # idle worker threads spin, and that time is not the code's
    try:
        if function not in _WARM:
            function(torch.zeros_like(h))
            _WARM.add(function)
        start = time.thread_time()
        grad = function(h)
        if h.is_cuda:
            torch.cuda.synchronize()
        seconds = time.thread_time() - start
    finally:
        torch.set_num_threads(threads)
    return (grad, torch.tensor(seconds, dtype=torch.float64),
            torch.tensor(float(python_loops(function)), dtype=torch.float64))


_WARM = weakref.WeakSet()


def _cpu_seconds(run, repeats: int) -> float:
    """The least CPU time of `repeats` runs of run() in this thread."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        run()
        best = min(best, time.thread_time() - start)
    return best


@functools.cache
def python_loop_seconds(shape: tuple[int, ...]) -> float:
    """CPU seconds of the fastest Python loop over a tensor of this shape: a comprehension
    over `.tolist()`, measured in this (trusted) process, once."""
    h = pre_activations(0, shape).cpu()
    return _cpu_seconds(lambda: torch.tensor(
        [1.0 if v > 0 else 0.0 for v in h.reshape(-1).tolist()], dtype=h.dtype), repeats=3)


@functools.cache
def tutorial_loop_seconds_per_entry() -> float:
    """CPU seconds of the tutorial's loop per entry, measured here once on 1600 entries."""
    h = pre_activations(0, (32, 50)).cpu()
    return _cpu_seconds(lambda: tutorial_relu_grad_loop(h), repeats=2) / h.numel()


def _speedups(case: Case, outputs: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(times as fast as the tutorial's loop, times as fast as the fastest Python loop)."""
    h = case.args["h"]
    seconds = max(outputs["cpu_seconds"].item(), 1e-9)
    return (tutorial_loop_seconds_per_entry() * h.numel() / seconds,
            python_loop_seconds(tuple(h.shape)) / seconds)


def _measured_speed(case: Case, outputs: dict[str, torch.Tensor]) -> str:
    over_tutorial, over_python = _speedups(case, outputs)
    return (f"It ran {over_tutorial:.0f} times as fast as the tutorial's loop and "
            f"{over_python:.1f} times as fast as a plain Python loop over the entries.")


def _fast_enough(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    if outputs["python_loops"].item() == UNREADABLE:
        return Finding("the grader cannot read relu_grad_vectorized in the notebook's source: "
                       "define it with `def` at the top of a cell, and do not rebind its name "
                       "or build code with exec.", "python_loop")
    if outputs["python_loops"].item() > 0:
        return Finding("relu_grad_vectorized still loops in Python (a for or while loop, a "
                       "comprehension, or a call that runs Python for each entry: map, apply_, "
                       "tolist, item), in itself or in a helper it calls: express it as one "
                       "operation on the whole tensor.", "python_loop")
    over_tutorial, over_python = _speedups(case, outputs)
    if over_tutorial >= REQUIRED_SPEEDUP and over_python >= OVER_ANY_PYTHON_LOOP:
        return None
    return Finding(f"it ran {over_tutorial:.0f} times as fast as the tutorial's loop but only "
                   f"{over_python:.1f} times as fast as a plain Python loop over the entries; "
                   f"vectorized code is at least {OVER_ANY_PYTHON_LOOP} times as fast as any "
                   f"Python loop (and {REQUIRED_SPEEDUP} times the tutorial's). Avoid "
                   f"per-entry Python work (a loop, a comprehension, map, apply_, .tolist(), "
                   f".item()), in a helper too.", "too_slow")


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


def with_python_loops(function, h):
    """(relu_grad_loop's result, the Python loops in its source). The sandboxed engine
    replaces the count with the one it reads in the notebook's source (`python_loops`)."""
    result = function(h)
    return result, torch.tensor(float(python_loops(function)), dtype=torch.float64)


def _one_entry_at_a_time(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """Part 1 teaches the loop that Part 5 times the vectorized code against."""
    if outputs["python_loops"].item() == UNREADABLE:
        return Finding("the grader cannot read relu_grad_loop in the notebook's source: define "
                       "it with `def` at the top of a cell, and do not rebind its name or "
                       "build code with exec.", "route_not_taught")
    if outputs["python_loops"].item() == 0:
        return Finding("relu_grad_loop has no Python loop: this part asks for the tutorial's "
                       "first version, one entry at a time (Part 2 is the vectorized one).",
                       "route_not_taught")
    return None


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
    """Fresh timed inputs, one per call; the hidden check times other values again."""
    count, shape = (1, TIMED_SHAPE) if kind == "visible" else (TIMED_CALLS, HIDDEN_TIMED_SHAPE)
    return [Case(_hidden(kind, f"h of shape {shape}, timed"),
                 {"h": pre_activations(seed + i, shape)}) for i in range(count)]


ASSIGNMENT = Assignment("two_layer_net", (
    Part("relu_grad_loop", "relu_grad_loop", points=1, returns=("relu_grad", "python_loops"),
         make_cases=_relu_cases, reference=reference_relu_grad, tolerance=EXACT,
         mistakes=(_SLOPE_AT_ZERO,), call=with_python_loops, extra_check=_one_entry_at_a_time),
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
    Part("speed", "relu_grad_vectorized", points=2, returns=("relu_grad", "cpu_seconds", "python_loops"),
         make_cases=_speed_cases, reference=reference_speed, tolerance=EXACT,
         call=timed_call, timed=True, extra_check=_fast_enough, passed_note=_measured_speed,
         mistakes=(_SLOPE_AT_ZERO,)),
))
