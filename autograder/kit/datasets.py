"""Small data the notebooks make themselves, seeded (no download): the same arguments give
the same tensors in a student's kernel and in the grader."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .diagnosis import Finding


def two_moons(n: int, noise: float = 0.15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n points of two interleaving half circles, float64: X of shape (n, 2), centred and
    scaled to about unit spread, and labels y of shape (n, 1), 0.0 for the upper moon and
    1.0 for the lower one. The labels alternate, so every slice of the rows is balanced.
    No straight line separates the two classes; a hidden layer can."""
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % 2
    angle = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    upper = label == 0
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=g,
                                                          dtype=torch.float64)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    spread = torch.tensor([0.87, 0.5], dtype=torch.float64)
    return (points - centre) / spread, label.to(torch.float64).unsqueeze(1)


def random_parameters(n_in: int, n_hidden: int, n_out: int, seed: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded float64 (w1, b1, w2, b2) of a n_in-n_hidden-n_out network, drawn as the
    tutorial draws them (torch.randn), with the output bias at 0."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_in, n_hidden, generator=g, dtype=torch.float64),
            torch.randn(1, n_hidden, generator=g, dtype=torch.float64),
            torch.randn(n_hidden, n_out, generator=g, dtype=torch.float64),
            torch.zeros(1, n_out, dtype=torch.float64))


def accuracy(output: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """(overall, class 0, class 1): the fraction of points classified right when an output
    above 0.5 means class 1, over all points and over each class's points."""
    right = (output > 0.5) == (y > 0.5)
    per_class = [right[(y > 0.5) == label].double().mean().item() for label in (False, True)]
    return right.double().mean().item(), *per_class


@dataclass(frozen=True)
class HeldOut:
    """The check of a trained 2-H-1 classifier on a case's held-out points (`Case.truth`:
    X_test, y_test, min_accuracy), computed from the returned parameters (w1, b1, w2, b2):
    no student code runs. `hidden` is its hidden layer's activation; `why` ends the message
    of a boundary that does not separate the classes."""

    hidden: Callable[[torch.Tensor], torch.Tensor]
    why: str = ""

    def accuracy(self, truth, outputs: dict[str, torch.Tensor]) -> tuple[float, float, float]:
        """(overall, class 0, class 1) on the held-out points."""
        w1, b1, w2, b2 = (outputs[name] for name in ("w1", "b1", "w2", "b2"))
        return accuracy(torch.sigmoid(self.hidden(truth["X_test"] @ w1 + b1) @ w2 + b2),
                        truth["y_test"])

    def check(self, case, outputs: dict[str, torch.Tensor]) -> Finding | None:
        """On a run long enough to learn (one with held-out points), each class's held-out
        points lie on their own side of the boundary at least `min_accuracy` of the time.
        It runs after every output matched autograd's: the parameters have the right
        layout."""
        if "X_test" not in case.truth:
            return None
        least = case.truth["min_accuracy"].item()
        overall, class_0, class_1 = self.accuracy(case.truth, outputs)
        if min(class_0, class_1) >= least:
            return None
        return Finding(f"on {len(case.truth['y_test'])} held-out points the trained network is "
                       f"right {overall:.0%} of the time (class 0: {class_0:.0%}, class 1: "
                       f"{class_1:.0%}), below the {least:.0%} per class that this training "
                       f"reaches{self.why}.", "not_learned")

    def note(self, case, outputs: dict[str, torch.Tensor]) -> str:
        """The held-out accuracy, for a run long enough to learn; "" for the others."""
        if "X_test" not in case.truth:
            return ""
        overall, class_0, class_1 = self.accuracy(case.truth, outputs)
        return (f"On {len(case.truth['y_test'])} held-out points the trained network is "
                f"right {overall:.0%} of the time (class 0: {class_0:.0%}, class 1: "
                f"{class_1:.0%}).")
