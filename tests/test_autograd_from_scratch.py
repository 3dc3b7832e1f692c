"""autograd_from_scratch: its references against independent PyTorch code, the grader's own
engine (the known mistakes) against autograd, the expressions the cases build, the checks'
messages, and the engine grading it in two children (autograd forbidden in one)."""

import math

import nbformat
import pytest
import torch
from conftest import HIDDEN_SEED, solution_functions
from conftest import grade as grade_in
from mistake_corpus import CORPUS, UNNAMED

from autograder.course import REPO
from autograder.engine import grade_notebook
from autograder.engine.child import child_groups
from autograder.engine.isolation import full_isolation_available
from autograder.kit.assignment_parts import autograd_from_scratch as kit
from autograder.kit.notebook import WrongAnswer, checker
from autograder.references import autograd_from_scratch as afs
from autograder.submissions import Edit, answered, defined_names, student_answers

ORDERS = ("topological", "no_visited_set", "preorder", "preorder_no_visited_set",
          "breadth_first")


def grade(part_id, function, kind="hidden"):
    return grade_in(afs.ASSIGNMENT.name, part_id, function, kind)


def key(name):
    return solution_functions(afs.ASSIGNMENT.name)[name]


def expressions(kind="hidden", seeds=range(6)):
    return [case for seed in seeds for case in afs.ASSIGNMENT.part("backward").cases(kind, seed)]


# ---- references and the grader's own engine -----------------------------------------------

def test_gradients_of_a_node_used_twice_add_up():
    """x * x + x: dL/dx = 2x + 1 (autograd, and the grader's engine)."""
    leaves = torch.tensor([1.5], dtype=torch.float64)
    program = torch.tensor([[kit.MUL, 0, 0], [kit.ADD, 1, 0]])
    constants = torch.zeros(2, dtype=torch.float64)
    expected = torch.tensor([4.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(afs.reference_gradients(leaves, program, constants)["node.grad"],
                               expected)
    torch.testing.assert_close(afs.simulated_gradients(leaves, program, constants), expected)
    overwritten = afs.simulated_gradients(leaves, program, constants, accumulate=False)
    assert overwritten[0] == 1.5  # x * x's last assignment, x: the 1 of + x and an x lost


@pytest.mark.parametrize("case", expressions(), ids=lambda case: case.label[:50])
def test_the_graders_engine_agrees_with_autograd(case):
    """In reverse topological order, with every contribution added, the grader's engine is
    autograd: its known mistakes are the student's algorithm with one thing changed."""
    reference = afs.reference_gradients(*case.args.values())["node.grad"]
    torch.testing.assert_close(afs.simulated_gradients(*case.args.values()), reference,
                               rtol=1e-10, atol=1e-12)


def test_every_wrong_order_and_slip_shows_on_each_chain():
    """The chain's skip connections make every wrong walk of the graph, a missing visited
    set, an overwritten gradient and a missing chain factor give other gradients."""
    for case in expressions("hidden", range(20)) + expressions("visible", [0]):
        if "chain" not in case.label:
            continue
        reference = afs.reference_gradients(*case.args.values())["node.grad"]
        wrong = [afs.simulated_gradients(*case.args.values(), order=order) for order in ORDERS]
        wrong += [afs.simulated_gradients(*case.args.values(), accumulate=False),
                  afs.simulated_gradients(*case.args.values(), chain=False)]
        assert all(not torch.allclose(got, reference, rtol=1e-5) for got in wrong), case.label


def test_expressions_feed_the_last_node_and_stay_well_scaled():
    for case in expressions("hidden", range(20)):
        leaves, program, constants = case.args.values()
        used = {int(i) for i in program[:, 1:].flatten() if i >= 0}
        assert used == set(range(len(leaves) + len(program) - 1)), case.label
        grads = afs.reference_gradients(leaves, program, constants)["node.grad"]
        assert torch.isfinite(grads).all()
        if "chain" in case.label:  # no gradient vanishes along 200 operations (then relu(0 * a))
            chain = grads[len(leaves):-3]
            assert chain.abs().min() > math.exp(-8) and chain.abs().max() < math.exp(8)


def test_shared_nodes_occur_in_every_hidden_draw():
    for case in expressions("hidden", range(10)):
        program = case.args["program"]
        operands = [int(i) for i in program[:, 1:].flatten() if i >= 0]
        assert len(operands) > len(set(operands)), case.label


def test_local_gradients_are_autograds_vector_jacobian_products():
    """The reference of Part 2 (autograd) and the table of local gradients (the grader's
    engine) agree on every operation, ReLU at 0 included."""
    for case in afs.ASSIGNMENT.part("local_gradients").cases("hidden", HIDDEN_SEED):
        reference = afs.reference_local_gradients(*case.args.values())
        for candidate in afs._local_variant(*case.args.values()):
            (name, value), = candidate.items()
            torch.testing.assert_close(value, reference[name], rtol=1e-12, atol=1e-14)
        assert (case.args["a"][kit.RELU] == 0).any()


def moons_case(part_id):
    return afs.ASSIGNMENT.part(part_id).cases("hidden", HIDDEN_SEED)[0]


def test_mlp_gradients_are_those_of_the_same_network_in_nn_modules():
    X, y, w1, b1, w2, b2 = moons_case("mlp_gradients").args.values()
    hidden, output = (torch.nn.Linear(*w.shape, dtype=torch.float64) for w in (w1, w2))
    with torch.no_grad():
        for layer, w, b in ((hidden, w1, b1), (output, w2, b2)):
            layer.weight.copy_(w.T)
            layer.bias.copy_(b[0])
    loss = torch.nn.MSELoss()(torch.sigmoid(output(torch.tanh(hidden(X)))), y)
    loss.backward()
    reference = afs.reference_mlp_gradients(X, y, w1, b1, w2, b2)
    torch.testing.assert_close(reference["loss"], loss.detach())
    torch.testing.assert_close(reference["grad_w1"], hidden.weight.grad.T)
    torch.testing.assert_close(reference["grad_b2"], output.bias.grad[None])


def test_module_reference_is_optim_sgd_on_bce_with_logits():
    X, y, w1, b1, w2, b2, rate, epochs = moons_case("torch_module").args.values()
    params = [torch.nn.Parameter(p.clone()) for p in (w1, b1, w2, b2)]
    optimizer = torch.optim.SGD(params, lr=rate)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.BCEWithLogitsLoss()(afs.logits(X, *params), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    reference = afs.reference_train_module(X, y, w1, b1, w2, b2, rate, epochs)
    torch.testing.assert_close(reference["losses"], torch.tensor(losses, dtype=torch.float64))
    torch.testing.assert_close(reference["w1"], params[0].detach(), rtol=1e-12, atol=1e-14)
    assert losses[-1] < losses[0]


def test_network_cases_have_batches_and_square_and_non_square_layers():
    for part_id in ("mlp_gradients", "train_mlp", "torch_module"):
        cases = afs.ASSIGNMENT.part(part_id).cases("hidden", HIDDEN_SEED)
        shapes = {tuple(case.args["w1"].shape) for case in cases}
        assert all(len(case.args["X"]) > 1 for case in cases)
        assert any(rows == cols for rows, cols in shapes)
        assert any(rows != cols for rows, cols in shapes)


def test_the_notebooks_module_run_learns_the_moons():
    part = afs.ASSIGNMENT.part("torch_module")
    notebook_run = part.cases("visible", 0)[0]
    assert notebook_run.truth["min_accuracy"] == afs.NOTEBOOK_RUN_BAR
    trained = afs.reference_train_module(*notebook_run.args.values())
    assert part.extra_check(notebook_run, trained) is None
    assert all(not case.truth for case in part.cases("hidden", HIDDEN_SEED))


# ---- what the checks say ----------------------------------------------------------------

def corpus_value(student: str):
    """The Value class of a submission of the mistake corpus."""
    wrong = next(w for w in CORPUS[afs.ASSIGNMENT.name] + UNNAMED[afs.ASSIGNMENT.name]
                 if w.student == student)
    return defined_names(afs.ASSIGNMENT.name, wrong.edits)["Value"]


def test_check_in_the_kit_passes_the_key_and_names_an_overwrite(capsys):
    check = checker(afs.ASSIGNMENT.name, REPO / "assignments" / afs.ASSIGNMENT.name)
    check("backward", key("Value"))
    assert "✔ Value is correct on 3 cases" in capsys.readouterr().out
    with pytest.raises(WrongAnswer, match=r"_backward of a \* b is wrong.*overwritten"):
        check("local_gradients", corpus_value("mul_overwrites"))


def test_a_missing_reflected_operator_or_a_non_value_says_what_to_define():
    result = grade("operations", corpus_value("no_reflected_multiplication"))
    assert result.score == 0 and "define __rmul__" in result.message
    returns_floats = defined_names(afs.ASSIGNMENT.name, (Edit(
        "value_answer", "result = Value(math.exp(self.data), (self,))",
        "result = Value(math.exp(self.data), (self,))\n        return result.data"),))["Value"]
    result = grade("operations", returns_floats)
    assert result.mistake == "wrong_type"
    assert "a.exp() returned a float, not a Value" in result.message


def test_backward_by_autograd_is_refused():
    """A backward() that hands work to autograd, in a Value part."""
    by_autograd = defined_names(afs.ASSIGNMENT.name, (Edit(
        "backward_answer", "    build(self)\n",
        "    with torch.enable_grad():\n"
        "        twin = torch.tensor(self.data, requires_grad=True)\n"
        "        (twin * 1.0).backward()\n    build(self)\n"),))["Value"]
    result = grade("backward", by_autograd)
    assert result.score == 0 and result.mistake == "autograd_used"


def test_the_module_part_runs_apart_from_the_manual_ones():
    ids = [part.id for part in afs.ASSIGNMENT.parts]
    assert child_groups(afs.ASSIGNMENT, ids) == [ids[:-1], ["torch_module"]]
    from autograder.references import nn_from_scratch
    nn_ids = [part.id for part in nn_from_scratch.ASSIGNMENT.parts]
    assert len(child_groups(nn_from_scratch.ASSIGNMENT, nn_ids)) == 1


@pytest.mark.skipif(not full_isolation_available(), reason="needs root and bubblewrap")
def test_the_engine_gives_the_key_full_marks_and_the_release_none(tmp_path):
    release = REPO / "assignments" / afs.ASSIGNMENT.name / f"{afs.ASSIGNMENT.name}.ipynb"
    nbformat.write(answered(release, student_answers(afs.ASSIGNMENT.name)),
                   tmp_path / "key.ipynb")
    answer_key = grade_notebook(tmp_path / "key.ipynb", afs.ASSIGNMENT.name)
    assert answer_key.score == answer_key.max_score == 14, answer_key.feedback()
    blank = grade_notebook(release, afs.ASSIGNMENT.name)
    assert blank.score == 0
    assert all(part.mistake == "not_written" for part in blank.parts), blank.feedback()
