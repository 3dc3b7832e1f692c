"""The autograd references of single_neuron, checked against independent PyTorch code."""

import pytest
import torch
from conftest import sgd_run
from torch import nn

from autograder.kit.tolerances import LEARNED
from autograder.references import single_neuron as sn


def test_linear_training_equals_torch_optim_sgd():
    x, y, _ = sn.one_input_data(3, 6)
    start = torch.tensor([[-0.7]], dtype=torch.float64)
    model = nn.Linear(1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(start)
    losses = sgd_run(model, x, y, 25, 0.1)
    reference = sn.reference_train_linear(x, y, start, 0.1, 25)
    torch.testing.assert_close(reference["losses"], losses, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(reference["weight"], model.weight.detach(), rtol=1e-12, atol=0)


def test_leaky_neuron_training_equals_torch_optim_sgd():
    x, y, _, _, weight, bias = sn.leaky_data(4, 9, 3, 0.05)
    linear = nn.Linear(3, 1, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    losses = sgd_run(nn.Sequential(linear, nn.LeakyReLU(0.05)), x, y, 30, 0.2)
    reference = sn.reference_train_neuron(x, y, weight, bias, 0.05, 0.2, 30)
    torch.testing.assert_close(reference["losses"], losses, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(reference["weight"], linear.weight.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(reference["bias"], linear.bias.detach(), rtol=1e-12, atol=0)


def test_relu_factors_multiply_to_the_gradient_and_vanish_at_dead_starts():
    for case in sn.ASSIGNMENT.part("relu_backprop").cases("hidden", 5):
        x, y, weight = case.args.values()
        factors = sn.reference_relu_backprop(x, y, weight)
        chain_rule = (factors["d_loss_d_output"] * factors["relu_slope"] * x).sum()
        torch.testing.assert_close(chain_rule.reshape(1, 1), factors["weight_grad"])
        dead = bool((x @ weight.T <= 0).all())  # every z below 0, but the one at x = 0
        assert "dead start" in case.label if dead else "live start" in case.label
        assert factors["weight_grad"].eq(0).all() == dead
        # z = 0 at the example with x = 0, where the prose defines ReLU's slope as 0
        assert (x == 0).any() and factors["relu_slope"][x == 0].eq(0).all()


def test_leaky_gradient_is_not_zero_at_the_dead_starts():
    for case in sn.ASSIGNMENT.part("leaky_relu").cases("hidden", 5):
        x, y, weight, slope = case.args.values()
        gradient = sn.reference_leaky_relu_gradient(x, y, weight, slope)["weight_grad"]
        assert gradient.ne(0).all()
        # It is the ReLU gradient when the slope is 0.
        torch.testing.assert_close(sn.reference_leaky_relu_gradient(x, y, weight, 0.0)[
            "weight_grad"], sn.reference_relu_backprop(x, y, weight)["weight_grad"])


@pytest.mark.parametrize("seed", [0, 20_261_122, 12_345])
@pytest.mark.parametrize("part_id", ["linear", "bias", "several_inputs"])
def test_reference_training_learns_the_true_map_well_within_tolerance(part_id, seed):
    part = sn.ASSIGNMENT.part(part_id)
    for case in part.cases("visible", seed) + part.cases("hidden", seed):
        trained = part.reference(*case.args.values())
        for name, truth in case.truth.items():
            assert (trained[name] - truth).abs().max() < LEARNED.atol / 20, (case.label, name)
        assert part.extra_check(case, trained) is None
