"""The checks of single_neuron: each typical mistake fails its part with a message in plain
words. (The answer key and blank stubs of every assignment are in test_all_parts.py.)"""

import torch
from conftest import grade as grade_in
from conftest import sgd_run
from torch import nn

from autograder.references import single_neuron as sn


def grade(part_id, function, kind="hidden"):
    return grade_in(sn.ASSIGNMENT.name, part_id, function, kind)


def test_forgotten_zero_grad_is_caught(neuron_solution):
    neuron_with = neuron_solution["neuron_with"]

    def train_linear(x, y, weight, learning_rate, epochs):
        neuron = neuron_with(weight)
        optimizer = torch.optim.SGD(neuron.parameters(), lr=learning_rate)
        losses = []
        for _ in range(epochs):
            loss = nn.MSELoss()(neuron(x), y)
            loss.backward()  # no zero_grad: .grad holds the sum of every step's gradient
            optimizer.step()
            losses.append(loss.item())
        return losses, neuron.weight.detach()

    result = grade("linear", train_linear)
    assert result.score == 0 and "losses is wrong" in result.message


def test_hard_coded_epochs_are_caught(neuron_solution):
    train_linear = neuron_solution["train_linear"]
    result = grade("linear", lambda x, y, w, rate, epochs: train_linear(x, y, w, rate, 100))
    assert result.score == 0 and "losses has 100 entries" in result.message
    assert result.mistake == "wrong_epochs"


def test_a_model_that_did_not_learn_the_map_is_named():
    case = sn.ASSIGNMENT.part("linear").cases("visible", 0)[0]
    untrained = {"weight": case.args["weight"]}
    assert "not close to the true map" in sn.ASSIGNMENT.part("linear").extra_check(
        case, untrained).message


def test_relu_backprop_mistakes_are_named(neuron_solution):
    relu_backprop = neuron_solution["relu_backprop"]

    def without_two_over_n(x, y, weight):
        d_loss, slope, grad = relu_backprop(x, y, weight)
        return d_loss * y.shape[0] / 2, slope, grad

    def boolean_slope(x, y, weight):
        d_loss, slope, grad = relu_backprop(x, y, weight)
        return d_loss, slope.bool(), grad

    assert "times the right value" in grade("relu_backprop", without_two_over_n).message
    assert "relu_slope is bool" in grade("relu_backprop", boolean_slope).message


def test_dead_start_must_oppose_the_sign_of_the_inputs():
    def always_minus_one(x):
        return -torch.ones(1, 1, dtype=x.dtype)

    for kind in ("visible", "hidden"):  # both kinds have negative inputs
        result = grade("dead_relu", always_minus_one, kind)
        assert result.score == 0 and "choose the weight's sign against the sign of x" in \
            result.message


def test_a_zero_weight_is_not_called_a_start_that_learns():
    """At w = 0 every z is on the kink, where the slope is 0 by convention: the neuron does
    not learn there, so "not_dead" (it still learns) would be false; the message says why
    the start fails instead, and names nothing."""
    for zero in (0.0, -0.0):
        result = grade("dead_relu", lambda x, zero=zero: torch.full((1, 1), zero, dtype=x.dtype))
        assert result.score == 0 and result.mistake is None
        assert "on ReLU's kink" in result.message and "still learns" not in result.message


def test_dead_start_with_a_wrong_shape_or_dtype_gets_a_plain_message():
    assert "weight has shape (1,)" in grade("dead_relu", lambda x: -x[0].sign()).message
    assert "float32" in grade("dead_relu", lambda x: -x[:1, :1].sign().float()).message


def test_leaky_relu_answered_with_a_plain_relu_fails(neuron_solution):
    relu_backprop = neuron_solution["relu_backprop"]
    result = grade("leaky_relu", lambda x, y, w, slope: relu_backprop(x, y, w)[2])
    assert result.score == 0 and "dead start" in result.message


def test_one_input_hard_coded_passes_bias_but_fails_several_inputs():
    def train_neuron(x, y, weight, bias, negative_slope, learning_rate, epochs):
        linear = nn.Linear(1, 1, dtype=x.dtype)  # should be weight.shape[1] inputs
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        losses = sgd_run(nn.Sequential(linear, nn.LeakyReLU(negative_slope)), x, y, epochs,
                         learning_rate)
        return losses, linear.weight.detach(), linear.bias.detach()

    assert grade("bias", train_neuron).passed
    result = grade("several_inputs", train_neuron)
    assert result.score == 0 and "raised RuntimeError" in result.message
