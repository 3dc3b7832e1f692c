"""One neuron, step by step (tutorial 000): how each part is called and judged.

The targets come from a known map (each case's `truth`), so the checks also ask whether
that map was learned."""

import torch

from ..compare import layout_problem
from ..diagnosis import Finding
from ..parts import Assignment, Case, Part, returning_new_tensors
from ..tolerances import LEARNED, ONE_STEP, TRAINING
from ..training import STEPS, cleared_before_step, recording_steps


def _learned_the_map(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """The trained parameters are within LEARNED of the map that made the targets."""
    for name, truth in case.truth.items():
        if not torch.isclose(outputs[name], truth, rtol=LEARNED.rtol, atol=LEARNED.atol).all():
            return Finding(f"the trained {name} is not close to the true map that generated "
                           f"y: train longer or check the learning rate.", "not_learned")
    return None


def _is_dead_start(case: Case, outputs: dict[str, torch.Tensor]) -> Finding | None:
    """The start is a finite weight where every pre-activation x * w is negative: ReLU's
    slope is 0 there, so dL/dw is exactly 0 and no step moves the weight."""
    x, weight = case.args["x"], outputs["weight"]
    problem = layout_problem("weight", weight, torch.zeros(1, 1, dtype=x.dtype))
    if problem:
        return problem
    if not torch.isfinite(weight).all():
        return Finding("the weight is not a finite number.", "not_dead")
    if (weight == 0).all():
        return Finding("a weight of 0 puts every pre-activation z = w * x exactly at 0, on "
                       "ReLU's kink: the gradient there is 0 only by PyTorch's convention for "
                       "the slope at 0, and the smallest nudge (a bias, another input) starts "
                       "the neuron learning again. A dead start has every z strictly below 0: "
                       "choose a nonzero weight against the sign of x.")
    if not (x @ weight.T < 0).all():
        return Finding("some inputs x give w * x >= 0 with this weight, so the ReLU passes "
                       "them on and the neuron still learns: choose the weight's sign against "
                       "the sign of x.", "not_dead")
    return None


def _training_part(function: str, returns: tuple[str, ...]) -> dict:
    """A training part: its outputs, then the optimizer's steps as `training` records them."""
    losses = frozenset({"losses"})
    return {"returns": (*returns, STEPS), "sequences": losses, "extra_check": _learned_the_map,
            "tolerance": TRAINING, "call": recording_steps(function, returns, losses),
            "explain": cleared_before_step}


_NEURON = ("losses", "weight", "bias")

ASSIGNMENT = Assignment("single_neuron", returning_new_tensors(
    Part("linear", "train_linear", points=2,
         **_training_part("train_linear", ("losses", "weight"))),
    Part("relu_backprop", "relu_backprop", points=2,
         returns=("d_loss_d_output", "relu_slope", "weight_grad"), tolerance=ONE_STEP),
    Part("dead_relu", "dead_relu_start", points=1, returns="weight", tolerance=ONE_STEP,
         extra_check=_is_dead_start),
    Part("leaky_relu", "leaky_relu_gradient", points=1, returns="weight_grad",
         tolerance=ONE_STEP),
    Part("bias", "train_neuron", points=2, **_training_part("train_neuron", _NEURON)),
    Part("several_inputs", "train_neuron", points=2, **_training_part("train_neuron", _NEURON)),
))
