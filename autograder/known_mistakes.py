"""The wrong answers the grader computes: a mistake's outputs on a case, for the diagnosis.

Grader only. The student kit gets, for the visible cases, these outputs as data
(`visible_data`), never the code that computes them: many are one step from the answer.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from .kit import diagnosis as kit
from .kit.diagnosis import Scales


@dataclass(frozen=True, eq=False)
class KnownMistake:
    """A wrong answer the grader computes on a case, in the trusted process.

    compute(reference, args) yields the outputs this mistake can produce on the case (a
    family of mistakes yields several, a mistake that cannot show on this case none).
    `reference` is the part's reference function, `args` the case's arguments."""

    mistake: str
    hint: str
    compute: Callable[[Callable, dict], Iterable[dict[str, torch.Tensor]]]
    scaled: frozenset[str] = frozenset()  # as in kit.diagnosis.KnownMistake
    first_epochs: int | None = None

    def recognised(self) -> kit.KnownMistake:
        """What the kit needs to recognise this mistake: all but how to compute it."""
        return kit.KnownMistake(self.mistake, self.hint, self.scaled, self.first_epochs)


LOSSES = frozenset({"losses"})


def rate_mistakes(usual_rates: tuple[float, ...] = ()) -> tuple[KnownMistake, ...]:
    """The training loop run with another learning rate, for the mistakes that amount to
    one: a sign error is a negative rate, a factor of 2 in the gradient doubles it, a mean
    where the sum belongs divides it by N; a rate written into the loop replaces it.

    The losses are compared up to a constant factor: a mistake in the scale of the loss
    also scales the losses the student records."""
    def scaled(factor_of: Callable[[Scales], list[float]]):
        def compute(reference, args):
            scales = Scales.of(args)
            for rate in factor_of(scales):
                if abs(rate - scales.learning_rate) > 1e-12:
                    yield reference(*{**args, "learning_rate": rate}.values())
        return compute

    def explained(mistake: str):
        return lambda s: [s.learning_rate * r for r, m, _ in s.explanations() if m == mistake]

    return (
        KnownMistake("sign", "The loss goes up: the updates climb the gradient instead of "
                             "descending it. Check the sign of the error term or of the update.",
                     scaled(lambda s: [-s.learning_rate]), LOSSES),
        KnownMistake("wrong_learning_rate", "It trained with a learning rate fixed in the code, "
                                            "not the learning_rate argument.",
                     scaled(lambda s: list(usual_rates)), LOSSES),
        KnownMistake("factor_of_2", "It trained as if the gradient were twice (or half) what it "
                                    "is: look for the 2 of the square's derivative, or the 1/2 "
                                    "of the loss.", scaled(explained("factor_of_2")), LOSSES),
        KnownMistake("mean_vs_sum", "It trained as if the gradient were scaled by the batch "
                                    "size: a mean where a sum belongs, or the other way round.",
                     scaled(explained("mean_vs_sum")), LOSSES),
        KnownMistake("learning_rate_scale", "It trained as if the learning rate were missing "
                                            "from the update, or applied twice.",
                     scaled(explained("learning_rate_scale")), LOSSES),
    )


def _loss_after_update(reference, args):
    """The loss histories of epochs 2 .. n+1: each loss recorded after its epoch's update
    (every 1-D output with one entry per epoch is a history)."""
    key = next((name for name in ("epochs", "steps") if name in args), None)
    if key is not None:
        longer = reference(*{**args, key: args[key] + 1}.values())
        yield {name: value[1:] for name, value in longer.items()
               if value.dim() == 1 and len(value) == args[key] + 1}


LOSS_AFTER_UPDATE = KnownMistake(
    "loss_after_update", "Each loss was recorded after that epoch's update: record the loss of "
                         "the forward pass that the update starts from, before the update.",
    _loss_after_update)
