"""Every tolerance the grader uses, and why.

Students' functions receive float64 inputs and the references are computed by
torch.autograd in float64. A correct answer therefore differs from the reference only by
rounding: about 1e-16 relative per operation, times the few operations between input and
output. The tolerances below leave a wide margin above that, and stay far below the size
of any real mistake (a wrong sign or scale is an O(1) relative error, one epoch too many
in training is about 1e-3). A computation done in float32 by accident (errors near 1e-7)
fails them on purpose, and the message says so.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Passes when |got - expected| <= atol + rtol * |expected| for every element."""

    rtol: float
    atol: float


# Results that involve no rounding at all, such as a 0/1 mask: they must be identical.
EXACT = Tolerance(rtol=0.0, atol=0.0)

# A handful of elementwise operations or one small matrix product. The only loss of
# precision beyond rounding is a(1 - a) when a is close to 1: with a <= 1 - 1e-4 on our
# inputs, that costs at most 1e-12 relative.
ONE_OPERATION = Tolerance(rtol=1e-9, atol=1e-12)

# One forward and backward pass, or one parameter update. Summation order may differ
# from autograd's (a student may sum a batch in another order), which costs about
# n * 1e-16 relative for n terms. Deltas are compared, not the updated parameters, so a
# wrong update cannot hide behind the size of the parameter it is added to.
ONE_STEP = Tolerance(rtol=1e-8, atol=1e-12)

# A training loop of up to 500 epochs: each epoch re-uses the previous parameters, so
# rounding differences compound (observed below 1e-12 relative on our cases). A real
# mistake such as a wrong learning rate or epoch count moves the loss by more than 1e-4.
TRAINING = Tolerance(rtol=1e-7, atol=1e-10)

# A gradient by central differences, (L(p + h) - L(p - h)) / 2h, against autograd's. Its
# error is about h**2 / 6 * L''' (truncation) plus 1e-16 * L / h (rounding). The hidden cases
# use h = 1e-4 and 5e-4: over 4000 seeds a correct difference used at most 0.13 of this
# tolerance (at h = 1e-3 it had reached 1.5 times a tolerance 2x tighter, on 1 seed in
# 4500), and a one-sided difference, (L(p + h) - L(p)) / h, off by about h / 2 * L'', at least
# 3.8 times it on every h = 5e-4 case.
FINITE_DIFFERENCE = Tolerance(rtol=2e-5, atol=2e-7)

# A trained model against the map that generated its targets (not against the autograd
# reference, which uses TRAINING). Gradient descent approaches that map geometrically; the
# cases' learning rates and epoch counts bring the reference within 5e-5 of it (a test
# checks this on several seeds), and a model that did not learn is off by O(0.1).
LEARNED = Tolerance(rtol=1e-3, atol=1e-3)

# A known mistake recomputed by the grader against the student's result (see
# diagnosis.KnownMistake). A match only names the mistake; it never gives points. The
# grader's computation of a mistake may order its operations differently from the
# student's, and some mistakes make training oscillate (gradients that pile up), which
# grows rounding differences: observed up to 3e-7 relative over 400 epochs. Two different
# mistakes, or a mistake and a correct answer, differ by far more than 1e-5.
KNOWN_MISTAKE = Tolerance(rtol=1e-5, atol=1e-9)

# Where a difference looks like float32 (or float16) arithmetic rather than a wrong formula:
# the machine epsilon of each, the size of one rounding relative to the value rounded.
FLOAT32_EPSILON = 1.2e-7
FLOAT16_EPSILON = 9.8e-4
