"""Compare one student tensor with its reference and say what is wrong in plain words.

Messages talk about shapes, dtypes, signs and scales, and how far off a result is (its
largest relative error). They never print expected values: for hidden cases those are
exactly what must stay hidden. Each finding names the mistake when a pattern shows it
(see `diagnosis`); each pattern states the evidence it needs, and without it the finding
says what is wrong and names nothing.
"""

import torch

from .diagnosis import RATIO_PRECISION, UNKNOWN_SCALES, Finding, Scales, name_ratio
from .tolerances import EXACT, FLOAT16_EPSILON, FLOAT32_EPSILON, Tolerance


def compare(what: str, got: torch.Tensor, expected: torch.Tensor, tol: Tolerance,
            scales: Scales = UNKNOWN_SCALES) -> Finding | None:
    """None when got matches expected within tol; otherwise what is wrong with it."""
    problem = layout_problem(what, got, expected, scales)
    if problem:
        return problem
    if matches(got, expected, tol):
        return None
    return value_finding(what, got, expected, scales, tol)


def value_finding(what: str, got: torch.Tensor, expected: torch.Tensor,
                  scales: Scales = UNKNOWN_SCALES, tol: Tolerance = EXACT) -> Finding:
    """What is wrong with got's values (its layout being right): how far off it is, and
    the mistake when a pattern shows it. tol: how far a right answer may be from expected
    (the part's tolerance), which a pattern allows too (a finite difference taken the wrong
    way round is minus the right one as closely as a right one is the right one)."""
    mistake, hint = _pattern(got, expected, scales, tol)
    plain = wrong_by(what, got, expected)
    return Finding(f"{plain}{hint}", mistake, plain=plain if mistake else None)


def wrong_by(what: str, got: torch.Tensor, expected: torch.Tensor) -> str:
    """"<what> is wrong (largest relative error e).", the start of a finding on values."""
    return f"{what} is wrong (largest relative error {relative_error(got, expected):.2g})."


def matches(got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> bool:
    """Whether got equals expected within tol (same shape, dtype and device assumed)."""
    return bool(torch.isclose(got, expected, rtol=tol.rtol, atol=tol.atol).all())


def layout_problem(what: str, got: torch.Tensor, expected: torch.Tensor,
                   scales: Scales = UNKNOWN_SCALES) -> Finding | None:
    """What is wrong with got's shape, dtype, device or finiteness, judged by expected."""
    if got.shape != expected.shape:
        return _shape_finding(what, got.shape, expected.shape, scales)
    if got.dtype != expected.dtype:
        return _dtype_finding(what, got, expected)
    if got.device != expected.device:
        return Finding(f"{what} is on {got.device}, but the inputs are on {expected.device}.",
                       "wrong_device")
    if not torch.isfinite(got).all():
        return Finding(f"{what} contains NaN or inf: look for a division by zero or an "
                       f"overflow.", "not_finite")
    return None


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest |got - expected| / max(|expected|, tiny), as a float."""
    return entry_errors(got, expected).max().item()


def entry_errors(got: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """|got - expected| / max(|expected|, tiny), entry by entry."""
    return (got - expected).abs() / expected.abs().clamp_min(1e-12)


def _dtype_finding(what: str, got: torch.Tensor, expected: torch.Tensor) -> Finding:
    message = f"{what} is {_dtype(got)}, but the inputs are {_dtype(expected)} and the result " \
              f"should be too."
    if got.dtype == torch.bool:
        return Finding(f"{message} A comparison (such as z > 0) gives booleans: convert them "
                       f"with .to(x.dtype).", "wrong_type")
    if got.dtype in (torch.float16, torch.bfloat16):
        return Finding(f"{message} Half precision keeps about 3 digits: keep the inputs' dtype.",
                       "float16")
    if got.dtype == torch.float32:
        return Finding(f"{message} A tensor made without dtype= (torch.zeros, torch.tensor) is "
                       f"float32 and lowers the precision.", "float32")
    return Finding(f"{message} Make it with dtype= the inputs' dtype.", "wrong_type")


def _shape_finding(what: str, got: torch.Size, expected: torch.Size,
                   scales: Scales) -> Finding:
    """Evidence: "transposed" when got is expected's shape with its two axes swapped; a sum
    over the wrong axis only in an output that is a sum over the batch (scales.batch_sum);
    otherwise the plain fact, "shape"."""
    message = f"{what} has shape {tuple(got)}, but should have shape {tuple(expected)}."
    if len(got) == 2 and tuple(got) == tuple(expected)[::-1]:
        return Finding(message + " It looks transposed: check the order of the factors in "
                                 "torch.mm.", "transposed")
    if not scales.batch_sum:
        return Finding(message, "shape")
    if len(expected) == 2 and len(got) == 2 and expected[0] == 1 and scales.batch \
            and scales.batch > 1 and got[0] == scales.batch and got[1] in (1, expected[1]):
        return Finding(message + " It has one row per example: a bias gradient is the sum over "
                                 "the batch, .sum(0, keepdim=True), one entry per unit.",
                       "bias_wrong_axis")
    if got.numel() == 1 and expected.numel() > 1:
        return Finding(message + " A .sum() over all entries collapsed it to one number.",
                       "summed_all_entries")
    return Finding(message, "shape")


def _pattern(got: torch.Tensor, expected: torch.Tensor, scales: Scales,
             tol: Tolerance) -> tuple[str | None, str]:
    """(mistake, hint): the kind of mistake, from got relative to expected, when the
    evidence for one holds; else (None, "")."""
    precision = max(RATIO_PRECISION, tol.rtol)
    ratio = _constant_ratio(got, expected, precision, tol.atol)
    if ratio is not None:
        return name_ratio(ratio, scales, int(got.numel()), precision)
    if _is_transpose(got, expected):
        return "transposed", " It equals the transpose of the right value: check the order " \
                             "in torch.mm."
    if scales.batch_sum and _all_equal(got) and not _all_equal(expected):
        return "summed_all_entries", (" All its entries are equal, but they should differ: a "
                                      ".sum() over all entries mixes the units together; sum "
                                      "over the batch only, .sum(0, keepdim=True).")
    if _rounded_like(got, expected, torch.float16, FLOAT16_EPSILON):
        return "float16", (" That is the precision of float16: some step of the computation "
                           "runs in half precision.")
    if _rounded_like(got, expected, torch.float32, FLOAT32_EPSILON):
        return "float32", (" That is the precision of float32: some step of the computation "
                           "runs in float32.")
    return None, ""


def _is_transpose(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """A square result equal to the transpose of a reference that is not symmetric."""
    return got.dim() == 2 and got.shape[0] == got.shape[1] > 1 \
        and torch.allclose(got, expected.T, rtol=1e-6, atol=1e-12) \
        and not torch.allclose(expected, expected.T, rtol=1e-6, atol=1e-12)


def _all_equal(tensor: torch.Tensor) -> bool:
    return tensor.numel() > 1 and torch.allclose(tensor, tensor.flatten()[0].expand_as(tensor))


def _rounded_like(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype,
                  epsilon: float) -> bool:
    """Whether got looks computed in `dtype`: every entry is a value of that dtype (a result
    converted back to float64 at the end), the reference's entries are not, and the error is
    of that dtype's rounding size, measured against the largest entry (rounding is relative to
    the size of the numbers a computation works with, not to each, possibly tiny, entry)."""
    if not _representable(got, dtype) or _representable(expected, dtype):
        return False
    error = (got - expected).abs().max() / expected.abs().max().clamp_min(1e-300)
    return epsilon / 64 < error < 100 * epsilon


def _representable(tensor: torch.Tensor, dtype: torch.dtype) -> bool:
    return bool((tensor.to(dtype).to(tensor.dtype) == tensor).all())


def _constant_ratio(got: torch.Tensor, expected: torch.Tensor, precision: float,
                    atol: float) -> float | None:
    """r when got is r times expected in every entry (r != 1), zeros included, within
    `precision` relative (and `atol` absolute: a right answer's own allowance); else None."""
    mask = expected.abs() > 1e-9
    if not mask.any():
        return None
    ratios = got[mask] / expected[mask]
    ratio = ratios.median().item()
    if abs(ratio - 1) < precision or (got[~mask].abs() > max(1e-9, atol * abs(ratio))).any():
        return None
    if not torch.isclose(got[mask], ratio * expected[mask], rtol=precision,
                         atol=atol * abs(ratio)).all():
        return None
    return ratio


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")
