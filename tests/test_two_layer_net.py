"""two_layer_net: its references against independent PyTorch code, the mistakes its checks
must name, the timing check, and the device the results end on."""

import json

import pytest
import torch
from conftest import HIDDEN_SEED, solution_functions
from conftest import grade as grade_in

from autograder.kit.assignment_parts import two_layer_net as timing
from autograder.kit.grading import timed_outcomes
from autograder.references import two_layer_net as tln
from autograder.references.graded import grade_with_references


def grade(part_id, function, kind="hidden"):
    return grade_in(tln.ASSIGNMENT.name, part_id, function, kind)


def solution(name):
    return solution_functions("two_layer_net")[name]


def test_relu_reference_is_zero_at_zero_and_matches_the_tutorials_loop():
    h = tln.pre_activations(3, (5, 6))
    assert (h == 0).any()
    reference = tln.reference_relu_grad(h)["relu_grad"]
    tutorials = torch.zeros_like(h)  # the tutorial's loop, with the slope 0 at h == 0
    for i, value in enumerate(h.reshape(-1)):
        tutorials.view(-1)[i] = 1.0 if value > 0 else 0.0
    assert torch.equal(reference, tutorials)
    assert torch.equal(reference[h == 0], torch.zeros_like(h[h == 0]))


def test_training_reference_equals_torch_optim_sgd_on_the_same_loss():
    x, y, w1, w2 = tln.random_data(4, 10, 6, 5, 3)
    params = [torch.nn.Parameter(w.clone()) for w in (w1, w2)]
    optimizer = torch.optim.SGD(params, lr=1e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = ((torch.relu(x @ params[0]) @ params[1] - y) ** 2).sum()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    reference = tln.reference_train(x, y, w1, w2, 1e-3, 15)
    torch.testing.assert_close(reference["losses"], torch.tensor(losses, dtype=torch.float64,
                                                                 device=x.device))
    torch.testing.assert_close(reference["w1"], params[0].detach(), rtol=1e-12, atol=1e-14)
    assert reference["losses"][-1] < reference["losses"][0] / 2


# Seeds whose first draw of the 24-7-9-2 case made autograd's own loop overflow to NaN
# (found by grading the answer key on 1000 seeds): the answer key lost the train points.
OVERFLOWING_SEEDS = (36550428, 118505527)


@pytest.mark.parametrize("seed", OVERFLOWING_SEEDS)
def test_every_hidden_training_case_is_one_the_reference_learns(seed):
    part = tln.ASSIGNMENT.part("train")
    cases = part.cases("hidden", seed)
    for case in cases:
        losses = tln.reference_train(*case.args.values())["losses"]
        assert torch.isfinite(losses).all() and losses[-1] < losses[0], case.label
    assert grade_with_references(part, solution("train"), cases).passed


def test_the_tutorials_greater_or_equal_is_caught_at_zero():
    result = grade("relu_grad_vectorized", lambda h: (h >= 0).to(h.dtype))
    assert result.score == 0 and "relu_grad is wrong" in result.message


def test_a_float32_mask_is_named():
    result = grade("relu_grad_vectorized", lambda h: (h > 0).float())
    assert result.score == 0 and "float32" in result.message


def test_a_missing_factor_two_is_named():
    backward = solution("backward")

    def half(x, y, w1, w2):
        loss, grad_w1, grad_w2 = backward(x, y, w1, w2)
        return loss, grad_w1 / 2, grad_w2 / 2

    assert "0.5 times the right value" in grade("backward", half).message


def test_a_vectorized_answer_that_loops_is_refused_however_fast():
    def comprehension(h):
        return torch.stack([row > 0 for row in h]).to(h.dtype)

    def one_operation(h):
        return (h > 0).to(h.dtype)

    assert grade("relu_grad_vectorized", one_operation).passed
    for part in ("relu_grad_vectorized", "speed"):  # right values, but a loop
        result = grade(part, comprehension)
        assert result.score == 0 and "still loops in Python" in result.message


def test_per_entry_python_work_in_a_helper_fails_the_ratio():
    loop = solution("relu_grad_loop")

    def hides_the_loop(h):
        return loop(h)

    result = grade("speed", hides_the_loop)
    assert result.score == 0 and "as fast as a plain Python loop" in result.message


def test_the_visible_check_times_the_calls_as_the_engine_does_not_the_student_call():
    """The call reports no time of its own (the engine replaces it with the fork server's;
    the notebook's check with this process's CPU time over the calls, `timed_outcomes`)."""
    part = tln.ASSIGNMENT.part("speed")
    cases = part.cases("visible", 0)
    grad, seconds, loops = timing.timed_call(solution("relu_grad_vectorized"), cases[0].args["h"])
    assert torch.equal(grad, (cases[0].args["h"] > 0).to(grad.dtype)) and loops.item() == 0
    assert seconds.isnan()
    (outcome,) = timed_outcomes(part, solution("relu_grad_vectorized"), cases)
    assert 0 < outcome["cpu_seconds"].item() < timing.python_loop_seconds(timing.TIMED_SHAPE)


def test_results_on_another_device_are_refused():
    other = torch.device("meta")
    result = grade("relu_grad_vectorized", lambda h: (h > 0).to(h.dtype).to(other))
    assert result.score == 0 and f"is on {other}" in result.message


@pytest.mark.cuda
def test_on_cuda_the_cases_the_solution_and_its_results_are_on_the_gpu():
    assert timing.DEVICE.type == "cuda"
    for part in tln.ASSIGNMENT.parts:
        cases = part.cases("hidden", HIDDEN_SEED)
        assert all(v.device.type == "cuda" for case in cases for v in case.args.values()
                   if isinstance(v, torch.Tensor))
        function = solution_functions("two_layer_net")[part.function]
        assert grade_with_references(part, function, cases).passed
    result = grade("backward", lambda *args: tuple(t.cpu() for t in solution("backward")(*args)))
    assert result.score == 0 and "is on cpu, but the inputs are on cuda" in result.message



def _relu_grad_by_loop(h):
    grad = torch.zeros_like(h)
    for index in range(h.numel()):
        grad.view(-1)[index] = 1.0 if h.view(-1)[index] > 0 else 0.0
    return grad


def test_patching_the_clock_does_not_buy_the_speed_points(monkeypatch):
    import itertools
    import time

    ticks = itertools.count()

    def lying_clock():  # one second per reading, except across the student's own runs
        return float(next(ticks))

    def slow_but_lying(h):
        nonlocal ticks
        monkeypatch.setattr(time, "perf_counter", lying_clock)
        grad = _relu_grad_by_loop(h)
        ticks = itertools.count()  # the clock goes back: this run "took" negative time
        return grad

    part = tln.ASSIGNMENT.part("speed")
    result = grade_with_references(part, slow_but_lying, part.cases("hidden", HIDDEN_SEED))
    assert result.score == 0, result.message


def test_a_global_hides_only_the_names_it_declares():
    """A `global` elsewhere in the notebook (a call counter, say) leaves the function's
    source readable; a `global` naming the function, which may rebind it, does not."""
    from autograder.kit.python_loops import loops_in_notebook

    def notebook(*cells: str) -> bytes:
        return json.dumps({"cells": [{"source": cell} for cell in cells]}).encode()

    def sources(nb: dict) -> list[str]:
        return [cell["source"] for cell in nb["cells"]]

    vectorized = "def relu_grad(h):\n    return (h > 0).to(h.dtype)\n"
    counter = "CALLS = 0\ndef fit():\n    global CALLS\n    CALLS += 1\n"
    rebinding = "def swap():\n    global relu_grad\n    relu_grad = len\n"
    assert loops_in_notebook(notebook(vectorized, counter), "relu_grad", sources) == 0
    assert loops_in_notebook(notebook(vectorized, rebinding), "relu_grad", sources) is None
    calling = "def outer(h):\n    return relu_grad(h)\n"
    assert loops_in_notebook(notebook(vectorized, calling, rebinding), "outer", sources) is None
