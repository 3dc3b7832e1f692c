"""Checks that hold on mistakes nobody wrote down, in-process (no engine): tests built from
the class of a mistake, applied to every part where it can occur.

* A call that changes its inputs (their values, or requires_grad) loses the part's points,
  whatever the part, named `changed_input`; an output that shares memory with an input, where
  new tensors are asked, `aliased_output`. The facts come back as tensors and are compared
  on the trusted side (`grading.judge`).
* ReLU's slope at 0 is 0 wherever the prose defines it, and the cases hold exact zeros there.
* A name is given for what its variants share, and withheld where its explanation would be
  false; a message does not depend on the order of a set.
"""

import inspect
import os
import re
import subprocess
import sys
from dataclasses import replace

import nbformat
import pytest
import torch
from conftest import grade

from autograder.course import REPO
from autograder.kit.assignment_parts import autograd_from_scratch as afs_kit
from autograder.kit.diagnosis import KnownMistake
from autograder.kit.grading import call_student, grade_outcomes, grade_part, judge
from autograder.kit.parts import INPUTS_AFTER, Case, Part
from autograder.kit.tolerances import EXACT
from autograder.references import autograd_from_scratch as afs
from autograder.references import get
from autograder.references.graded import COMPUTED, grade_with_references
from autograder.submissions import Edit, answered, defined_names, student_answers

ASSIGNMENTS = ("nn_from_scratch", "single_neuron", "autograd_basics", "two_layer_net",
               "autograd_from_scratch")
# Every part whose student function is given the case's tensors (the Value class is given
# numbers read off them, never the tensors), the timed one included; the untimed ones (a
# timed call gives back its input's values, not its flags).
EVERY_PART = [(assignment, part.id) for assignment in ASSIGNMENTS
              for part in get(assignment).parts if part.function != "Value"]
PARTS = [(assignment, part_id) for assignment, part_id in EVERY_PART
         if not get(assignment).part(part_id).timed]
REFUSE_LOOPS = {("two_layer_net", "relu_grad_vectorized")}  # its own check reads the source


def answer_key(assignment: str, function: str):
    return defined_names(assignment)[function]


def then_on_first_tensor(function, change):
    """function, which then applies change to the first tensor it was given."""
    def changed(*args):
        result = function(*args)
        first = next(arg for arg in args if isinstance(arg, torch.Tensor))
        change(first)
        return result
    return changed


@pytest.mark.parametrize(("assignment", "part_id"), EVERY_PART,
                         ids=[f"{a}-{p}" for a, p in EVERY_PART])
def test_a_right_answer_that_changes_an_input_loses_the_points(assignment, part_id):
    function = answer_key(assignment, get(assignment).part(part_id).function)
    for kind in ("visible", "hidden"):
        for change in (lambda t: t.detach().add_(1),
                       lambda t: t.detach().copy_(t.detach().flip(0))):
            result = grade(assignment, part_id, then_on_first_tensor(function, change), kind)
            assert (result.score, result.mistake) == (0, "changed_input"), result.message
            assert "in place" in result.message


@pytest.mark.parametrize(("assignment", "part_id"), PARTS, ids=[f"{a}-{p}" for a, p in PARTS])
def test_switching_requires_grad_on_an_input_loses_the_points(assignment, part_id):
    part = get(assignment).part(part_id)
    function = answer_key(assignment, part.function)
    floating = then_on_first_tensor(
        function, lambda t: t.requires_grad_() if t.is_floating_point() else None)
    result = grade(assignment, part_id, floating)
    first = next(value for value in part.cases("hidden", 1)[0].args.values()
                 if isinstance(value, torch.Tensor))
    if first.is_floating_point() and (assignment, part_id) in REFUSE_LOOPS:
        # the wrapper finds the tensor with a generator: a part that refuses loops says so
        assert (result.score, result.mistake) == (0, "python_loop"), result.message
    elif first.is_floating_point():
        assert (result.score, result.mistake) == (0, "changed_input"), result.message
        assert "requires_grad" in result.message


class _Identity:
    """Expectations for a toy part whose reference is its input."""

    def reference(self, part, case):
        return {"y": case.args["x"]}

    def mistakes(self, part, case):
        return iter(())


def test_where_new_tensors_are_asked_an_output_may_not_share_an_inputs_memory():
    part = Part("copy", "copy", points=1, returns="y", tolerance=EXACT, new_tensors=True)
    cases = [Case("a case", {"x": torch.linspace(-1, 1, 6, dtype=torch.float64)})]
    for shares in (lambda x: x, lambda x: x[:], lambda x: x.view(2, 3).view(6)):
        result = grade_part(part, shares, cases, _Identity())
        assert (result.score, result.mistake) == (0, "aliased_output"), result.message
    assert grade_part(part, lambda x: x.clone(), cases, _Identity()).passed
    # Where the prose does not ask for new tensors, returning the input is no mistake.
    assert grade_part(replace(part, new_tensors=False), lambda x: x, cases, _Identity()).passed


NEW_TENSORS_ASKED = re.compile(r"return\s+new\s+(tensors|ones)", re.IGNORECASE)


def prose_asking_new_tensors(assignment: str) -> dict[str, bool]:
    """Per graded part of the source notebook: whether its prose (the markdown since the
    previous part's check) or the notebook's rules (before its first "## Part") say to
    return new tensors."""
    notebook = nbformat.read(REPO / "source" / assignment / f"{assignment}.ipynb", 4)
    part_ids = {part.id for part in get(assignment).parts}
    asked, rules, since_last = {}, None, ""
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "markdown":
            if rules is None and cell.source.startswith("## Part"):
                rules = bool(NEW_TENSORS_ASKED.search(since_last))
            since_last += cell.source
        elif grade_id in part_ids:
            asked[grade_id] = bool(rules) or bool(NEW_TENSORS_ASKED.search(since_last))
            since_last = ""
    return asked


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_part_whose_prose_asks_new_tensors_checks_for_aliases(assignment):
    asked = prose_asking_new_tensors(assignment)
    marked = {part.id: part.new_tensors for part in get(assignment).parts}
    assert asked == marked


def test_prepare_returning_the_given_x_is_an_aliased_output():
    def returns_x(X, w1, b1, w2, b2):
        return (X, *(p.detach().clone().requires_grad_() for p in (w1, b1, w2, b2)))
    for kind in ("visible", "hidden"):
        result = grade("autograd_basics", "requires_grad", returns_x, kind)
        assert (result.score, result.mistake) == (0, "aliased_output"), result.message


def test_the_trusted_side_decides_from_the_tensors_alone():
    """What comes back is compared with what was sent: a forged or truncated report of the
    inputs is a changed input, not a pass."""
    part = Part("copy", "copy", points=1, returns="y", tolerance=EXACT)
    x = torch.linspace(-1, 1, 6, dtype=torch.float64)
    case = Case("a case", {"x": x})
    honest = {"y": x.clone(), INPUTS_AFTER: x.clone(),
              "the inputs' requires_grad after the call": torch.tensor([False])}
    assert judge(part, case, honest, _Identity()) is None
    for forged in (x[:3], x + 1e-12, torch.full_like(x, float("nan"))):
        finding = judge(part, case, {**honest, INPUTS_AFTER: forged}, _Identity())
        assert finding.mistake == "changed_input"


# ---- ReLU's slope at 0 ---------------------------------------------------------------------

ZERO_SLOPE_PARTS = {  # part: (its pre-activations on a case, how a slope of 1 at 0 reads)
    ("single_neuron", "relu_backprop"): (
        lambda args: args["x"] @ args["weight"].T,
        Edit("relu_backprop_answer", "relu_slope = (z.detach() > 0)",
             "relu_slope = (z.detach() >= 0)")),
    ("two_layer_net", "backward"): (
        lambda args: args["x"] @ args["w1"],
        Edit("backward_answer", "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
             "grad_h = grad_y_pred.mm(w2.t())\n    grad_h[h < 0] = 0")),
    # train runs backward: the same mistake costs its points too (its start, here).
    ("two_layer_net", "train"): (
        lambda args: args["x"] @ args["w1"],
        Edit("backward_answer", "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
             "grad_h = grad_y_pred.mm(w2.t())\n    grad_h[h < 0] = 0")),
    ("autograd_from_scratch", "backward"): (
        lambda args: relu_inputs(*args.values()),
        Edit("value_answer", "(1.0 if self.data > 0 else 0.0)",
             "(1.0 if self.data >= 0 else 0.0)")),
    ("two_layer_net", "relu_grad_vectorized"): (
        lambda args: args["h"], Edit("relu_grad_vectorized_answer", "(h > 0)", "(h >= 0)")),
    ("two_layer_net", "relu_grad_loop"): (
        lambda args: args["h"], Edit("relu_grad_loop_answer", "if value > 0:",
                                     "if value >= 0:")),
}


def relu_inputs(leaves, program, constants) -> torch.Tensor:
    """What each ReLU of an expression of autograd_from_scratch's is given."""
    nodes, inputs = list(leaves), []
    for (operation, first, second), c in zip(program.tolist(), constants.tolist(), strict=True):
        if operation == afs_kit.RELU:
            inputs.append(nodes[first])
        nodes.append(afs._TORCH[operation](nodes[first], nodes[second]
                                           if operation in afs_kit.BINARY else c))
    return torch.stack(inputs)


@pytest.mark.parametrize(("assignment", "part_id"), list(ZERO_SLOPE_PARTS),
                         ids=[f"{a}-{p}" for a, p in ZERO_SLOPE_PARTS])
def test_where_the_prose_defines_relus_slope_at_0_the_cases_hold_zeros_and_check_it(
        assignment, part_id):
    pre_activations, slope_1_at_0 = ZERO_SLOPE_PARTS[assignment, part_id]
    part = get(assignment).part(part_id)
    function = defined_names(assignment, (slope_1_at_0,))[part.function]
    for kind in ("visible", "hidden"):
        assert all((pre_activations(case.args) == 0).any()
                   for case in part.cases(kind, 3)), kind
        result = grade(assignment, part_id, function, kind)
        assert (result.score, result.mistake) == (0, "relu_slope_at_zero"), result.message


# ---- names from evidence -------------------------------------------------------------------

CHECK = "gradient_check_answer"
CENTRAL = ("            p.view(-1)[i] = start + h\n            up = loss(X, y, *params)\n"
           "            p.view(-1)[i] = start - h\n            down = loss(X, y, *params)\n"
           "            p.view(-1)[i] = start  # put it back before the next entry\n")


def one_sided(plus: str, minus: str, over: str) -> tuple[Edit, ...]:
    """The difference of the loss at p + plus and p + minus, over `over`."""
    body = (f"            p.view(-1)[i] = start {plus}\n            up = loss(X, y, *params)\n"
            f"            p.view(-1)[i] = start {minus}\n            down = loss(X, y, *params)\n"
            f"            p.view(-1)[i] = start  # put it back before the next entry\n")
    return (Edit(CHECK, CENTRAL, body),
            Edit(CHECK, "(up - down) / (2 * h)", f"(up - down) / {over}"))


@pytest.mark.parametrize("edits", [
    one_sided("+ h", "+ 0", "h"), one_sided("+ 0", "- h", "h"),
    one_sided("+ h", "+ 0", "(2 * h)"), one_sided("+ 0", "- h", "(2 * h)")],
    ids=["forward", "backward", "forward-over-2h", "backward-over-2h"])
def test_a_one_sided_difference_is_named_in_either_direction(edits):
    function = defined_names("nn_from_scratch", edits)["numerical_gradients"]
    result = grade("nn_from_scratch", "gradient_check", function)
    assert result.mistake == "one_sided_difference", result.message


def test_a_reversed_difference_is_named_sign_as_closely_as_a_right_one_is_right():
    """(L(p - h) - L(p + h)) / 2h is minus a right difference, within the part's tolerance
    (not within the 1e-6 a product's ratio is held to): named on every draw, visible too."""
    function = defined_names("nn_from_scratch", (
        Edit(CHECK, "(up - down) / (2 * h)", "(down - up) / (2 * h)"),))["numerical_gradients"]
    part = get("nn_from_scratch").part("gradient_check")
    for kind, seed in [("visible", 0)] + [("hidden", seed) for seed in range(6)]:
        result = grade_with_references(part, function, part.cases(kind, seed))
        assert (result.score, result.mistake) == (0, "sign"), (kind, seed, result.message)


@pytest.mark.parametrize("last", ["+ h", "- h"])
def test_a_perturbation_left_on_either_side_is_named(last):
    first = "- h" if last == "+ h" else "+ h"
    body = (f"            p.view(-1)[i] = start {first}\n            a = loss(X, y, *params)\n"
            f"            p.view(-1)[i] = start {last}\n            b = loss(X, y, *params)\n"
            f"            up, down = (b, a) if {last[0]!r} == '+' else (a, b)\n")
    function = defined_names("nn_from_scratch", (Edit(CHECK, CENTRAL, body),))[
        "numerical_gradients"]
    result = grade("nn_from_scratch", "gradient_check", function)
    assert result.mistake == "perturbation_kept", result.message


LINEAR_LOOP = ("        optimizer.zero_grad()\n        loss = loss_function(neuron(x), y)\n"
               "        loss.backward()\n        optimizer.step()\n")


@pytest.mark.parametrize(("loop", "named"), [
    ("        loss = loss_function(neuron(x), y)\n        loss.backward()\n"
     "        optimizer.zero_grad()\n        optimizer.step()\n", "cleared_before_step"),
    ("        loss = loss_function(neuron(x), y)\n        loss.backward()\n"
     "        neuron.zero_grad(set_to_none=False)\n        optimizer.step()\n",
     "cleared_before_step"),
    ("        loss = loss_function(neuron(x), y)\n        loss.backward()\n"
     "        for p in neuron.parameters():\n            p.grad = None\n"
     "        optimizer.step()\n", "cleared_before_step"),
    # The parameters never move here too, but nothing was cleared: no name.
    ("        optimizer.zero_grad()\n        loss = loss_function(neuron(x), y)\n"
     "        loss.backward()\n", None),
    ("        optimizer.zero_grad()\n        loss = loss_function(neuron(x), y)\n"
     "        optimizer.step()\n", None),
], ids=["zero_grad", "set_to_zero", "grad_none", "no_step", "no_backward"])
def test_cleared_before_step_is_named_from_what_the_step_found(loop, named):
    function = defined_names("single_neuron", (Edit("linear_answer", LINEAR_LOOP, loop),))[
        "train_linear"]
    result = grade("single_neuron", "linear", function)
    assert (result.score, result.mistake) == (0, named), result.message


VALUE_LOOP = ("        for p in model.parameters():\n            p.grad = 0.0\n"
              "        loss.backward()\n        for p in model.parameters():\n"
              "            p.data -= learning_rate * p.grad\n")


@pytest.mark.parametrize(("loop", "named"), [
    ("        loss.backward()\n        for p in model.parameters():\n            p.grad = 0.0\n"
     "        for p in model.parameters():\n            p.data -= learning_rate * p.grad\n",
     "cleared_before_step"),
    ("        loss.backward()\n        for p in model.parameters():\n            p.grad *= 0\n"
     "            p.data -= learning_rate * p.grad\n", "cleared_before_step"),
    # The parameters never move here too, but no update came after a clear: no name.
    ("        for p in model.parameters():\n            p.grad = 0.0\n        loss.backward()\n"
     "        for p in model.parameters():\n            p = p + (-learning_rate * p.grad)\n",
     None),
    ("        for p in model.parameters():\n            p.grad = 0.0\n"
     "        for p in model.parameters():\n            p.data -= learning_rate * p.grad\n",
     None),
], ids=["cleared_after_backward", "times_0_after_backward", "rebound", "no_backward"])
def test_a_value_loop_that_clears_before_its_update_is_named_from_what_it_did(loop, named):
    """The Value network's loop has no optimizer to watch: the order of what it assigns to
    the .grad and .data of the leaves a backward() filled is the evidence."""
    function = defined_names("autograd_from_scratch", (
        Edit("train_mlp_answer", VALUE_LOOP, loop),))["train_mlp"]
    result = grade("autograd_from_scratch", "train_mlp", function)
    assert (result.score, result.mistake) == (0, named), result.message
    value = function.__globals__["Value"]  # put back as it was
    assert "__setattr__" not in value.__dict__ and value.backward.__name__ == "backward"


def test_a_zero_dead_start_a_default_list_and_a_kept_gradient_get_no_false_name():
    zero = grade("single_neuron", "dead_relu", lambda x: torch.zeros(1, 1, dtype=x.dtype))
    assert zero.mistake is None and "kink" in zero.message
    shared = defined_names("single_neuron", (
        Edit("linear_answer", "def train_linear(x, y, weight, learning_rate, epochs):",
             "def train_linear(x, y, weight, learning_rate, epochs, losses=[]):"),
        Edit("linear_answer", "    losses = []\n", "")))["train_linear"]
    shared_result = grade("single_neuron", "linear", shared)
    assert shared_result.mistake is None and "earlier call" in shared_result.message
    fixed = defined_names("single_neuron", (Edit("linear_answer", "range(epochs)",
                                                 "range(100)"),))["train_linear"]
    assert grade("single_neuron", "linear", fixed).mistake == "wrong_epochs"
    kept = defined_names("autograd_basics", (
        Edit("losses_answer", "sum_grad_w2 = w2.grad.clone()\n    w2.grad = None\n",
             "sum_grad_w2 = w2.grad\n    w2.grad.zero_()\n"),
        Edit("losses_answer", "mse_grad_w2 = w2.grad.clone()", "mse_grad_w2 = w2.grad")))[
        "sum_and_mean_losses"]
    for kind in ("visible", "hidden"):
        result = grade("autograd_basics", "losses", kept, kind)
        assert result.mistake is None and "exactly the values of" in result.message


def test_a_plain_wrong_shape_is_named_shape():
    function = defined_names("two_layer_net", (Edit(
        "backward_answer", "loss = (y_pred - y).pow(2).sum()",
        "loss = (y_pred - y).pow(2).sum(0)"),))["backward"]
    result = grade("two_layer_net", "backward", function)
    assert result.mistake == "shape" and "has shape" in result.message


def test_a_known_mistake_names_nothing_where_it_does_not_show():
    """The relu_slope_at_zero computation agrees with the reference where no z is 0."""
    part = get("single_neuron").part("relu_backprop")
    (known,) = part.mistakes
    case = part.cases("hidden", 3)[0]
    x = case.args["x"][:-1]  # without its example at x = 0
    args = {**case.args, "x": x, "y": case.args["y"][:-1]}
    (computed,) = known.compute(part.reference, args)
    assert torch.equal(computed["relu_slope"], part.reference(*args.values())["relu_slope"])
    assert isinstance(known.recognised(), KnownMistake)


SOFTMAX_WITH_HELPERS = '''
def _normalised(e):
    return e / e.sum(dim=1, keepdim=True)


def _shifted(logits):
    top = logits.max(dim=1, keepdim=True).values
    return torch.softmax(logits, dim=1) * 0 + torch.exp(logits - top)


def _scaled(e):
    return torch.nn.functional.normalize(e, p=1, dim=1) * 0 + e


def softmax_cross_entropy(logits, labels):
    probabilities = _normalised(_scaled(_shifted(logits))) + _normalised(_shifted(logits)) * 0
    logits = logits.clone().requires_grad_()
    loss = nn.CrossEntropyLoss()(logits, labels)
    loss.backward()
    return probabilities, loss, logits.grad
'''
ROUTE_MESSAGE = '''
import sys
from autograder import references
from autograder.engine.child import code_cells
from autograder.kit.routes import route_in_source
part = references.get("autograd_basics").part("softmax_cross_entropy")
print(route_in_source(sys.stdin.buffer.read(), part.function, code_cells, part.call.route,
                      part.returns))
'''


@pytest.mark.slow
def test_a_route_message_is_the_same_whatever_the_hash_seed():
    answers = student_answers("autograd_basics")
    answers["softmax_cross_entropy_answer"] = SOFTMAX_WITH_HELPERS
    release = REPO / "assignments" / "autograd_basics" / "autograd_basics.ipynb"
    notebook = nbformat.writes(answered(release, answers)).encode()
    messages = {subprocess.run([sys.executable, "-c", ROUTE_MESSAGE], input=notebook,
                               capture_output=True, check=True,
                               env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
                for seed in range(4)}
    assert len(messages) == 1 and b"computes probabilities with" in messages.pop()


# ---- names withheld or given from evidence (the blind corpus's misses, as classes) --------

TRAINING_PARTS = [("nn_from_scratch", "train"), ("nn_from_scratch", "learn_2d"),
                  ("autograd_from_scratch", "train_mlp"),
                  ("autograd_from_scratch", "torch_module")]
RATE_IN_CODE = re.compile(r"\b(?:learning_rate|lr)=(\d+\.\d*)")


def with_argument(function, name: str, value):
    """function, called with its argument `name` replaced by value."""
    def called(*args):
        bound = inspect.signature(function).bind(*args)
        bound.arguments[name] = value
        return function(*bound.args)
    return called


def notebook_rates(assignment: str) -> set[float]:
    """The learning rates written in the source notebook's code (a student may copy one)."""
    notebook = nbformat.read(REPO / "source" / assignment / f"{assignment}.ipynb", 4)
    return {float(rate) for cell in notebook.cells if cell.cell_type == "code"
            for rate in RATE_IN_CODE.findall(cell.source)}


@pytest.mark.parametrize(("assignment", "part_id"), TRAINING_PARTS,
                         ids=[f"{a}-{p}" for a, p in TRAINING_PARTS])
def test_a_rate_of_the_notebook_written_into_the_loop_is_named(assignment, part_id):
    part = get(assignment).part(part_id)
    function = answer_key(assignment, part.function)
    rates = notebook_rates(assignment)
    assert rates
    for rate in sorted(rates):
        result = grade(assignment, part_id, with_argument(function, "learning_rate", rate))
        # (every hidden case may use that rate; where a missing rate is a known mistake, a
        # rate of 1 is one)
        if not result.passed:
            assert result.mistake == "wrong_learning_rate" or rate == 1.0 and \
                result.mistake == "learning_rate_scale", (rate, result.message)


def in_other_order(function, order):
    def reordered(*args):
        result = function(*args)
        return tuple(result[i] for i in order)
    return reordered


@pytest.mark.parametrize(("assignment", "part_id", "order"), [
    ("nn_from_scratch", "gradient_check", (0, 2, 1, 3)),
    ("autograd_from_scratch", "mlp_gradients", (0, 1, 3, 2, 4))], ids=["nn", "afs"])
def test_results_returned_in_another_order_are_not_named_transposed(assignment, part_id,
                                                                     order):
    function = answer_key(assignment, get(assignment).part(part_id).function)
    for kind in ("visible", "hidden"):
        result = grade(assignment, part_id, in_other_order(function, order), kind)
        assert result.mistake == "swapped_outputs", result.message


def test_a_known_mistakes_name_is_withheld_when_a_helper_failed_with_another():
    """A Value whose ** drops out.grad trains as if the rate were N times larger: that is
    the outputs of mean_vs_sum, and no evidence of it."""
    part = get("autograd_from_scratch").part("train_mlp")
    train_mlp = answer_key("autograd_from_scratch", "train_mlp")
    cases = part.cases("hidden", 1)
    rate = cases[0].args["learning_rate"]
    scaled = with_argument(train_mlp, "learning_rate", rate * len(cases[0].args["y"]))
    alone = grade_with_references(part, scaled, cases)
    assert alone.mistake == "mean_vs_sum", alone.message
    outcomes = [call_student(part, scaled, case) for case in cases]
    helper_wrong = grade_outcomes(part, cases, outcomes, COMPUTED,
                                  helpers_failed_with=frozenset({"missing_chain_factor"}))
    assert helper_wrong.score == 0 and helper_wrong.mistake is None, helper_wrong.message
    assert "batch size" not in helper_wrong.message
