"""The 5-3-1 network from scratch (tutorial 003): how each part is called and judged."""

import torch

from ..datasets import accuracy
from ..diagnosis import Finding
from ..parts import Assignment, Case, Part
from ..routes import Route, follow
from ..tolerances import FINITE_DIFFERENCE, ONE_OPERATION, ONE_STEP, TRAINING

PARAMETERS = ("w1", "b1", "w2", "b2")
GRADIENTS = tuple(f"grad_{name}" for name in PARAMETERS)
_BIASES = frozenset({"b1", "b2"})
# The sigmoid is written by hand, from torch.exp and arithmetic: whatever built-in computes
# it (sigmoid, expit, logsigmoid, a softmax, tanh...) is what the check compares with.
SIGMOID_RETURNS = "sigmoid_activation(z)"
_BY_EXP = follow(Route("write the sigmoid by hand, from torch.exp and arithmetic: "
                       "1 / (1 + torch.exp(-z)). This part is about computing it, not "
                       "calling a built-in that does."), SIGMOID_RETURNS)


def _held_out(case: Case, outputs: dict[str, torch.Tensor]) -> tuple[float, float, float]:
    """The trained network's accuracy on the case's held-out points (overall, per class),
    computed here from the returned parameters: no student code runs."""
    X, y = case.truth["X_test"], case.truth["y_test"]
    w1, b1, w2, b2 = (outputs[name] for name in PARAMETERS)
    return accuracy(torch.sigmoid(torch.sigmoid(X @ w1 + b1) @ w2 + b2), y)


def _separates_the_classes(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """The boundary of the trained network puts each class's held-out points on its own
    side, at least as often as `min_accuracy`, where a case has held-out points. It runs
    after every output matched autograd's, so the parameters have the right layout."""
    if "X_test" not in case.truth:
        return None
    least = case.truth["min_accuracy"].item()
    overall, class_0, class_1 = _held_out(case, outputs)
    if min(class_0, class_1) < least:
        return Finding(f"on {len(case.truth['y_test'])} held-out points the trained network is "
                       f"right {overall:.0%} of the time (class 0: {class_0:.0%}, class 1: "
                       f"{class_1:.0%}), below the {least:.0%} per class that this training "
                       f"reaches: its boundary does not separate the two moons.", "not_learned")
    return None


def _accuracy_note(case: Case, outputs: dict[str, torch.Tensor]) -> str:
    """The held-out accuracy, for a run long enough to learn (one with held-out points)."""
    if "X_test" not in case.truth:
        return ""
    overall, class_0, class_1 = _held_out(case, outputs)
    return (f"On {len(case.truth['y_test'])} held-out points the trained network is right "
            f"{overall:.0%} of the time (class 0: {class_0:.0%}, class 1: {class_1:.0%}).")


ASSIGNMENT = Assignment("nn_from_scratch", (
    Part("sigmoid_activation", "sigmoid_activation", points=1, returns=SIGMOID_RETURNS,
         tolerance=ONE_OPERATION, call=_BY_EXP),
    Part("forward", "forward", points=2, returns=("z1", "a1", "z2", "output"),
         tolerance=ONE_OPERATION, builds_on=("sigmoid_activation",)),
    Part("sigmoid_delta", "sigmoid_delta", points=1, returns="sigmoid_delta(a)",
         tolerance=ONE_OPERATION, manual_backprop=True),
    Part("gradient_check", "numerical_gradients", points=2, returns=GRADIENTS,
         tolerance=FINITE_DIFFERENCE, builds_on=("forward",), manual_backprop=True),
    Part("train_step", "train_step", points=3, returns=PARAMETERS, tolerance=ONE_STEP,
         deltas={name: name for name in PARAMETERS}, builds_on=("forward", "sigmoid_delta"),
         manual_backprop=True, batch_sums=_BIASES),
    Part("train", "train", points=3, returns=("losses", PARAMETERS), tolerance=TRAINING,
         sequences=frozenset({"losses"}), builds_on=("train_step",), manual_backprop=True,
         batch_sums=_BIASES),
    Part("learn_2d", "fit", points=3, returns=("train_losses", "val_losses", PARAMETERS),
         tolerance=TRAINING, sequences=frozenset({"train_losses", "val_losses"}),
         builds_on=("train_step",), manual_backprop=True, batch_sums=_BIASES,
         extra_check=_separates_the_classes, passed_note=_accuracy_note),
))
