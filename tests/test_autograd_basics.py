"""autograd_basics: its references against independent PyTorch code, and the mistakes its
checks must name (rebinding, in-place updates on leaves, a forgotten zero_grad, ...)."""

import torch
from conftest import grade as grade_in
from conftest import solution_functions
from torch import nn

from autograder.references import autograd_basics as ab
from autograder.references.nn_from_scratch import random_network


def grade(part_id, function, kind="hidden"):
    return grade_in(ab.ASSIGNMENT.name, part_id, function, kind)


def network():
    return random_network(11, 5, 4, 3, 2)


def test_step_reference_equals_torch_optim_sgd_on_mse():
    X, y, *start = network()
    params = [nn.Parameter(p.clone()) for p in start]
    optimizer = torch.optim.SGD(params, lr=0.3)
    output = torch.sigmoid(torch.sigmoid(X @ params[0] + params[1]) @ params[2] + params[3])
    nn.MSELoss()(output, y).backward()
    optimizer.step()
    reference = ab.reference_step(*start, X, y, 0.3)
    for name, param in zip(("w1", "b1", "w2", "b2"), params, strict=True):
        torch.testing.assert_close(reference[name], param.detach(), rtol=1e-12, atol=1e-14)


def test_loss_references_differ_by_two_over_the_number_of_entries():
    X, y, *params = network()
    reference = ab.reference_losses(X, y, *params)
    assert reference["scale"].item() == 2 / 10  # a batch of 5, 2 outputs
    torch.testing.assert_close(reference["mse_loss"], reference["scale"] * reference["sum_loss"])
    torch.testing.assert_close(reference["mse_grad_w2"],
                               reference["scale"] * reference["sum_grad_w2"])


def test_accumulation_reference_matches_two_real_backward_calls():
    X, y, w1, b1, w2, b2 = network()
    leaf = w1.clone().requires_grad_()
    for _ in range(2):
        output = torch.sigmoid(torch.sigmoid(X @ leaf + b1) @ w2 + b2)
        (0.5 * ((output - y) ** 2).sum()).backward()
    reference = ab.reference_accumulate(X, y, w1, b1, w2, b2)
    torch.testing.assert_close(reference["after_two"], leaf.grad, rtol=1e-12, atol=1e-14)


def test_cross_entropy_gradient_is_probabilities_minus_one_hot_over_n():
    logits = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 2, 1, 2])
    reference = ab.reference_softmax_cross_entropy(logits, labels)
    one_hot = nn.functional.one_hot(labels, 3).to(torch.float64)
    torch.testing.assert_close(reference["logits_grad"],
                               (reference["probabilities"] - one_hot) / 4)


def test_requires_grad_mistakes_are_named():
    def input_with_grad(X, *params):
        return (X.clone().requires_grad_(), *(p.clone().requires_grad_() for p in params))

    def no_grad(X, *params):
        return (X, *params)

    def not_a_leaf(X, *params):
        return (X, *(p.requires_grad_().clone() for p in params))

    assert "X requires grad, but it is the input" in grade("requires_grad",
                                                           input_with_grad).message
    assert "w1 does not require grad" in grade("requires_grad", no_grad).message
    assert "w1 is not a leaf" in grade("requires_grad", not_a_leaf).message
    assert "should return 5 values" in grade("requires_grad", lambda X, *p: p).message


def test_losses_scale_over_the_batch_only_is_named_in_visible_and_hidden_cases():
    losses = solution_functions("autograd_basics")["sum_and_mean_losses"]

    def batch_only(X, y, *params):
        *rest, _scale = losses(X, y, *params)
        return (*rest, torch.tensor(2 / y.shape[0], dtype=y.dtype))

    for kind in ("visible", "hidden"):  # both kinds have a network with several outputs
        result = grade("losses", batch_only, kind)
        assert result.score == 0 and "scale is wrong" in result.message
        assert result.mistake == "batch_not_entries"


def test_keeping_grad_without_a_copy_is_named():
    solution = solution_functions("autograd_basics")
    prepare, forward = solution["prepare"], solution["forward"]

    def no_copies(X, y, w1, b1, w2, b2):
        X, w1, b1, w2, b2 = prepare(X, w1, b1, w2, b2)
        seen = []
        for zero_first in (False, False, True):
            if zero_first:
                w1.grad.zero_()
            (0.5 * ((forward(X, w1, b1, w2, b2) - y) ** 2).sum()).backward()
            seen.append(w1.grad)  # the same tensor each time
        return tuple(seen)

    result = grade("accumulate", no_copies)
    assert result.score == 0 and "after_two" in result.message
    assert result.mistake == "accumulation_lost" and "w1.grad.clone()" in result.message


def mse(params, X, y):
    forward = solution_functions("autograd_basics")["forward"]
    return nn.MSELoss()(forward(X, *params), y)


def step_with(update, clear=True):
    """A step that clears the gradients (or not), runs backward(), then update(params, lr)."""
    def step(params, X, y, learning_rate):
        if clear:
            for p in params:
                p.grad = None
        mse(params, X, y).backward()
        update(params, learning_rate)
    return step


def in_place(params, learning_rate):
    for p in params:
        p -= learning_rate * p.grad


def under_no_grad(update):
    def wrapped(params, learning_rate):
        with torch.no_grad():
            update(params, learning_rate)
    return wrapped


def rebinding(params, learning_rate):
    for p in params:
        p = p - learning_rate * p.grad  # the mistake: rebinds the name only


def test_a_forgotten_zero_grad_is_named():
    for part_id in ("sgd_step", "manual_step"):
        result = grade(part_id, step_with(under_no_grad(in_place), clear=False))
        assert result.score == 0 and "Clear the gradients before backward()" in result.message


def test_an_in_place_update_of_a_leaf_outside_no_grad_is_named():
    result = grade("manual_step", step_with(in_place))
    assert result.score == 0 and "inside `with torch.no_grad():`" in result.message


def test_rebinding_a_parameter_is_named():
    assert grade("manual_step", step_with(under_no_grad(in_place))).passed
    result = grade("manual_step", step_with(under_no_grad(rebinding)))
    assert result.score == 0 and "the parameters did not change" in result.message


def test_a_half_step_is_named_as_a_scale():
    def step(params, X, y, learning_rate):
        solution_functions("autograd_basics")["manual_step"](params, X, y, learning_rate / 2)

    assert "0.5 times the right value" in grade("manual_step", step).message


def test_probabilities_given_to_cross_entropy_are_caught():
    solution = solution_functions("autograd_basics")["softmax_cross_entropy"]

    def double_softmax(logits, labels):
        probabilities, _, _ = solution(logits, labels)
        leaf = probabilities.clone().requires_grad_()
        loss = nn.CrossEntropyLoss()(leaf, labels)
        loss.backward()
        return probabilities, loss, leaf.grad

    result = grade("softmax_cross_entropy", double_softmax)
    assert result.score == 0 and "loss is wrong" in result.message
