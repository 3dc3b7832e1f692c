"""A two-layer ReLU network without bias, gradients by hand (tutorial 002): how each part
is called and judged, and the timing of the vectorized ReLU gradient. Its cases live on
whichever device is present (`DEVICE`)."""

import functools
import time
import weakref

import torch

from ..diagnosis import Finding
from ..parts import Assignment, Case, Part, StudentError, returning_new_tensors
from ..python_loops import UNREADABLE, loops_of
from ..tolerances import EXACT, ONE_STEP, TRAINING


@functools.cache
def chosen_device() -> torch.device:
    """The one place the device is chosen: the notebook (as `DEVICE`) and the cases use it.
    Chosen on first use, not on import: the sandbox's fork server imports this module, and a
    process that asked CUDA anything can no longer fork children that use it."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def __getattr__(name: str):
    if name == "DEVICE":
        return chosen_device()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The vectorized ReLU gradient must be this many times as fast as a loop of the tutorial's
# kind (one indexed read, one comparison and one indexed write per entry), and this many
# times as fast as the fastest Python loop over the entries (a comprehension over
# `.tolist()`). Per-entry Python work anywhere, in a helper too, measures 1 or less against
# that loop (numpy.vectorize 0.6, numpy.frompyfunc 0.9), each vectorized recipe of the prose
# 5 or more when graded with both cores busy (`bench/speed_margin.py`): a margin of 2 on
# either side of the bar.
REQUIRED_SPEEDUP = 20
OVER_ANY_PYTHON_LOOP = 2
# The timed inputs: large enough that per-entry Python work costs milliseconds (one
# vectorized call costs about 0.1 ms here, the fastest Python loop about 10 ms).
TIMED_SHAPE = (256, 256)  # the visible check's; the grader's hidden ones are its own


def python_loops(function) -> int:
    """How many loops, comprehensions and per-entry calls the source of function (and of
    the helpers it calls) contains."""
    loops = loops_of(function)
    if loops is None:
        raise StudentError(f"the source of {getattr(function, '__name__', 'the function')} "
                           f"cannot be read: define it with `def` in a notebook cell.")
    return loops


def timed_call(function, h):
    """(the student's gradient of h, a placeholder for the CPU seconds, the Python loops in
    its source). The first call of a function warms it up on zeros and reads its source,
    so that a timed call costs the call alone.

    The time is measured around the calls, the same way on both sides: in the notebook's
    check this process's CPU time over every call (`grading.timed_outcomes`); in the
    sandboxed engine the CPU time of the sandboxed process over the same calls, read by the
    fork server from outside, which also counts the loops in the notebook's source
    (`python_loops`) in place of this count. Student code reaches neither."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # idle worker threads spin, and that time is not the code's
    try:
        if function not in _LOOPS:
            function(torch.zeros_like(h))
            _LOOPS[function] = python_loops(function)
        grad = function(h)
        if h.is_cuda:
            torch.cuda.synchronize()
    finally:
        torch.set_num_threads(threads)
    return (grad, torch.tensor(float("nan"), dtype=torch.float64),
            torch.tensor(float(_LOOPS[function]), dtype=torch.float64))


_LOOPS = weakref.WeakKeyDictionary()  # each warmed-up function: the loops in its source


def _cpu_seconds(run, repeats: int) -> float:
    """The least CPU time of `repeats` runs of run() in this thread."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        run()
        best = min(best, time.thread_time() - start)
    return best


def _values(shape: tuple[int, ...]) -> torch.Tensor:
    """Float64 values of this shape, half of them negative: what the baselines loop over."""
    count = 1
    for size in shape:
        count *= size
    return torch.linspace(-1, 1, count, dtype=torch.float64).reshape(shape)


def _loop_of_the_tutorials_kind(h: torch.Tensor) -> torch.Tensor:
    """A loop with the tutorial's cost per entry (an indexed read, a comparison, an indexed
    write) that computes something else: the sign bit, 1 where h < 0."""
    out = torch.zeros_like(h)
    flat, result = h.reshape(-1), out.view(-1)
    for i in range(flat.numel()):
        result[i] = 1.0 if flat[i] < 0 else 0.0
    return out


@functools.cache
def python_loop_seconds(shape: tuple[int, ...]) -> float:
    """CPU seconds of the fastest Python loop over a tensor of this shape: a comprehension
    over `.tolist()`, measured in this process, once."""
    h = _values(shape)
    return _cpu_seconds(lambda: torch.tensor(
        [1.0 if v < 0 else 0.0 for v in h.reshape(-1).tolist()], dtype=h.dtype), repeats=3)


@functools.cache
def tutorial_loop_seconds_per_entry() -> float:
    """CPU seconds per entry of a loop of the tutorial's kind, measured here once on 1600
    entries."""
    h = _values((32, 50))
    return _cpu_seconds(lambda: _loop_of_the_tutorials_kind(h), repeats=2) / h.numel()


def speedups(case: Case, outputs: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(times as fast as the tutorial's loop, times as fast as the fastest Python loop)."""
    h = case.args["h"]
    seconds = max(outputs["cpu_seconds"].item(), 1e-9)
    return (tutorial_loop_seconds_per_entry() * h.numel() / seconds,
            python_loop_seconds(tuple(h.shape)) / seconds)


def _measured_speed(case: Case, outputs: dict[str, torch.Tensor]) -> str:
    over_tutorial, over_python = speedups(case, outputs)
    margin = min(over_tutorial / REQUIRED_SPEEDUP, over_python / OVER_ANY_PYTHON_LOOP)
    return (f"It ran {over_tutorial:.0f} times as fast as the tutorial's loop and "
            f"{over_python:.1f} times as fast as a plain Python loop over the entries: "
            f"{margin:.1f} times what the part asks ({REQUIRED_SPEEDUP} and "
            f"{OVER_ANY_PYTHON_LOOP} times).")


def _no_python_loop(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """Part 2's prose (and the speed part's) forbids every Python loop, read in the source."""
    if outputs["python_loops"].item() == UNREADABLE:
        return Finding("the grader cannot read relu_grad_vectorized in the notebook's source: "
                       "define it with `def` at the top of a cell, and do not rebind its name "
                       "or build code with exec.", "python_loop")
    if outputs["python_loops"].item() > 0:
        return Finding("relu_grad_vectorized still loops in Python (a for or while loop, a "
                       "comprehension, or a call that runs Python for each entry: map, apply_, "
                       "tolist, item), in itself or in a helper it calls: express it as one "
                       "operation on the whole tensor.", "python_loop")
    return None


def _fast_enough(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    looped = _no_python_loop(case, outputs)
    if looped:
        return looped
    over_tutorial, over_python = speedups(case, outputs)
    if over_tutorial >= REQUIRED_SPEEDUP and over_python >= OVER_ANY_PYTHON_LOOP:
        return None
    return Finding(f"it ran {over_tutorial:.0f} times as fast as the tutorial's loop and "
                   f"{over_python:.1f} times as fast as a plain Python loop over the entries; "
                   f"the part asks at least {REQUIRED_SPEEDUP} and {OVER_ANY_PYTHON_LOOP} "
                   f"times, which vectorized code reaches with room to spare. Avoid "
                   f"per-entry Python work (a loop, a comprehension, map, apply_, .tolist(), "
                   f".item()), in a helper too.", "too_slow")


def with_python_loops(function, h):
    """(the function's result, the Python loops in its source). The sandboxed engine
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


ASSIGNMENT = Assignment("two_layer_net", returning_new_tensors(
    Part("relu_grad_loop", "relu_grad_loop", points=1, returns=("relu_grad", "python_loops"),
         tolerance=EXACT, call=with_python_loops, extra_check=_one_entry_at_a_time),
    Part("relu_grad_vectorized", "relu_grad_vectorized", points=1,
         returns=("relu_grad", "python_loops"), tolerance=EXACT, call=with_python_loops,
         extra_check=_no_python_loop),
    Part("backward", "backward", points=3, returns=("loss", "grad_w1", "grad_w2"),
         tolerance=ONE_STEP, builds_on=("relu_grad_vectorized",), manual_backprop=True),
    Part("train", "train", points=2, returns=("losses", "w1", "w2"), tolerance=TRAINING,
         sequences=frozenset({"losses"}), builds_on=("backward",), manual_backprop=True),
    Part("speed", "relu_grad_vectorized", points=2,
         returns=("relu_grad", "cpu_seconds", "python_loops"), tolerance=EXACT,
         call=timed_call, timed=True, extra_check=_fast_enough, passed_note=_measured_speed),
), on_device=True)
