"""The checks of nn_from_scratch: the solution passes, each kind of mistake fails that part
only, and every failure comes with a message in plain words. (The answer key and blank stubs
of every assignment are in test_all_parts.py.)"""

import pytest
import torch
from conftest import grade as grade_in

from autograder.course import REPO
from autograder.kit.notebook import WrongAnswer, checker
from autograder.references import nn_from_scratch as nn
from autograder.references.graded import grade_with_references


def grade(part_id, function, kind="hidden"):
    return grade_in(nn.ASSIGNMENT.name, part_id, function, kind)


def test_check_raises_wrong_answer_and_prints_on_success(nn_solution, capsys):
    """The kit's check, on the visible cases the release ships next to the notebook."""
    check = checker("nn_from_scratch", REPO / "assignments" / "nn_from_scratch")
    check("forward", nn_solution["forward"])
    assert "✔ forward is correct" in capsys.readouterr().out
    with pytest.raises(WrongAnswer, match="sigmoid_delta"):
        check("sigmoid_delta", lambda a: a)


def step_with(nn_solution, **changes):
    """The solution's train_step with one line of its backprop replaced."""
    forward, delta = nn_solution["forward"], nn_solution["sigmoid_delta"]

    def train_step(X, y, w1, b1, w2, b2, learning_rate):
        _z1, a1, _z2, output = forward(X, w1, b1, w2, b2)
        d_outp = changes.get("error", lambda y, o: y - o)(y, output) * delta(output)
        d_hidn = torch.mm(d_outp, w2.t()) * delta(a1)
        b1_step = changes.get("b1_step", lambda d: d.sum(0, keepdim=True))(d_hidn)
        scale = changes.get("scale", 1.0)
        return (w1 + scale * learning_rate * torch.mm(X.t(), d_hidn),
                b1 + scale * learning_rate * b1_step,
                w2 + scale * learning_rate * torch.mm(a1.t(), d_outp),
                b2 + scale * learning_rate * d_outp.sum(0, keepdim=True))

    return train_step


def test_sign_error_is_named(nn_solution):
    result = grade("train_step", step_with(nn_solution, error=lambda y, o: o - y))
    assert result.score == 0
    assert "opposite sign" in result.message


def test_tutorials_d_hidn_sum_is_named(nn_solution):
    result = grade("train_step", step_with(nn_solution, b1_step=lambda d: d.sum()))
    assert result.score == 0
    assert "b1" in result.message and "All its entries are equal" in result.message


def test_bias_summed_over_the_wrong_axis_is_a_shape_error(nn_solution):
    result = grade("train_step", step_with(nn_solution, b1_step=lambda d: d.sum(1, keepdim=True)))
    assert result.score == 0
    assert "b1 has shape" in result.message


def test_scale_error_is_named(nn_solution):
    result = grade("train_step", step_with(nn_solution, scale=2.0))
    assert "2 times the right value" in result.message


def test_transposed_forward_fails_on_non_square_shapes(nn_solution):
    def forward(X, w1, b1, w2, b2):
        z1 = (w1.t() @ X.t()).t() + b1
        a1 = torch.sigmoid(z1)
        z2 = (a1 @ w2.t().t()) + b2
        return z1, a1, z2, torch.sigmoid(z2)

    assert grade("forward", forward).passed  # an equivalent rewriting is fine

    def transposed(X, w1, b1, w2, b2):
        z1 = X @ (w1.t() if w1.shape[0] == w1.shape[1] else w1) + b1
        a1 = torch.sigmoid(z1)
        z2 = a1 @ w2 + b2
        return z1, a1, z2, torch.sigmoid(z2)

    result = grade("forward", transposed)
    assert result.score == 0 and "z1 is wrong" in result.message


def test_float32_work_is_named():
    result = grade("sigmoid_activation", lambda z: 1 / (1 + torch.exp(-z.float())))
    assert "float32" in result.message


def test_wrong_type_shape_and_count_each_get_a_message():
    assert "should be a torch.Tensor, but it is a list" in grade(
        "sigmoid_activation", lambda z: z.tolist()).message
    assert "returned None" in grade("sigmoid_delta", lambda a: None).message
    assert "should return 4 values" in grade(
        "forward", lambda X, w1, b1, w2, b2: (X, X)).message
    assert "has shape" in grade("sigmoid_delta", lambda a: (a * (1 - a)).sum(0)).message
    assert "raised ZeroDivisionError: division by zero" in grade(
        "sigmoid_delta", lambda a: 1 / 0).message
    assert "should be a function" in grade("sigmoid_delta", 3).message


def test_exiting_from_a_stub_fails_the_part_without_stopping_the_grader():
    def leave(*args):
        raise SystemExit(0)

    assert "raised SystemExit" in grade("train", leave).message


def test_later_parts_point_back_to_the_parts_they_build_on(nn_solution):
    result = grade("train", lambda *args: (_ for _ in ()).throw(ValueError("boom")))
    assert "calls your train_step" in result.message


def test_training_must_use_the_given_epochs_and_learning_rate(nn_solution):
    train = nn_solution["train"]
    assert not grade("train", lambda *a: train(*a[:6], 0.1, 500)).passed
    assert not grade("train", lambda *a: train(*a[:7], 500)).passed


def test_losses_may_be_a_list_or_a_tensor(nn_solution):
    train = nn_solution["train"]

    def as_tensor(*args):
        losses, params = train(*args)
        return torch.tensor(losses, dtype=torch.float64), params

    assert grade("train", as_tensor).passed


def test_a_warning_in_student_code_writes_nothing_to_stderr(nn_solution, capfd):
    def noisy(z):
        import warnings
        warnings.warn("a student's warning", UserWarning, stacklevel=1)
        return nn_solution["sigmoid_activation"](z)

    assert grade("sigmoid_activation", noisy).passed
    assert capfd.readouterr().err == ""


# A run of train with sigmoid_delta(z2) whose losses stay finite (the sigmoid saturates)
# while its weights overflow: every entry of w1 ends NaN, in the student's run and the
# mistake's alike (the lead's fresh-clone run drew it).
SATURATED_SEED = 547_294_882


def saturated_run():
    """The first hidden case of train on SATURATED_SEED, and what train_step with
    sigmoid_delta(z2) makes of it over the case's epochs."""
    part = nn.ASSIGNMENT.part("train")
    case = part.cases("hidden", SATURATED_SEED)[0]
    return part, case, nn.mistaken_train(*case.args.values(), output_at_z=True)


def returning(outputs):
    """A train that returns these outputs, whatever it is given."""
    return lambda *args: (outputs["losses"],
                          tuple(outputs[name] for name in ("w1", "b1", "w2", "b2")))


def changed(outputs, name, change):
    """outputs with a copy of one of them changed in place by change."""
    copy = outputs[name].clone()
    change(copy)
    return {**outputs, name: copy}


def test_a_run_whose_weights_overflow_is_named_only_on_its_mistakes_evidence():
    part, case, run = saturated_run()
    assert torch.isfinite(run["losses"]).all() and run["w1"].isnan().all()

    def named(outputs):
        return grade_with_references(part, returning(outputs), [case]).mistake

    def nan_and_inf_swapped(tensor):
        nan, inf = tensor.isnan(), tensor.isinf()
        tensor[nan], tensor[inf] = float("inf"), float("nan")

    def first_finite_off(tensor):
        tensor.view(-1)[torch.isfinite(tensor).view(-1).nonzero()[0]] *= 1.01

    assert named(run) == "delta_of_z"
    # Which of NaN and inf an overflow gives depends on the order of the operations.
    assert named(changed(run, "w2", nan_and_inf_swapped)) == "delta_of_z"
    assert named(changed(run, "w2", first_finite_off)) == "not_finite"
    assert named(changed(run, "losses", first_finite_off)) == "not_finite"
    assert named(changed(run, "w1", lambda w1: w1.view(-1)[0].zero_())) == "not_finite"
