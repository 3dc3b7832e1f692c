"""Small data the notebooks make themselves, seeded (no download): the same arguments give
the same tensors in a student's kernel and in the grader."""

import math

import torch


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
