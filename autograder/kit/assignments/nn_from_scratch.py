"""The 5-3-1 network from scratch (tutorial 003): how each part is called and judged."""

from ..parts import Assignment, Part, refusing
from ..tolerances import ONE_OPERATION, ONE_STEP, TRAINING

PARAMETERS = ("w1", "b1", "w2", "b2")
_BIASES = frozenset({"b1", "b2"})
# The sigmoid is written with torch.exp: the built-ins are what the check compares with.
_BY_EXP = refusing(frozenset({"sigmoid", "sigmoid_", "special_expit", "expit"}),
                   "write the sigmoid with torch.exp, 1 / (1 + torch.exp(-z)).")

ASSIGNMENT = Assignment("nn_from_scratch", (
    Part("sigmoid_activation", "sigmoid_activation", points=1, returns="sigmoid_activation(z)",
         tolerance=ONE_OPERATION, call=_BY_EXP),
    Part("forward", "forward", points=2, returns=("z1", "a1", "z2", "output"),
         tolerance=ONE_OPERATION, builds_on=("sigmoid_activation",)),
    Part("sigmoid_delta", "sigmoid_delta", points=1, returns="sigmoid_delta(a)",
         tolerance=ONE_OPERATION, manual_backprop=True),
    Part("train_step", "train_step", points=3, returns=PARAMETERS, tolerance=ONE_STEP,
         deltas={name: name for name in PARAMETERS}, builds_on=("forward", "sigmoid_delta"),
         manual_backprop=True, batch_sums=_BIASES),
    Part("train", "train", points=3, returns=("losses", PARAMETERS), tolerance=TRAINING,
         sequences=frozenset({"losses"}), builds_on=("train_step",), manual_backprop=True,
         batch_sums=_BIASES),
))
