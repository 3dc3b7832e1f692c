"""What went wrong, by name: the mistakes the grader recognises, and how it recognises them.

A wrong result gets a `Finding`: a message for the student and, when the grader can tell,
the name of the mistake (a key of `MISTAKES`). The class report counts these names; the
tests hold a labelled corpus of wrong submissions to them.

Mistakes are recognised in three ways, most specific first:

1. `KnownMistake`: a wrong answer the grader computes itself, such as the training loop
   with the tutorial's `d_hidn.sum()`, or with the learning rate negated (gradient ascent).
   When the student's outputs equal it, the diagnosis is certain. (The kit gets these
   outputs for the visible cases as data; the grader computes them for the hidden ones.)
2. Patterns between the student's tensor and the reference (`compare.compare`): an opposite
   sign, a constant ratio (2, N, 2/N, the learning rate), a transpose, all entries equal.
3. The exception a function raised (`exception_finding`): a product of mismatched shapes
   that a transpose would fix, float32 meeting float64, autograd in a manual part.

Every rule states the evidence it needs and names nothing without it; when no rule holds,
the message says plainly what is wrong (which output, how far off) and guesses nothing.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Mistake:
    """One kind of mistake: how the class report names it, and whether it is a mistake in
    the maths (what the course teaches) or in code that does not run or cannot be read."""

    title: str
    maths: bool = True


MISTAKES: dict[str, Mistake] = {
    # Backprop and its updates.
    "sign": Mistake("opposite sign: the update climbs the gradient (or a difference is "
                    "reversed)"),
    "factor_of_2": Mistake("off by a factor of 2 (the 2 of the square, or the 1/2 of the loss)"),
    "mean_vs_sum": Mistake("mean and sum mixed up (a factor of N, 1/N or 2/N)"),
    "learning_rate_scale": Mistake("the learning rate missing from the update, or applied twice"),
    "transposed": Mistake("a transposed matrix"),
    "bias_wrong_axis": Mistake("a bias gradient summed over the wrong axis"),
    "summed_all_entries": Mistake("one sum over every unit (the tutorial's d_hidn.sum())"),
    "sigmoid_twice": Mistake("sigmoid_delta applies the sigmoid again to an activation"),
    "delta_of_z": Mistake("sigmoid_delta given z instead of the activation"),
    "relu_slope_at_zero": Mistake("ReLU's slope taken as 1 at 0"),
    "relu_not_leaky": Mistake("ReLU where Leaky ReLU was asked"),
    "default_negative_slope": Mistake("nn.LeakyReLU() with its default slope 0.01, not the "
                                      "negative_slope given"),
    "relu_factor_missing": Mistake("the ReLU's slope left out of the backward pass"),
    "batch_not_entries": Mistake("N taken as the batch size, where nn.MSELoss averages over "
                                 "every entry (batch x outputs)"),
    "softmax_wrong_axis": Mistake("softmax normalised over the wrong axis (all entries, or the "
                                  "batch)"),
    "softmax_overflow": Mistake("softmax without subtracting the row maximum: exp overflows"),
    "probabilities_to_cross_entropy": Mistake("probabilities given to nn.CrossEntropyLoss, "
                                              "which wants logits (softmax applied twice)"),
    "swapped_outputs": Mistake("results returned in the wrong order"),
    "changed_input": Mistake("an input changed in place (its values, or requires_grad), where "
                             "new tensors were asked"),
    "aliased_output": Mistake("a result that shares memory with an input"),
    # Training.
    "wrong_epochs": Mistake("the wrong number of epochs"),
    "loss_after_update": Mistake("the loss recorded after the update, not before it"),
    "wrong_learning_rate": Mistake("the wrong learning rate (a fixed one, not the argument)"),
    "not_learned": Mistake("the trained model did not learn the true map (or to separate the "
                           "classes)"),
    "last_batch_dropped": Mistake("the last, smaller mini-batch of each epoch left out"),
    "full_batch": Mistake("one step per epoch on the whole set where mini-batches were asked"),
    # Gradient checking.
    "one_sided_difference": Mistake("a one-sided difference where the central one was asked"),
    "perturbation_kept": Mistake("a perturbed entry not put back before the next difference"),
    "not_dead": Mistake("a 'dead' ReLU start that still learns"),
    # Autograd.
    "missing_zero_grad": Mistake("zero_grad missing: gradients pile up (2x, 3x)"),
    "accumulation_lost": Mistake("two backward calls that do not add up (.grad cleared, or "
                                 "not copied)"),
    "in_place_on_leaf": Mistake("an in-place update of a leaf outside torch.no_grad()"),
    "rebound_parameter": Mistake("gradients computed but the parameters not updated (p = p - "
                                 "... rebinds a name)"),
    "cleared_before_step": Mistake("gradients cleared between backward() and the update"),
    "requires_grad_on_input": Mistake("requires_grad on the input"),
    "missing_requires_grad": Mistake("a parameter that does not require grad"),
    "not_a_leaf": Mistake("a parameter that is not a leaf"),
    "autograd_used": Mistake("autograd used in a manual-backprop part"),
    "route_not_taught": Mistake("a built-in used where the part asks for it by hand"),
    # A reverse-mode engine by hand, and the loss of a classifier.
    "overwritten_gradient": Mistake("a gradient overwritten (=) where contributions add up "
                                    "(+=)"),
    "missing_chain_factor": Mistake("a local gradient not multiplied by the gradient flowing "
                                    "in (out.grad)"),
    "no_visited_set": Mistake("a graph walked without a visited set: a shared node's "
                              "backward runs once per path"),
    "wrong_order": Mistake("nodes' backward run in another order than reverse topological"),
    "mse_for_classification": Mistake("squared error where cross-entropy was asked"),
    "sigmoid_before_logits_loss": Mistake("a sigmoid given to BCEWithLogitsLoss, which "
                                          "applies its own"),
    # Numbers and speed.
    "float32": Mistake("float32 where float64 is expected"),
    "float16": Mistake("float16 or bfloat16 where float64 is expected"),
    "wrong_device": Mistake("a result on another device than the inputs"),
    "not_finite": Mistake("NaN or inf in the result"),
    "shape": Mistake("a result of the wrong shape"),
    "python_loop": Mistake("a Python loop in the vectorized code"),
    "too_slow": Mistake("vectorized code no faster than a Python loop over the entries"),
    # Code that does not run, or a notebook that cannot be read.
    "not_written": Mistake("not written yet", maths=False),
    "exception": Mistake("raises an exception", maths=False),
    "wrong_type": Mistake("returns the wrong type or number of values", maths=False),
    "missing_function": Mistake("function missing or renamed", maths=False),
    "stopped": Mistake("stopped the grading (time-out, crash, os._exit)", maths=False),
    "not_graded": Mistake("notebook not gradable (invalid, empty, tampered)", maths=False),
}


@dataclass(frozen=True)
class Finding:
    """What is wrong with a result: a message for the student, the mistake's name when it
    was recognised (a key of MISTAKES), and the output it was found in."""

    message: str
    mistake: str | None = None
    output: str | None = None
    # For a name read from a pattern between the result and the reference alone (a ratio, a
    # transpose): the message without it, for when a helper the part calls is wrong too,
    # which can make the same pattern.
    plain: str | None = None

    def __post_init__(self):
        if self.mistake is not None and self.mistake not in MISTAKES:
            raise ValueError(f"unknown mistake {self.mistake!r}")


def known_mistake(name: object) -> str | None:
    """name when it is a mistake of the vocabulary, else None (for names read from files)."""
    return name if isinstance(name, str) and name in MISTAKES else None


# ---- the scale of a case: what a constant ratio can be explained by ----------------------

@dataclass(frozen=True)
class Scales:
    """The sizes and rate of one case, to name a constant ratio (2/N, the learning rate)."""

    batch: int | None = None  # N: the examples in the batch (rows of the targets)
    entries: int | None = None  # the entries of the targets (N times the outputs)
    learning_rate: float | None = None
    # The output is a sum over the batch (a bias gradient), so a sum over the wrong axis, or
    # over every entry, can happen in it.
    batch_sum: bool = False

    @classmethod
    def of(cls, args: dict) -> "Scales":
        targets = next((args[name] for name in ("y", "labels") if name in args), None)
        rate = args.get("learning_rate")
        return cls(batch=targets.shape[0] if targets is not None and targets.dim() else None,
                   entries=targets.numel() if targets is not None else None,
                   learning_rate=float(rate) if isinstance(rate, (int, float)) else None)

    def explanations(self) -> Iterator[tuple[float, str, str]]:
        """(ratio, mistake, why) for every ratio these sizes explain, most likely first: a
        factor of 2 or N only where there are targets (a loss), the rate only where one is
        given."""
        if self.entries is not None:
            why = "look for the 2 of the square's derivative, or the 1/2 in front of the loss"
            yield 2.0, "factor_of_2", why
            yield 0.5, "factor_of_2", why
        for count, name in ((self.batch, "N, the batch size"),
                            (self.entries, "N, the number of target entries")):
            if count and count > 2:
                why = (f"with {name} = {count}, that is a mean where a sum belongs or the "
                       f"other way round (nn.MSELoss averages; a sum of squares does not)")
                for ratio in (count, 1 / count, 2 / count, count / 2):
                    yield ratio, "mean_vs_sum", why
        rate = self.learning_rate
        if rate and abs(rate - 1) > 1e-9:
            why = "that is the learning rate: it is applied twice, or it is missing"
            yield rate, "learning_rate_scale", why
            yield 1 / rate, "learning_rate_scale", why


UNKNOWN_SCALES = Scales()
# How closely a result must be a constant multiple of the reference to be called one (a
# part whose right answers may be further from the reference allows as much here).
RATIO_PRECISION = 1e-6


def name_ratio(ratio: float, scales: Scales, entries: int,
               precision: float = RATIO_PRECISION) -> tuple[str | None, str]:
    """(mistake, hint) for a result that is `ratio` times the reference in every one of its
    `entries` entries.

    Evidence: a ratio the case explains exactly (-1, 2, N, the learning rate), or with
    several entries a negative one (a sign error and a scale). With one entry any value is a
    ratio, so a single number is named only by an exact explanation. A ratio that two
    different mistakes explain (2 is also N/2 when N = 4) names neither; an unexplained ratio
    is stated as a fact (several entries) and named not at all: many different mistakes give
    one when the data are proportional to each other. A ratio near 0: the result is zero.
    `precision`: how closely the ratio was measured (relative)."""
    if abs(ratio) < precision:
        return None, " It is (almost) zero everywhere: did that computation or update run?"
    size = f"Every entry is about {ratio:.3g} times the right value"
    if abs(ratio + 1) < precision or (ratio < 0 and entries > 1):
        hint = (" It has the opposite sign: check the sign of the error term, of the update, "
                "or the order of a difference's two terms")
        if abs(abs(ratio) - 1) > precision:
            hint += f" (and its size: it is {abs(ratio):.3g} times as large)"
        return "sign", hint + "."
    named = dict.fromkeys((mistake, why) for candidate, mistake, why in scales.explanations()
                          if abs(ratio / candidate - 1) < precision)  # most likely first
    if len({mistake for mistake, _ in named}) == 1:
        mistake, why = next(iter(named))
        return mistake, f" {size}: {why}."
    if entries > 1 and not named:
        return None, f" {size}."
    return None, ""


# ---- known mistakes: wrong answers the grader computes ---------------------------------

@dataclass(frozen=True)
class KnownMistake:
    """A wrong answer the grader computes (in the trusted process, or once at release time for
    the visible cases): the outputs of a student who made this mistake.

    The kit holds only what it takes to recognise it: its name, the hint shown when the
    student's outputs equal it, and how to compare them."""

    mistake: str
    hint: str
    # Outputs compared up to a constant factor: a loss history, where the mistake also
    # scales the losses the student records (a sum where the mean belongs).
    scaled: frozenset[str] = frozenset()
    # Compare the first epochs of the loss history only, and nothing else: a mistake that
    # makes training unstable also makes rounding differences grow without bound.
    first_epochs: int | None = None


# ---- exceptions ----------------------------------------------------------------------------

_MATMUL = re.compile(r"shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")
_BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)")
_DEVICES = ("expected device", "same device")
_HALF = ("Half", "BFloat16")
_DTYPES = ("same dtype", "Double but found Float", "Float but found Double",
           "expected scalar type Double", "Double but found Half", "Half but found Double",
           "Double but found BFloat16", "BFloat16 but found Double")


def exception_finding(function: str, error: BaseException, args: dict,
                      operands: list[tuple[int, ...]] | None = None,
                      leaves_from: str | None = None) -> Finding:
    """The finding for a function that raised error on a case with these arguments.

    `operands`: the shapes of the tensors the failing operation was given, when known.
    `leaves_from`: the notebook's function that makes the leaves requiring grad, if any.
    Evidence: a product is "transposed" when transposing one factor makes the shapes fit (its
    message gives them); an elementwise clash is "transposed" only when its operands are
    known and transposing one of them makes them broadcast. A backward() that finds no
    tensor requiring grad names a parameter that does not require it only where a function
    of the notebook makes the parameters."""
    message = f"{function} raised {type(error).__name__}: {error}"
    text = str(error)
    matmul = _MATMUL.search(text)
    if matmul:
        a, b, c, d = map(int, matmul.groups())
        if b == d or a == c:
            factor = "second" if b == d else "first"
            return Finding(f"{message}. The {factor} factor of that product looks transposed: "
                           f"check the order of the factors and each .t().", "transposed")
        return Finding(f"{message}. Check the shapes of that product's factors.")
    if _BROADCAST.search(text):
        return _broadcast_finding(message, operands)
    if "does not require grad" in text:
        if leaves_from:
            return Finding(f"{message}. backward() found no tensor that requires grad: the "
                           f"parameters must be leaves made with requires_grad (see "
                           f"{leaves_from}).", "missing_requires_grad")
        return Finding(f"{message}. backward() found no tensor that requires grad: the loss "
                       f"was computed from tensors that carry no graph (look for .detach(), "
                       f".item(), torch.no_grad() or a new tensor made from values).")
    if any(marker in text for marker in _DEVICES):
        return Finding(f"{message}. Tensors on two devices met: make every tensor on the "
                       f"inputs' device (device=x.device, or .to(x.device)).", "wrong_device")
    if any(marker in text for marker in _DTYPES) and any(half in text for half in _HALF):
        return Finding(f"{message}. A float16 tensor met a float64 one: keep the inputs' "
                       f"dtype (dtype=x.dtype).", "float16")
    if any(marker in text for marker in _DTYPES):
        return Finding(f"{message}. A float32 tensor met a float64 one: make every tensor "
                       f"with dtype= the inputs' dtype (nn.Linear(..., dtype=x.dtype)).",
                       "float32")
    return Finding(message, "exception")


def _broadcast_finding(message: str, operands: list[tuple[int, ...]] | None) -> Finding:
    shapes = [shape for shape in operands or () if len(shape) == 2]
    if len(shapes) == 2:
        first, second = shapes
        shown = f"Shapes {first} and {second} were combined entry by entry"
        if _fits(first[::-1], second) or _fits(first, second[::-1]):
            return Finding(f"{message}. {shown}: one of them looks transposed (with the other "
                           f"one's axes in the other order they would fit): check the order "
                           f"of each product's factors and each .t().", "transposed")
        return Finding(f"{message}. {shown}, and they do not fit in any order: check each "
                       f"sum's axis and each product's shapes.")
    return Finding(f"{message}. Two tensors of different shapes were combined entry by entry: "
                   f"check each sum's axis and each product's shapes.")


def _fits(first: tuple[int, ...], second: tuple[int, ...]) -> bool:
    """Evidence of a transpose: these shapes broadcast to one of them. (16, 1) and (1, 4)
    also broadcast, to (16, 4), but that is an outer product no code meant (a bias with one
    row per example, say, that met a smaller batch)."""
    try:
        shape = tuple(torch.broadcast_shapes(first, second))
    except RuntimeError:
        return False
    return shape in (first, second)
