"""Compare one student tensor with its reference and say what is wrong in plain words.

Messages talk about shapes, dtypes, signs and scales. They never print expected values:
for hidden cases those are exactly what must stay hidden.
"""

import torch

from .tolerances import FLOAT32_EPSILON, Tolerance


def compare(what: str, got: torch.Tensor, expected: torch.Tensor, tol: Tolerance) -> str | None:
    """None when got matches expected within tol; otherwise a sentence about the mistake."""
    problem = layout_problem(what, got, expected)
    if problem:
        return problem
    if torch.isclose(got, expected, rtol=tol.rtol, atol=tol.atol).all():
        return None
    error = relative_error(got, expected)
    return f"{what} is wrong (largest relative error {error:.2g}).{_hint(got, expected)}"


def layout_problem(what: str, got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """What is wrong with got's shape, dtype, device or finiteness, judged by expected."""
    if got.shape != expected.shape:
        return _shape_message(what, got.shape, expected.shape)
    if got.dtype != expected.dtype:
        return (f"{what} is {_dtype(got)}, but the inputs are {_dtype(expected)} and the result "
                f"should be too. A tensor made without dtype= (torch.zeros, torch.tensor) "
                f"is float32 and lowers the precision.")
    if got.device != expected.device:
        return f"{what} is on {got.device}, but the inputs are on {expected.device}."
    if not torch.isfinite(got).all():
        return f"{what} contains NaN or inf: look for a division by zero or an overflow."
    return None


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest |got - expected| / max(|expected|, tiny), as a float."""
    scale = expected.abs().clamp_min(1e-12)
    return ((got - expected).abs() / scale).max().item()


def _shape_message(what: str, got: torch.Size, expected: torch.Size) -> str:
    message = f"{what} has shape {tuple(got)}, but should have shape {tuple(expected)}."
    if len(got) == 2 and tuple(got) == tuple(expected)[::-1]:
        message += " It looks transposed: check the order of the factors in torch.mm."
    elif got.numel() == 1 and expected.numel() > 1:
        message += " A .sum() over all entries collapsed it to one number."
    elif got.numel() < expected.numel():
        message += " Did a sum run over the wrong axis?"
    return message


def _hint(got: torch.Tensor, expected: torch.Tensor) -> str:
    """A guess at the kind of mistake, from patterns in got relative to expected."""
    if torch.allclose(got, -expected, rtol=1e-6, atol=1e-12):
        return " It has the opposite sign: check the sign of the error term or of the update."
    ratio = _constant_ratio(got, expected)
    if ratio is not None:
        return f" Every entry is about {ratio:.3g} times the right value: check the scale."
    if got.dim() == 2 and got.shape[0] == got.shape[1] and \
            torch.allclose(got, expected.T, rtol=1e-6, atol=1e-12):
        return " It equals the transpose of the right value: check the order in torch.mm."
    if expected.numel() > 1 and torch.allclose(got, got.flatten()[0].expand_as(got)) and \
            not torch.allclose(expected, expected.flatten()[0].expand_as(expected)):
        return (" All its entries are equal, but they should differ: a .sum() over all "
                "entries mixes the units together.")
    if relative_error(got, expected) < 100 * FLOAT32_EPSILON:
        return " That is the precision of float32: some step of the computation runs in float32."
    return ""


def _constant_ratio(got: torch.Tensor, expected: torch.Tensor) -> float | None:
    mask = expected.abs() > 1e-9
    if not mask.any():
        return None
    ratios = got[mask] / expected[mask]
    ratio = ratios.median().item()
    if abs(ratio - 1) < 1e-6 or not torch.allclose(ratios, torch.full_like(ratios, ratio),
                                                   rtol=1e-6):
        return None
    return ratio


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")
