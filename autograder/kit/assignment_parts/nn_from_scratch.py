"""The 5-3-1 network from scratch (tutorial 003): how each part is called and judged."""

import torch

from ..datasets import HeldOut
from ..parts import Assignment, Part, returning_new_tensors
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


# The boundary the two-moons run draws, checked on held-out points.
_HELD_OUT = HeldOut(torch.sigmoid, ": its boundary does not separate the two moons")


ASSIGNMENT = Assignment("nn_from_scratch", returning_new_tensors(
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
         extra_check=_HELD_OUT.check, passed_note=_HELD_OUT.note),
))
