"""The autograd references of nn_from_scratch, checked against independent PyTorch code."""

import torch

from autograder.references import nn_from_scratch as nn
from autograder.references.graded import grade_with_references
from autograder.submissions import defined_names


def test_reproduces_the_tutorials_printed_numbers():
    X, _y, w1, b1, w2, b2 = nn.tutorial_example()
    result = nn.reference_forward(X, w1, b1, w2, b2)
    assert torch.equal(result["a1"].float().mul(1e4).round(),
                       torch.tensor([[9697.0, 8139.0, 3020.0]]))
    assert torch.equal(result["output"].float().mul(1e4).round(), torch.tensor([[8594.0]]))


def test_one_step_equals_torch_optim_sgd():
    X, y, w1, b1, w2, b2 = nn.random_network(7, 5, 4, 6, 2)
    params = [torch.nn.Parameter(p.clone()) for p in (w1, b1, w2, b2)]
    sgd = torch.optim.SGD(params, lr=0.3)
    output = torch.sigmoid(torch.sigmoid(X @ params[0] + params[1]) @ params[2] + params[3])
    (0.5 * ((y - output) ** 2).sum()).backward()
    sgd.step()
    reference = nn.reference_train_step(X, y, w1, b1, w2, b2, 0.3)
    for name, param in zip(("w1", "b1", "w2", "b2"), params, strict=True):
        torch.testing.assert_close(reference[name], param.detach(), rtol=1e-12, atol=1e-14)


def test_training_reference_repeats_the_step_and_lowers_the_loss():
    X, y, w1, b1, w2, b2 = nn.tutorial_example()
    trained = nn.reference_train(X, y, w1, b1, w2, b2, nn.LEARNING_RATE, 3)
    step = (w1, b1, w2, b2)
    for _ in range(3):
        step = tuple(nn.reference_train_step(X, y, *step, nn.LEARNING_RATE).values())
    torch.testing.assert_close(trained["w1"], step[0], rtol=0, atol=0)
    full = nn.reference_train(X, y, w1, b1, w2, b2, nn.LEARNING_RATE, nn.EPOCHS)["losses"]
    assert full.shape == (nn.EPOCHS,) and full[-1] < full[0] / 5
    assert (full.diff() < 0).all()


def test_sigmoid_delta_reference_is_the_autograd_slope():
    a = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    torch.testing.assert_close(nn.reference_sigmoid_delta(a)["sigmoid_delta(a)"], a * (1 - a))


def test_hidden_networks_have_batches_and_non_square_and_square_weights():
    cases = nn.ASSIGNMENT.part("train_step").cases("hidden", 1)
    w1_shapes = [tuple(case.args["w1"].shape) for case in cases]
    assert any(case.args["X"].shape[0] > 1 for case in cases)
    assert any(rows != cols for rows, cols in w1_shapes)
    assert any(rows == cols for rows, cols in w1_shapes)
    assert any(case.args["y"].shape[1] > 1 for case in cases)
    assert all(((case.args["y"] > 0) & (case.args["y"] < 1)).all() for case in cases)


def test_only_the_notebooks_run_sets_an_accuracy_bar_and_autograd_clears_it():
    """learn_2d's bar holds on the notebook's run (the student sees it); a hidden run
    reports its held-out accuracy with no bar, which could fail only correct work."""
    part = nn.ASSIGNMENT.part("learn_2d")
    notebook_run, *small = part.cases("visible", 0)
    assert notebook_run.truth["min_accuracy"] == nn.NOTEBOOK_RUN_BAR
    assert part.extra_check(notebook_run, nn.reference_fit(*notebook_run.args.values())) is None
    assert all("X_test" not in case.truth for case in small)
    hidden = [case for seed in range(5) for case in part.cases("hidden", seed)]
    assert all(case.truth["min_accuracy"] == 0 for case in hidden if "X_test" in case.truth)
    assert sum("X_test" in case.truth for case in hidden) == 5
    solution = defined_names("nn_from_scratch")["fit"]
    assert "held-out points" in grade_with_references(part, solution,
                                                      part.cases("hidden", 1)).message


def test_central_differences_agree_with_autograd_and_one_sided_ones_do_not():
    part = nn.ASSIGNMENT.part("gradient_check")
    for case in part.cases("hidden", 3):
        X, y, w1, b1, w2, b2, h = case.args.values()
        reference = nn.reference_gradients(X, y, w1, b1, w2, b2, h)
        one_sided = [({"offsets": offsets, "denominator": 1}, False)
                     for offsets in ((1, 0), (0, -1))]
        variants = [({}, True), ({"offsets": (-1, 1)}, True)] + one_sided * (h >= 5e-4)
        for variant, agrees in variants:
            got = nn.finite_differences(X, y, (w1, b1, w2, b2), h, **variant)
            close = all(torch.allclose(got[name], reference[name], rtol=part.tolerance.rtol,
                                       atol=part.tolerance.atol) for name in reference)
            assert close == agrees, (case.label, variant)
