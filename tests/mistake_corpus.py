"""A labelled corpus of wrong submissions: for each assignment, at least two submissions per
mistake the diagnosis names, where the mistake can occur in that assignment.

Each submission is the source notebook's solution with a few `Edit`s, the way a student
gets it wrong. `fails` lists every part that must fail, with the mistake its diagnosis must
name (None: it fails, and no name is expected, typically a later part that calls the wrong
one); every other part must score full marks. The first entry of `fails` is the part where
the mistake is made.

Two kinds of entry: `CORPUS` holds mistakes the vocabulary names (`Wrong.mistake` is their
name); `UNNAMED` holds realistic mistakes for which no name fits (`Wrong.mistake` is None),
where the diagnosis must say what is wrong without naming a mistake (or name only a plain
fact: an exception, NaN, a boolean dtype).
"""

from dataclasses import dataclass

from autograder.submissions import Edit


@dataclass(frozen=True)
class Wrong:
    """A wrong submission, its labelled mistake, and the diagnosis each part must get."""

    student: str
    mistake: str | None
    edits: tuple[Edit, ...]
    fails: dict[str, str | None]


# Whether a wrong run overflows depends on its hidden cases: on a seed where it stays finite,
# the part fails with no name (its message says what is wrong), which is as honest.
SEED_DEPENDENT = frozenset({"not_finite"})


def labels_hold(labelled: dict[str, str | None], got: dict[str, str | None]) -> bool:
    """Whether the parts that failed (got: each with the name it was given) are the labelled
    ones, each named as its label says (a `not_finite` label also holds with no name)."""
    return set(got) == set(labelled) and all(
        got[part] == name or (name in SEED_DEPENDENT and got[part] is None)
        for part, name in labelled.items())


def edits(cell: str, *pairs: tuple[str, str]) -> tuple[Edit, ...]:
    """Edits of one answer cell: (old, new) pairs."""
    return tuple(Edit(cell, old, new) for old, new in pairs)


def wrong(student: str, mistake: str, edit: tuple[Edit, ...], *parts: str,
          **also: str | None) -> Wrong:
    """A mistake that makes each of `parts` fail with it (and the parts in `also` with
    the diagnosis given there)."""
    return Wrong(student, mistake, edit, {**dict.fromkeys(parts, mistake), **also})


# ---- nn_from_scratch ------------------------------------------------------------------------

STEP, TRAIN = "train_step_answer", "train_answer"
CHECK, FIT = "gradient_check_answer", "learn_2d_answer"
UPDATES = ("w2 = w2 + ", "b2 = b2 + ", "w1 = w1 + ", "b1 = b1 + ")


def every_update(old: str, new: str) -> tuple[Edit, ...]:
    """The same change in the four updates of train_step (`old` follows "p = p + ")."""
    return tuple(Edit(STEP, update + old, update.replace("+ ", "") + new) for update in UPDATES)


def nn_wrong(student: str, mistake: str, edit: tuple[Edit, ...], *, train: str | None = "same",
             first: str = "train_step", **also: str | None) -> Wrong:
    """A mistake made in `first` (train_step by default), which train inherits, and fit
    (learn_2d) too, without a name of its own unless `also` gives one."""
    fails = {first: mistake}
    if train is not None and first != "train":
        fails["train"] = mistake if train == "same" else train
        if first != "learn_2d":
            fails["learn_2d"] = None
    return Wrong(student, mistake, edit, {**fails, **also})


NN_FROM_SCRATCH = [
    nn_wrong("sign_error_term", "sign", edits(STEP, ("(y - output) * sigmoid_delta",
                                                     "(output - y) * sigmoid_delta"))),
    nn_wrong("sign_updates", "sign", every_update("learning_rate", "- learning_rate")),
    nn_wrong("factor_2_error_term", "factor_of_2", edits(STEP, ("d_outp = (y - output)",
                                                                "d_outp = 2 * (y - output)"))),
    nn_wrong("factor_2_updates", "factor_of_2",
             every_update("learning_rate", "+ 2 * learning_rate")),
    nn_wrong("mean_over_batch", "mean_vs_sum", edits(STEP, (
        "d_outp = (y - output) * sigmoid_delta(output)",
        "d_outp = (y - output) * sigmoid_delta(output) / X.shape[0]"))),
    nn_wrong("mse_gradient", "mean_vs_sum", edits(STEP, (
        "d_outp = (y - output)", "d_outp = 2 * (y - output) / y.numel()"))),
    nn_wrong("no_learning_rate", "learning_rate_scale", every_update("learning_rate * ", "+ ")),
    nn_wrong("learning_rate_twice", "learning_rate_scale",
             every_update("learning_rate", "+ learning_rate * learning_rate")),
    nn_wrong("transposed_w1_in_forward", "transposed", edits(
        "forward_answer", ("torch.mm(X, w1)", "torch.mm(X, w1.t())")), first="forward",
             gradient_check="transposed", train_step="transposed", train="transposed",
             learn_2d="transposed"),
    nn_wrong("transposed_w1_update", "transposed", edits(STEP, ("torch.mm(X.t(), d_hidn)",
                                                                "torch.mm(d_hidn.t(), X)")),
             learn_2d="transposed"),
    nn_wrong("b1_summed_over_units", "bias_wrong_axis", edits(STEP, (
        "d_hidn.sum(0, keepdim=True)", "d_hidn.sum(1, keepdim=True)"))),
    nn_wrong("b2_summed_over_outputs", "bias_wrong_axis", edits(STEP, (
        "d_outp.sum(0, keepdim=True)", "d_outp.sum(1, keepdim=True)"))),
    nn_wrong("tutorial_d_hidn_sum", "summed_all_entries", edits(STEP, (
        "d_hidn.sum(0, keepdim=True)", "d_hidn.sum()"))),
    nn_wrong("torch_sum_of_d_hidn", "summed_all_entries", edits(STEP, (
        "d_hidn.sum(0, keepdim=True)", "torch.sum(d_hidn)"))),
    nn_wrong("sigmoid_of_activation", "sigmoid_twice", edits("sigmoid_delta_answer", (
        "return a * (1 - a)", "return sigmoid_activation(a) * (1 - sigmoid_activation(a))")),
             first="sigmoid_delta", train_step="sigmoid_twice"),
    nn_wrong("torch_sigmoid_of_activation", "sigmoid_twice", edits("sigmoid_delta_answer", (
        "return a * (1 - a)", "return torch.sigmoid(a) * (1 - torch.sigmoid(a))")),
             first="sigmoid_delta", train_step="sigmoid_twice"),
    # On two moons, at learning rate 2, the slope taken at z makes the training overflow.
    nn_wrong("delta_at_z2", "delta_of_z", edits(STEP, ("sigmoid_delta(output)",
                                                       "sigmoid_delta(z2)")),
             learn_2d="not_finite"),
    nn_wrong("delta_at_z1", "delta_of_z", edits(STEP, ("sigmoid_delta(a1)", "sigmoid_delta(z1)")),
             learn_2d="not_finite"),
    nn_wrong("fixed_500_epochs", "wrong_epochs", edits(TRAIN, ("range(epochs)", "range(500)")),
             first="train"),
    nn_wrong("one_epoch_too_many", "wrong_epochs",
             edits(TRAIN, ("range(epochs)", "range(epochs + 1)")), first="train"),
    nn_wrong("fixed_rate_0_1", "wrong_learning_rate", edits(TRAIN, (
        "train_step(X, y, w1, b1, w2, b2, learning_rate)",
        "train_step(X, y, w1, b1, w2, b2, 0.1)")), first="train"),
    nn_wrong("fixed_rate_0_5", "wrong_learning_rate", edits(TRAIN, (
        "train_step(X, y, w1, b1, w2, b2, learning_rate)",
        "train_step(X, y, w1, b1, w2, b2, 0.5)")), first="train"),
    nn_wrong("float32_sigmoid", "float32", edits("sigmoid_activation_answer", (
        "torch.exp(-z)", "torch.exp(-z.float())")), first="sigmoid_activation",
             forward="float32", gradient_check="float32", train_step="float32",
             train="float32", learn_2d="float32"),
    # Converted back to float64, the rounding shows as float32's in the sigmoid and the
    # activations; the later parts only inherit an error, which names nothing there.
    Wrong("float32_arithmetic", "float32", edits("sigmoid_activation_answer", (
        "return 1 / (1 + torch.exp(-z))", "return (1 / (1 + torch.exp(-z.float()))).double()")),
          {"sigmoid_activation": "float32", "forward": "float32", "gradient_check": None,
           "train_step": None, "train": None, "learn_2d": None}),
    nn_wrong("loss_after_the_step", "loss_after_update", edits(TRAIN, (
        "        output = forward(X, w1, b1, w2, b2)[3]\n"
        "        losses.append(0.5 * ((y - output) ** 2).sum().item())\n"
        "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n",
        "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n"
        "        output = forward(X, w1, b1, w2, b2)[3]\n"
        "        losses.append(0.5 * ((y - output) ** 2).sum().item())\n")), first="train"),
    nn_wrong("loss_of_the_new_parameters", "loss_after_update", edits(TRAIN, (
        "        losses.append(0.5 * ((y - output) ** 2).sum().item())\n"
        "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n",
        "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n"
        "        new_output = forward(X, w1, b1, w2, b2)[3]\n"
        "        losses.append(0.5 * ((y - new_output) ** 2).sum().item())\n")), first="train"),
    nn_wrong("torch_sigmoid", "route_not_taught", edits("sigmoid_activation_answer", (
        "return 1 / (1 + torch.exp(-z))", "return torch.sigmoid(z)")),
             first="sigmoid_activation", train=None),
    nn_wrong("sigmoid_method", "route_not_taught", edits("sigmoid_activation_answer", (
        "return 1 / (1 + torch.exp(-z))", "return z.sigmoid()")),
             first="sigmoid_activation", train=None),
    nn_wrong("mean_squared_losses_recorded", "mean_vs_sum", edits(TRAIN, (
        "losses.append(0.5 * ((y - output) ** 2).sum().item())",
        "losses.append(((y - output) ** 2).mean().item())")), first="train"),
    # The gradient check (Part 4).
    nn_wrong("forward_difference", "one_sided_difference", edits(CHECK, (
        "p.view(-1)[i] = start - h", "p.view(-1)[i] = start"), (
        "(up - down) / (2 * h)", "(up - down) / h")), first="gradient_check", train=None),
    nn_wrong("minus_side_at_p", "one_sided_difference", edits(CHECK, (
        "p.view(-1)[i] = start - h", "p.view(-1)[i] = start")), first="gradient_check",
             train=None),
    nn_wrong("divided_by_h", "factor_of_2", edits(CHECK, (
        "(up - down) / (2 * h)", "(up - down) / h")), first="gradient_check", train=None),
    nn_wrong("entry_left_at_minus_h", "perturbation_kept", edits(CHECK, (
        "            p.view(-1)[i] = start  # put it back before the next entry\n", "")),
             first="gradient_check", train=None),
    nn_wrong("in_place_steps_never_undone", "perturbation_kept", edits(CHECK, (
        "p.view(-1)[i] = start + h", "p.view(-1)[i] += h"), (
        "p.view(-1)[i] = start - h", "p.view(-1)[i] -= 2 * h"), (
        "            p.view(-1)[i] = start  # put it back before the next entry\n", "")),
             first="gradient_check", train=None),
    # Mini-batches on two moons (Part 7).
    nn_wrong("whole_batches_only", "last_batch_dropped", edits(FIT, (
        "range(0, len(X), batch_size)", "range(0, len(X) - batch_size + 1, batch_size)")),
             first="learn_2d", train=None),
    nn_wrong("floor_division_batches", "last_batch_dropped", edits(FIT, (
        "        for start in range(0, len(X), batch_size):\n"
        "            rows = slice(start, start + batch_size)\n",
        "        for batch in range(len(X) // batch_size):\n"
        "            rows = slice(batch * batch_size, (batch + 1) * batch_size)\n")),
             first="learn_2d", train=None),
    nn_wrong("one_step_per_epoch", "full_batch", edits(FIT, (
        "        for start in range(0, len(X), batch_size):\n"
        "            rows = slice(start, start + batch_size)\n"
        "            w1, b1, w2, b2 = train_step(X[rows], y[rows], w1, b1, w2, b2, "
        "learning_rate)\n",
        "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n")),
             first="learn_2d", train=None),
    nn_wrong("the_whole_set_as_one_batch", "full_batch", edits(FIT, (
        "range(0, len(X), batch_size)", "range(0, len(X), len(X))"), (
        "slice(start, start + batch_size)", "slice(start, start + len(X))")),
             first="learn_2d", train=None),
    nn_wrong("fit_losses_without_the_half", "factor_of_2", edits(FIT, (
        "train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))",
        "train_losses.append(((y - forward(X, w1, b1, w2, b2)[3]) ** 2).mean().item())")),
             first="learn_2d", train=None),
    nn_wrong("backward_difference", "one_sided_difference", edits(CHECK, (
        "p.view(-1)[i] = start + h", "p.view(-1)[i] = start"), (
        "(up - down) / (2 * h)", "(up - down) / h")), first="gradient_check", train=None),
    nn_wrong("entry_left_at_plus_h", "perturbation_kept", edits(CHECK, (
        "            p.view(-1)[i] = start + h\n            up = loss(X, y, *params)\n"
        "            p.view(-1)[i] = start - h\n            down = loss(X, y, *params)\n"
        "            p.view(-1)[i] = start  # put it back before the next entry\n",
        "            p.view(-1)[i] = start - h\n            down = loss(X, y, *params)\n"
        "            p.view(-1)[i] = start + h\n            up = loss(X, y, *params)\n")),
             first="gradient_check", train=None),
    # Inputs changed in place: the outputs are right, the caller's tensors are not.
    nn_wrong("updates_in_place", "changed_input", tuple(
        Edit(STEP, update, update.replace(" = ", " += ", 1).replace(
            update.split(" = ")[0] + " + ", "")) for update in UPDATES),
             learn_2d="changed_input"),
    nn_wrong("parameters_copied_back", "changed_input", edits(TRAIN, (
        "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n",
        "        for p, new in zip((w1, b1, w2, b2), train_step(X, y, w1, b1, w2, b2, "
        "learning_rate)):\n            p.copy_(new)\n")), first="train"),
    nn_wrong("fit_losses_after_the_epoch", "loss_after_update", edits(FIT, (
        "        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))\n"
        "        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))\n",
        ""), (
        "learning_rate)\n    return",
        "learning_rate)\n"
        "        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))\n"
        "        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))\n"
        "    return")), first="learn_2d", train=None),
]


# ---- single_neuron --------------------------------------------------------------------------

LINEAR, NEURON = "linear_answer", "bias_answer"
BOTH_NEURONS = ("bias", "several_inputs")


SINGLE_NEURON = [
    wrong("no_zero_grad_linear", "missing_zero_grad",
          edits(LINEAR, ("        optimizer.zero_grad()\n", "")), "linear"),
    wrong("no_zero_grad_neuron", "missing_zero_grad",
          edits(NEURON, ("        optimizer.zero_grad()\n", "")), *BOTH_NEURONS),
    wrong("error_term_reversed", "sign", edits("relu_backprop_answer", (
        "2 * (output.detach() - y)", "2 * (y - output.detach())")), "relu_backprop"),
    wrong("ascent_on_the_loss", "sign", edits(NEURON, (
        "loss.backward()", "(-loss).backward()")), *BOTH_NEURONS),
    wrong("no_2_in_the_derivative", "factor_of_2", edits("relu_backprop_answer", (
        "2 * (output.detach() - y)", "(output.detach() - y)")), "relu_backprop"),
    wrong("doubled_loss", "factor_of_2", edits("leaky_relu_answer", (
        "nn.MSELoss()(output, y).backward()", "(2 * nn.MSELoss()(output, y)).backward()")),
          "leaky_relu"),
    wrong("derivative_without_mean", "mean_vs_sum", edits("relu_backprop_answer", (
        "2 * (output.detach() - y) / y.shape[0]", "2 * (output.detach() - y)")),
          "relu_backprop"),
    wrong("summed_loss", "mean_vs_sum", edits(LINEAR, (
        "loss_function = nn.MSELoss()", "loss_function = nn.MSELoss(reduction='sum')")),
          "linear"),
    wrong("fixed_100_epochs", "wrong_epochs", edits(LINEAR, ("range(epochs)",
                                                                     "range(100)")), "linear"),
    wrong("one_epoch_short", "wrong_epochs", edits(NEURON, (
        "range(epochs)", "range(epochs - 1)")), *BOTH_NEURONS),
    wrong("fixed_rate_linear", "wrong_learning_rate", edits(LINEAR, (
        "lr=learning_rate", "lr=0.1")), "linear"),
    wrong("fixed_rate_neuron", "wrong_learning_rate", edits(NEURON, (
        "lr=learning_rate", "lr=0.3")), *BOTH_NEURONS),
    wrong("relu_gradient", "relu_not_leaky", edits("leaky_relu_answer", (
        "nn.LeakyReLU(negative_slope)(neuron(x))", "nn.ReLU()(neuron(x))")), "leaky_relu"),
    wrong("relu_neuron", "relu_not_leaky", edits(NEURON, (
        "nn.LeakyReLU(negative_slope)", "nn.ReLU()")), *BOTH_NEURONS),
    wrong("live_start", "not_dead", edits("dead_relu_answer", (
        "return -sign *", "return sign *")), "dead_relu"),
    wrong("always_positive_start", "not_dead", edits("dead_relu_answer", (
        "return -sign *", "return")), "dead_relu"),
    wrong("slope_1_at_zero", "relu_slope_at_zero", edits("relu_backprop_answer", (
        "relu_slope = (z.detach() > 0)", "relu_slope = (z.detach() >= 0)")), "relu_backprop"),
    wrong("slope_as_one_minus_negative", "relu_slope_at_zero", edits("relu_backprop_answer", (
        "relu_slope = (z.detach() > 0).to(x.dtype)",
        "relu_slope = 1 - (z.detach() < 0).to(x.dtype)")), "relu_backprop"),
    wrong("neuron_shares_the_weight", "changed_input", edits(LINEAR, (
        "    with torch.no_grad():\n        neuron.weight.copy_(weight)\n",
        "    neuron.weight = nn.Parameter(weight)\n    with torch.no_grad():\n")),
          "linear", *BOTH_NEURONS),
    wrong("gradient_on_the_weight_given", "changed_input", edits("relu_backprop_answer", (
        "    neuron = neuron_with(weight)\n    z = neuron(x)\n",
        "    weight.requires_grad_()\n    z = x @ weight.T\n"), (
        "neuron.weight.grad", "weight.grad")), "relu_backprop"),
    wrong("zero_grad_after_backward", "cleared_before_step", edits(LINEAR, (
        "        optimizer.zero_grad()\n        loss = loss_function(neuron(x), y)\n"
        "        loss.backward()\n",
        "        loss = loss_function(neuron(x), y)\n        loss.backward()\n"
        "        optimizer.zero_grad()\n")), "linear"),
    wrong("neuron_cleared_before_step", "cleared_before_step", edits(NEURON, (
        "        loss.backward()\n        optimizer.step()\n",
        "        loss.backward()\n        model.zero_grad()\n        optimizer.step()\n")),
          *BOTH_NEURONS),
    wrong("float32_linear_layer", "float32", edits(LINEAR, (
        ", dtype=weight.dtype)", ")")), "linear", "relu_backprop", "leaky_relu",
          *BOTH_NEURONS),
    wrong("float32_start", "float32", edits("dead_relu_answer", (
        "torch.ones(1, 1, dtype=x.dtype)", "torch.ones(1, 1)")), "dead_relu"),
    wrong("default_slope_neuron", "default_negative_slope", edits(NEURON, (
        "nn.LeakyReLU(negative_slope)", "nn.LeakyReLU()")), *BOTH_NEURONS),
    wrong("default_slope_gradient", "default_negative_slope", edits("leaky_relu_answer", (
        "nn.LeakyReLU(negative_slope)(neuron(x))",
        "torch.nn.functional.leaky_relu(neuron(x))")), "leaky_relu"),
    wrong("linear_loss_after_step", "loss_after_update", edits(LINEAR, (
        "        optimizer.step()\n        losses.append(loss.item())\n",
        "        optimizer.step()\n"
        "        losses.append(loss_function(neuron(x), y).item())\n")), "linear"),
    wrong("neuron_loss_after_step", "loss_after_update", edits(NEURON, (
        "        optimizer.step()\n        losses.append(loss.item())\n",
        "        optimizer.step()\n        with torch.no_grad():\n"
        "            losses.append(loss_function(model(x), y).item())\n")), *BOTH_NEURONS),
]


# ---- autograd_basics ------------------------------------------------------------------------

PREPARE, ACCUMULATE = "requires_grad_answer", "accumulate_answer"
MANUAL, SGD, LOSSES = "manual_step_answer", "sgd_step_answer", "losses_answer"
SOFTMAX = "softmax_cross_entropy_answer"
LEAVES = "w1, b1, w2, b2 = (p.clone().requires_grad_() for p in (w1, b1, w2, b2))"
IN_PLACE = ("    with torch.no_grad():\n        for p in params:\n"
            "            p -= learning_rate * p.grad")


AUTOGRAD_BASICS = [
    # prepare changes the caller's X: so do the parts that call it.
    wrong("input_requires_grad", "requires_grad_on_input", edits(PREPARE, (
        "return X.clone(), w1", "return X.requires_grad_(), w1")), "requires_grad",
          losses="changed_input", accumulate="changed_input"),
    wrong("input_clone_requires_grad", "requires_grad_on_input", edits(PREPARE, (
        "return X.clone(), w1", "return X.clone().requires_grad_(), w1")), "requires_grad"),
    wrong("no_requires_grad", "missing_requires_grad", edits(PREPARE, (
        LEAVES, "w1, b1, w2, b2 = (p.clone() for p in (w1, b1, w2, b2))")), "requires_grad",
          "losses", "accumulate"),
    wrong("b2_forgotten", "missing_requires_grad", edits(PREPARE, (
        LEAVES, "w1, b1, w2 = (p.clone().requires_grad_() for p in (w1, b1, w2))")),
          "requires_grad"),
    wrong("leaves_times_one", "not_a_leaf", edits(PREPARE, (
        LEAVES, LEAVES.replace("requires_grad_()", "requires_grad_() * 1"))), "requires_grad",
          losses="exception", accumulate="exception"),
    wrong("clone_after_requires_grad", "not_a_leaf", edits(PREPARE, (
        LEAVES, LEAVES.replace("requires_grad_()", "requires_grad_().clone()"))),
          "requires_grad", losses="exception", accumulate="exception"),
    wrong("no_copies", "accumulation_lost", edits(ACCUMULATE, *(
        (f"{name} = w1.grad.clone()", f"{name} = w1.grad")
        for name in ("after_one", "after_two", "after_zeroing"))), "accumulate"),
    wrong("cleared_between_calls", "accumulation_lost", edits(ACCUMULATE, (
        "    after_one = w1.grad.clone()\n",
        "    after_one = w1.grad.clone()\n    w1.grad = None\n")), "accumulate"),
    wrong("never_zeroed", "missing_zero_grad", edits(ACCUMULATE, (
        "    w1.grad.zero_()\n", "")), "accumulate"),
    wrong("sgd_without_zero_grad", "missing_zero_grad", edits(SGD, (
        "    optimizer.zero_grad()\n", "")), "sgd_step"),
    wrong("manual_without_clearing", "missing_zero_grad", edits(MANUAL, (
        "    for p in params:\n        p.grad = None\n", "")), "manual_step"),
    wrong("update_outside_no_grad", "in_place_on_leaf", edits(MANUAL, (
        IN_PLACE, "    for p in params:\n        p -= learning_rate * p.grad")), "manual_step"),
    wrong("sub_outside_no_grad", "in_place_on_leaf", edits(MANUAL, (
        IN_PLACE, "    for p in params:\n        p.sub_(learning_rate * p.grad)")),
          "manual_step"),
    wrong("rebound_in_manual_step", "rebound_parameter", edits(MANUAL, (
        "p -= learning_rate * p.grad", "p = p - learning_rate * p.grad")), "manual_step"),
    wrong("rebound_list_in_sgd_step", "rebound_parameter", edits(SGD, (
        "optimizer.step()", "params = [p - learning_rate * p.grad for p in params]")),
          "sgd_step"),
    wrong("ascent_in_manual_step", "sign", edits(MANUAL, (
        "p -= learning_rate * p.grad", "p += learning_rate * p.grad")), "manual_step"),
    wrong("negative_sum_loss", "sign", edits(LOSSES, (
        "sum_loss = 0.5 *", "sum_loss = -0.5 *")), "losses"),
    wrong("sum_loss_without_half", "factor_of_2", edits(LOSSES, (
        "sum_loss = 0.5 * ((output - y) ** 2).sum()", "sum_loss = ((output - y) ** 2).sum()")),
          "losses"),
    wrong("accumulated_loss_without_half", "factor_of_2", edits(ACCUMULATE, (
        "(0.5 * ((output - y) ** 2).sum()).backward()", "((output - y) ** 2).sum().backward()")),
          "accumulate"),
    wrong("sgd_on_summed_loss", "mean_vs_sum", edits(SGD, (
        "nn.MSELoss()", "nn.MSELoss(reduction='sum')")), "sgd_step"),
    wrong("manual_on_summed_loss", "mean_vs_sum", edits(MANUAL, (
        "nn.MSELoss()", "nn.MSELoss(reduction='sum')")), "manual_step"),
    wrong("manual_without_rate", "learning_rate_scale", edits(MANUAL, (
        "p -= learning_rate * p.grad", "p -= p.grad")), "manual_step"),
    wrong("manual_rate_twice", "learning_rate_scale", edits(MANUAL, (
        "p -= learning_rate * p.grad", "p -= learning_rate * learning_rate * p.grad")),
          "manual_step"),
    wrong("float32_scale", "float32", edits(LOSSES, (
        "torch.tensor(2 / y.numel(), dtype=y.dtype)", "torch.tensor(2 / y.numel())")),
          "losses"),
    wrong("float32_probabilities", "float32", edits(
        "softmax_cross_entropy_answer", ("probabilities = exps / exps.sum(dim=1, keepdim=True)",
                                         "probabilities = (exps / exps.sum(dim=1, "
                                         "keepdim=True)).float()")), "softmax_cross_entropy"),
    wrong("softmax_without_the_maximum", "softmax_overflow", edits(SOFTMAX, (
        "torch.exp(logits - logits.max(dim=1, keepdim=True).values)", "torch.exp(logits)")),
          "softmax_cross_entropy"),
    wrong("softmax_of_exp_over_row_sums", "softmax_overflow", edits(SOFTMAX, (
        "    exps = torch.exp(logits - logits.max(dim=1, keepdim=True).values)\n"
        "    probabilities = exps / exps.sum(dim=1, keepdim=True)\n",
        "    probabilities = logits.exp() / logits.exp().sum(1).unsqueeze(1)\n")),
          "softmax_cross_entropy"),
    wrong("softmax_over_everything", "softmax_wrong_axis", edits(SOFTMAX, (
        "exps / exps.sum(dim=1, keepdim=True)", "exps / exps.sum()")), "softmax_cross_entropy"),
    wrong("softmax_over_the_batch", "softmax_wrong_axis", edits(SOFTMAX, (
        "exps / exps.sum(dim=1, keepdim=True)", "exps / exps.sum(dim=0, keepdim=True)")),
          "softmax_cross_entropy"),
    wrong("cross_entropy_of_probabilities", "probabilities_to_cross_entropy", edits(SOFTMAX, (
        "    exps = torch.exp(logits - logits.max(dim=1, keepdim=True).values)\n"
        "    probabilities = exps / exps.sum(dim=1, keepdim=True)\n"
        "    logits = logits.clone().requires_grad_()\n"
        "    loss = nn.CrossEntropyLoss()(logits, labels)\n",
        "    logits = logits.clone().requires_grad_()\n"
        "    exps = torch.exp(logits - logits.max(dim=1, keepdim=True).values)\n"
        "    probabilities = exps / exps.sum(dim=1, keepdim=True)\n"
        "    loss = nn.CrossEntropyLoss()(probabilities, labels)\n"), (
        "return probabilities, loss", "return probabilities.detach(), loss")),
          "softmax_cross_entropy"),
    wrong("cross_entropy_of_normalised_exps", "probabilities_to_cross_entropy", edits(SOFTMAX, (
        "    logits = logits.clone().requires_grad_()\n"
        "    loss = nn.CrossEntropyLoss()(logits, labels)\n",
        "    logits = logits.clone().requires_grad_()\n"
        "    shifted = torch.exp(logits - logits.max(dim=1, keepdim=True).values)\n"
        "    loss = nn.CrossEntropyLoss()(shifted / shifted.sum(1, keepdim=True), labels)\n")),
          "softmax_cross_entropy"),
    wrong("scale_over_the_batch", "batch_not_entries", edits(LOSSES, (
        "torch.tensor(2 / y.numel(), dtype=y.dtype)",
        "torch.tensor(2 / y.shape[0], dtype=y.dtype)")),
          "losses"),
    wrong("scale_over_len", "batch_not_entries", edits(LOSSES, (
        "torch.tensor(2 / y.numel(), dtype=y.dtype)", "torch.tensor(2 / len(y), dtype=y.dtype)")),
          "losses"),
    wrong("zero_grad_before_step", "cleared_before_step", edits(SGD, (
        "    optimizer.zero_grad()\n    loss = nn.MSELoss()(forward(X, *params), y)\n"
        "    loss.backward()\n",
        "    loss = nn.MSELoss()(forward(X, *params), y)\n    loss.backward()\n"
        "    optimizer.zero_grad()\n")), "sgd_step"),
    wrong("grads_cleared_after_backward", "cleared_before_step", edits(MANUAL, (
        "    loss.backward()\n", "    loss.backward()\n    for p in params:\n"
                                "        p.grad = None\n"), (
        "            p -= learning_rate * p.grad",
        "            if p.grad is not None:\n                p -= learning_rate * p.grad")),
          "manual_step"),
    wrong("local_gradient_by_formula", "route_not_taught", edits("grad_fn_answer", (
        "local_gradient = a.grad_fn(torch.ones_like(a))",
        "local_gradient = (a * (1 - a)).detach()")), "grad_fn"),
    wrong("local_gradient_by_backward", "route_not_taught", edits("grad_fn_answer", (
        "local_gradient = a.grad_fn(torch.ones_like(a))",
        "a.sum().backward(retain_graph=True)\n    local_gradient = z.grad")), "grad_fn"),
    wrong("losses_swapped", "swapped_outputs", edits(LOSSES, (
        "return sum_loss, mse_loss, sum_grad_w2", "return mse_loss, sum_loss, sum_grad_w2")),
          "losses"),
    wrong("gradients_swapped", "swapped_outputs", edits(LOSSES, (
        "return sum_loss, mse_loss, sum_grad_w2, mse_grad_w2",
        "return sum_loss, mse_loss, mse_grad_w2, sum_grad_w2")),
          "losses"),
    wrong("parameters_made_leaves_in_place", "changed_input", edits(PREPARE, (
        LEAVES, LEAVES.replace("p.clone().requires_grad_()", "p.requires_grad_()"))),
          "requires_grad", "losses", "accumulate"),
    wrong("logits_shifted_in_place", "changed_input", edits(SOFTMAX, (
        "    exps = torch.exp(logits - logits.max(dim=1, keepdim=True).values)\n",
        "    logits -= logits.max(dim=1, keepdim=True).values\n"
        "    exps = torch.exp(logits)\n")), "softmax_cross_entropy"),
    wrong("grads_set_to_none_before_update", "cleared_before_step", edits(MANUAL, (
        "    loss.backward()\n", "    loss.backward()\n    for p in params:\n"
                                "        p.grad = None\n")), "manual_step"),
    wrong("builtin_softmax", "route_not_taught", edits(SOFTMAX, (
        "probabilities = exps / exps.sum(dim=1, keepdim=True)",
        "probabilities = torch.softmax(logits, dim=1)")), "softmax_cross_entropy"),
    wrong("softmax_module", "route_not_taught", edits(SOFTMAX, (
        "probabilities = exps / exps.sum(dim=1, keepdim=True)",
        "probabilities = nn.Softmax(dim=1)(logits)")), "softmax_cross_entropy"),
]


# ---- two_layer_net --------------------------------------------------------------------------

VECTORIZED, BACKWARD, NET_TRAIN = ("relu_grad_vectorized_answer", "backward_answer",
                                   "train_answer")
ONE_OPERATION = "return (h > 0).to(h.dtype)"


TWO_LAYER_NET = [
    wrong("slope_1_at_zero", "relu_slope_at_zero", edits(VECTORIZED, ("(h > 0)", "(h >= 0)")),
          "relu_grad_vectorized", "speed", "backward", "train"),
    wrong("jcjohnsons_mask", "relu_slope_at_zero", edits(BACKWARD, (
        "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
        "grad_h = grad_y_pred.mm(w2.t())\n    grad_h[h < 0] = 0")), "backward", "train"),
    wrong("jcjohnsons_updates_in_place", "changed_input", edits(NET_TRAIN, (
        "w1 = w1 - learning_rate * grad_w1", "w1 -= learning_rate * grad_w1"), (
        "w2 = w2 - learning_rate * grad_w2", "w2 -= learning_rate * grad_w2")), "train"),
    wrong("loop_writes_into_h", "changed_input", edits("relu_grad_loop_answer", (
        "    grad = torch.zeros_like(h)\n    flat = grad.view(-1)\n"
        "    for i, value in enumerate(h.reshape(-1)):\n        if value > 0:\n"
        "            flat[i] = 1.0\n    return grad",
        "    flat = h.view(-1)\n    for i in range(flat.numel()):\n"
        "        flat[i] = 1.0 if flat[i] > 0 else 0.0\n    return h")), "relu_grad_loop"),
    # backward computes h_relu before it calls relu_grad_vectorized(h): it stays right.
    wrong("vectorized_writes_into_h", "changed_input", edits(VECTORIZED, (
        ONE_OPERATION, "return h.gt_(0)")), "relu_grad_vectorized", "speed"),
    wrong("loop_slope_1_at_zero", "relu_slope_at_zero", edits(
        "relu_grad_loop_answer", ("if value > 0:", "if value >= 0:")), "relu_grad_loop"),
    wrong("comprehension", "python_loop", edits(VECTORIZED, (
        ONE_OPERATION, "return torch.stack([(row > 0).to(h.dtype) for row in h])")),
          "relu_grad_vectorized", "speed"),
    wrong("row_loop", "python_loop", edits(VECTORIZED, (
        ONE_OPERATION, "grad = torch.zeros_like(h)\n    for i in range(h.shape[0]):\n"
                       "        grad[i] = (h[i] > 0).to(h.dtype)\n    return grad")),
          "relu_grad_vectorized", "speed"),
    wrong("apply_per_entry", "python_loop", edits(VECTORIZED, (
        ONE_OPERATION, "return h.clone().apply_(lambda v: 1.0 if v > 0 else 0.0)")),
          "relu_grad_vectorized", "speed"),
    wrong("map_over_a_list", "python_loop", edits(VECTORIZED, (
        ONE_OPERATION, "return torch.tensor(list(map(lambda v: float(v > 0), "
                       "h.reshape(-1).tolist())), dtype=h.dtype).reshape(h.shape)")),
          "relu_grad_vectorized", "speed"),
    wrong("calls_the_loop", "python_loop", edits(VECTORIZED, (
        ONE_OPERATION, "return relu_grad_loop(h)")), "relu_grad_vectorized", "speed"),
    wrong("loop_in_a_helper", "python_loop", edits(VECTORIZED, (
        ONE_OPERATION, "return slopes_one_by_one(h)\n\n\n"
                       "def slopes_one_by_one(h):\n"
                       "    return torch.tensor([float(v > 0) for v in h.reshape(-1)], "
                       "dtype=h.dtype).reshape(h.shape)")),
          "relu_grad_vectorized", "speed"),
    # No loop in any source: numpy runs Python once per entry. Only the timing shows it.
    wrong("numpy_vectorize", "too_slow", edits(VECTORIZED, (
        ONE_OPERATION, "return torch.from_numpy(SLOPE(h.cpu().numpy())).to(h)\n\n\n"
                       "import numpy\nSLOPE = numpy.vectorize(lambda v: float(v > 0))")),
          "speed"),
    wrong("numpy_frompyfunc", "too_slow", edits(VECTORIZED, (
        ONE_OPERATION, "return torch.from_numpy(EACH(h.cpu().numpy()).astype(float)).to(h)"
                       "\n\n\nimport numpy\nEACH = numpy.frompyfunc(lambda v: v > 0, 1, 1)")),
          "speed"),
    wrong("no_2_in_the_derivative", "factor_of_2", edits(BACKWARD, (
        "grad_y_pred = 2.0 * (y_pred - y)", "grad_y_pred = y_pred - y")), "backward", "train"),
    wrong("half_in_the_loss", "factor_of_2", edits(BACKWARD, (
        "loss = (y_pred - y).pow(2).sum()", "loss = 0.5 * (y_pred - y).pow(2).sum()")),
          "backward", "train"),
    wrong("error_term_reversed", "sign", edits(BACKWARD, (
        "2.0 * (y_pred - y)", "2.0 * (y - y_pred)")), "backward", "train"),
    wrong("ascent_in_the_loop", "sign", edits(NET_TRAIN, (
        "w1 - learning_rate * grad_w1", "w1 + learning_rate * grad_w1"), (
        "w2 - learning_rate * grad_w2", "w2 + learning_rate * grad_w2")), "train"),
    wrong("transposed_grad_w2", "transposed", edits(BACKWARD, (
        "grad_w2 = h_relu.t().mm(grad_y_pred)", "grad_w2 = grad_y_pred.t().mm(h_relu)")),
          "backward", "train"),
    wrong("transposed_grad_w1", "transposed", edits(BACKWARD, (
        "grad_w1 = x.t().mm(grad_h)", "grad_w1 = grad_h.t().mm(x)")), "backward", "train"),
    wrong("mean_over_batch", "mean_vs_sum", edits(BACKWARD, (
        "grad_y_pred = 2.0 * (y_pred - y)", "grad_y_pred = 2.0 * (y_pred - y) / y.shape[0]")),
          "backward", "train"),
    wrong("mean_loss", "mean_vs_sum", edits(BACKWARD, (
        "loss = (y_pred - y).pow(2).sum()", "loss = (y_pred - y).pow(2).mean()")),
          "backward", "train"),
    wrong("fixed_500_steps", "wrong_epochs", edits(NET_TRAIN, ("range(steps)",
                                                                   "range(500)")), "train"),
    wrong("one_step_short", "wrong_epochs", edits(NET_TRAIN, ("range(steps)",
                                                                  "range(steps - 1)")), "train"),
    wrong("fixed_rate_1e_3", "wrong_learning_rate", edits(NET_TRAIN, (
        "w1 - learning_rate * grad_w1", "w1 - 1e-3 * grad_w1"), (
        "w2 - learning_rate * grad_w2", "w2 - 1e-3 * grad_w2")), "train"),
    wrong("tutorial_rate_1e_6", "wrong_learning_rate", edits(NET_TRAIN, (
        "w1 - learning_rate * grad_w1", "w1 - 1e-6 * grad_w1"), (
        "w2 - learning_rate * grad_w2", "w2 - 1e-6 * grad_w2")), "train"),
    wrong("slope_on_another_device", "wrong_device", edits(VECTORIZED, (
        ONE_OPERATION, "return (h > 0).to(h.dtype).to('meta')  # as a tensor left on a GPU")),
          "relu_grad_vectorized", "backward", "train", "speed"),
    wrong("gradient_on_another_device", "wrong_device", edits(BACKWARD, (
        "return loss, grad_w1, grad_w2", "return loss, grad_w1.to('meta'), grad_w2")),
          "backward", "train"),
    wrong("float32_slope", "float32", edits(VECTORIZED, ("(h > 0).to(h.dtype)",
                                                             "(h > 0).float()")),
          "relu_grad_vectorized", "speed"),
    wrong("float32_loop", "float32", edits("relu_grad_loop_answer", (
        "grad = torch.zeros_like(h)", "grad = torch.zeros(h.shape)")), "relu_grad_loop"),
    wrong("half_slope", "float16", edits(VECTORIZED, ("(h > 0).to(h.dtype)", "(h > 0).half()")),
          "relu_grad_vectorized", "speed"),
    wrong("half_loop", "float16", edits("relu_grad_loop_answer", (
        "grad = torch.zeros_like(h)", "grad = torch.zeros_like(h, dtype=torch.float16)")),
          "relu_grad_loop"),
    wrong("backward_by_autograd", "autograd_used", edits(BACKWARD, (
        "    grad_y_pred = 2.0 * (y_pred - y)\n"
        "    grad_w2 = h_relu.t().mm(grad_y_pred)\n"
        "    grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)\n"
        "    grad_w1 = x.t().mm(grad_h)\n",
        "    grad_w1, grad_w2 = torch.autograd.grad(loss, (w1, w2))\n"), (
        "    h = x.mm(w1)\n", "    w1, w2 = (w.clone().requires_grad_() for w in (w1, w2))\n"
                           "    h = x.mm(w1)\n")), "backward", "train"),
    wrong("backward_by_loss_backward", "autograd_used", edits(BACKWARD, (
        "    grad_y_pred = 2.0 * (y_pred - y)\n"
        "    grad_w2 = h_relu.t().mm(grad_y_pred)\n"
        "    grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)\n"
        "    grad_w1 = x.t().mm(grad_h)\n"
        "    return loss, grad_w1, grad_w2",
        "    loss.backward()\n    return loss.detach(), w1.grad, w2.grad"), (
        "    h = x.mm(w1)\n", "    w1 = w1.clone().requires_grad_()\n"
                           "    w2 = w2.clone().requires_grad_()\n    h = x.mm(w1)\n")),
          "backward", "train"),
    wrong("no_relu_slope", "relu_factor_missing", edits(BACKWARD, (
        "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
        "grad_h = grad_y_pred.mm(w2.t())")), "backward", "train"),
    wrong("relu_slope_forgotten_with_operator", "relu_factor_missing", edits(BACKWARD, (
        "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
        "grad_h_relu = grad_y_pred @ w2.T\n    grad_h = grad_h_relu")), "backward", "train"),
    wrong("loop_vectorized_anyway", "route_not_taught", edits("relu_grad_loop_answer", (
        "    grad = torch.zeros_like(h)\n    flat = grad.view(-1)\n"
        "    for i, value in enumerate(h.reshape(-1)):\n        if value > 0:\n"
        "            flat[i] = 1.0\n    return grad",
        "    return (h > 0).to(h.dtype)")), "relu_grad_loop"),
    wrong("loop_written_with_where", "route_not_taught", edits("relu_grad_loop_answer", (
        "    grad = torch.zeros_like(h)\n    flat = grad.view(-1)\n"
        "    for i, value in enumerate(h.reshape(-1)):\n        if value > 0:\n"
        "            flat[i] = 1.0\n    return grad",
        "    return torch.where(h > 0, torch.ones_like(h), torch.zeros_like(h))")),
          "relu_grad_loop"),
    wrong("loss_after_the_update", "loss_after_update", edits(NET_TRAIN, (
        "        losses.append(loss.item())\n",
        "        losses.append(backward(x, y, w1, w2)[0].item())\n")), "train"),
    wrong("loss_recomputed_after_update", "loss_after_update", edits(NET_TRAIN, (
        "        losses.append(loss.item())\n",
        "        losses.append((x.mm(w1).clamp(min=0).mm(w2) - y).pow(2).sum().item())\n")),
          "train"),
]

CORPUS: dict[str, list[Wrong]] = {"nn_from_scratch": NN_FROM_SCRATCH,
                                  "single_neuron": SINGLE_NEURON,
                                  "autograd_basics": AUTOGRAD_BASICS,
                                  "two_layer_net": TWO_LAYER_NET}


# ---- wrong submissions for which no name fits -----------------------------------------------

def unnamed(student: str, edit: tuple[Edit, ...], *parts: str, **facts: str | None) -> Wrong:
    """A mistake no name of the vocabulary fits: each of `parts` fails with no name (and the
    parts in `facts` with the plain fact given there: an exception, NaN, a wrong dtype)."""
    return Wrong(student, None, edit, {**dict.fromkeys(parts), **facts})


UNNAMED: dict[str, list[Wrong]] = {
    "nn_from_scratch": [
        unnamed("z1_for_the_hidden_activation", edits(STEP, (
            "w2 + learning_rate * torch.mm(a1.t(), d_outp)",
            "w2 + learning_rate * torch.mm(z1.t(), d_outp)")), "train_step", "train",
                "learn_2d"),
        unnamed("no_activation_between_layers", edits("forward_answer", (
            "z2 = torch.mm(a1, w2) + b2", "z2 = torch.mm(z1, w2) + b2")),
                "forward", "gradient_check", "train_step", "train", "learn_2d"),
        unnamed("parameters_never_fed_back", edits(TRAIN, (
            "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)\n",
            "        new_w1, new_b1, new_w2, new_b2 = train_step(X, y, w1, b1, w2, b2, "
            "learning_rate)\n"), (
            "    return losses, (w1, b1, w2, b2)",
            "    return losses, (new_w1, new_b1, new_w2, new_b2)")), "train"),
        unnamed("precedence_in_the_denominator", edits(CHECK, (
            "(up - down) / (2 * h)", "(up - down) / 2 * h")), "gradient_check"),
        unnamed("validation_loss_of_the_training_set", edits(FIT, (
            "val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))",
            "val_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))")), "learn_2d"),
        unnamed("every_step_on_the_whole_set", edits(FIT, (
            "train_step(X[rows], y[rows], w1, b1, w2, b2, learning_rate)",
            "train_step(X, y, w1, b1, w2, b2, learning_rate)")), "learn_2d"),
    ],
    "single_neuron": [
        unnamed("error_from_z", edits("relu_backprop_answer", (
            "2 * (output.detach() - y)", "2 * (z.detach() - y)")), "relu_backprop"),
        unnamed("sgd_with_momentum", edits(LINEAR, (
            "lr=learning_rate)", "lr=learning_rate, momentum=0.9)")), "linear"),
        unnamed("activation_before_the_layer", edits(NEURON, (
            "nn.Sequential(linear, nn.LeakyReLU(negative_slope))",
            "nn.Sequential(nn.LeakyReLU(negative_slope), linear)")), *BOTH_NEURONS),
        unnamed("zero_start", edits("dead_relu_answer", (
            "return -sign *", "return 0 * sign *")), "dead_relu"),
        unnamed("losses_in_a_default_list", edits(LINEAR, (
            "def train_linear(x, y, weight, learning_rate, epochs):",
            "def train_linear(x, y, weight, learning_rate, epochs, losses=[]):"), (
            "    loss_function = nn.MSELoss()\n    losses = []\n",
            "    loss_function = nn.MSELoss()\n")), "linear"),
        unnamed("boolean_relu_slope", edits("relu_backprop_answer", (
            "relu_slope = (z.detach() > 0).to(x.dtype)", "relu_slope = z.detach() > 0")),
                relu_backprop="wrong_type"),
    ],
    "autograd_basics": [
        unnamed("softmax_minus_the_global_maximum", edits(SOFTMAX, (
            "logits - logits.max(dim=1, keepdim=True).values", "logits - logits.max()")),
                softmax_cross_entropy="not_finite"),
        unnamed("w2_grad_not_cleared_between_losses", edits(LOSSES, (
            "    w2.grad = None\n", "")), "losses"),
        unnamed("only_the_weights_updated", edits(MANUAL, (
            "        for p in params:\n            p -= learning_rate * p.grad",
            "        for p in params[::2]:\n            p -= learning_rate * p.grad")),
                "manual_step"),
        unnamed("step_without_backward", edits(SGD, ("    loss.backward()\n", "")),
                "sgd_step"),
        unnamed("sum_gradient_kept_by_reference", edits(LOSSES, (
            "sum_grad_w2 = w2.grad.clone()\n    w2.grad = None\n",
            "sum_grad_w2 = w2.grad\n    w2.grad.zero_()\n"), (
            "mse_grad_w2 = w2.grad.clone()", "mse_grad_w2 = w2.grad")), "losses"),
    ],
    "two_layer_net": [
        unnamed("relu_output_for_its_slope", edits(BACKWARD, (
            "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
            "grad_h = grad_y_pred.mm(w2.t()) * h_relu")), "backward", "train"),
        unnamed("w1_moved_by_grad_w2", edits(NET_TRAIN, (
            "w1 - learning_rate * grad_w1", "w1 - learning_rate * grad_w2")), "train"),
        unnamed("loss_without_the_square", edits(BACKWARD, (
            "loss = (y_pred - y).pow(2).sum()", "loss = (y_pred - y).abs().sum()")),
                "backward", "train"),
        unnamed("losses_in_a_default_list", edits(NET_TRAIN, (
            "def train(x, y, w1, w2, learning_rate, steps):",
            "def train(x, y, w1, w2, learning_rate, steps, losses=[]):"), (
            "    losses = []\n", "")), "train"),
        unnamed("loss_summed_over_the_batch_only", edits(BACKWARD, (
            "loss = (y_pred - y).pow(2).sum()", "loss = (y_pred - y).pow(2).sum(0)")),
                backward="shape", train="exception"),
        unnamed("mean_of_the_slopes", edits(VECTORIZED, (
            ONE_OPERATION, "return (h > 0).to(h.dtype) * (h > 0).to(h.dtype).mean()")),
                "relu_grad_vectorized", "backward", "train", "speed"),
    ],
}


# ---- correct submissions, written differently from the answer key ---------------------------

CORRECT: dict[str, list[tuple[str, tuple[Edit, ...]]]] = {
    "nn_from_scratch": [
        ("answer_key", ()),
        ("matmul_operator", edits("forward_answer", ("torch.mm(X, w1)", "X @ w1"),
                                  ("torch.mm(a1, w2)", "a1 @ w2"))),
        ("descent_written_as_minus", edits(STEP, ("(y - output) * sigmoid_delta",
                                                  "-(output - y) * sigmoid_delta"))),
        ("bias_sum_by_torch_sum", edits(STEP, ("d_hidn.sum(0, keepdim=True)",
                                               "torch.sum(d_hidn, dim=0, keepdim=True)"))),
    ],
    "single_neuron": [
        ("answer_key", ()),
        ("zero_grad_after_step", edits(LINEAR, (
            "        optimizer.zero_grad()\n        loss = loss_function(neuron(x), y)\n"
            "        loss.backward()\n        optimizer.step()\n",
            "        loss = loss_function(neuron(x), y)\n        loss.backward()\n"
            "        optimizer.step()\n        optimizer.zero_grad()\n"))),
    ],
    "autograd_basics": [
        ("answer_key", ()),
        ("sub_under_no_grad", edits(MANUAL, ("p -= learning_rate * p.grad",
                                             "p.sub_(learning_rate * p.grad)"))),
    ],
    "two_layer_net": [
        ("answer_key", ()),
        ("where_instead_of_comparison", edits(VECTORIZED, (
            ONE_OPERATION, "return torch.where(h > 0, 1.0, 0.0).to(h.dtype)"))),
    ],
}


# ---- autograd_from_scratch ------------------------------------------------------------------

VALUE, TOPO, MLP = "value_answer", "backward_answer", "mlp_gradients_answer"
VALUE_TRAIN, MODULE = "train_mlp_answer", "torch_module_answer"
MUL_BACKWARD = ("            self.grad += other.data * result.grad\n"
                "            other.grad += self.data * result.grad\n")
ADD_BACKWARD = ("            self.grad += 1.0 * out.grad\n"
                "            other.grad += 1.0 * out.grad\n")
VISITED = ("        if node not in visited:\n            visited.add(node)\n"
           "            for child in node._prev:\n                build(child)\n"
           "            topo.append(node)\n")
WALK = "    for node in reversed(topo):\n        node._backward()\n"
# The Value network's mistakes cost train_mlp too, which trains it.
BOTH_MLP = ("mlp_gradients", "train_mlp")

AUTOGRAD_FROM_SCRATCH = [
    wrong("mul_overwrites", "overwritten_gradient", edits(VALUE, (
        MUL_BACKWARD, MUL_BACKWARD.replace("+=", "="))), "local_gradients", "backward",
          mlp_gradients=None, train_mlp=None),
    wrong("add_overwrites", "overwritten_gradient", edits(VALUE, (
        ADD_BACKWARD, ADD_BACKWARD.replace("+=", "="))), "local_gradients", "backward",
          mlp_gradients=None, train_mlp=None),
    wrong("mul_without_out_grad", "missing_chain_factor", edits(VALUE, (
        MUL_BACKWARD, "            self.grad += other.data\n"
                      "            other.grad += self.data\n")), "local_gradients", "backward",
          mlp_gradients=None, train_mlp=None),
    wrong("exp_without_out_grad", "missing_chain_factor", edits(VALUE, (
        "self.grad += result.data * result.grad", "self.grad += result.data")),
          "local_gradients", "backward"),
    wrong("relu_slope_1_at_zero", "relu_slope_at_zero", edits(VALUE, (
        "(1.0 if self.data > 0 else 0.0)", "(1.0 if self.data >= 0 else 0.0)")),
          "local_gradients", "backward"),
    wrong("relu_slope_as_a_comparison", "relu_slope_at_zero", edits(VALUE, (
        "(1.0 if self.data > 0 else 0.0) * result.grad", "(self.data >= 0) * result.grad")),
          "local_gradients", "backward"),
    wrong("topological_sort_without_visited", "no_visited_set", edits(TOPO, (
        VISITED, "        for child in node._prev:\n            build(child)\n"
                 "        topo.append(node)\n")), "backward"),
    wrong("recursion_once_per_path", "no_visited_set", edits(TOPO, (
        "    build(self)\n    self.grad = 1.0\n" + WALK,
        "    def pass_back(node):\n        node._backward()\n"
        "        for child in node._prev:\n            pass_back(child)\n\n"
        "    self.grad = 1.0\n    pass_back(self)\n")), "backward"),
    wrong("topological_order_not_reversed", "wrong_order", edits(TOPO, (
        "for node in reversed(topo):", "for node in topo:")), "backward", *BOTH_MLP,
          mlp_gradients=None, train_mlp=None),
    wrong("breadth_first_walk", "wrong_order", edits(TOPO, (
        "    build(self)\n    self.grad = 1.0\n" + WALK,
        "    self.grad = 1.0\n    queue, seen = [self], {self}\n    while queue:\n"
        "        node = queue.pop(0)\n        node._backward()\n"
        "        for child in node._prev:\n            if child not in seen:\n"
        "                seen.add(child)\n                queue.append(child)\n")),
          "backward"),
    wrong("sum_not_mean", "mean_vs_sum", edits(MLP, (
        "sum(errors, Value(0.0)) * (1 / len(errors))", "sum(errors, Value(0.0))")), *BOTH_MLP),
    wrong("mean_taken_twice", "mean_vs_sum", edits(MLP, (
        "* (1 / len(errors))", "* (1 / len(errors) ** 2)")), *BOTH_MLP),
    wrong("half_squared_error", "factor_of_2", edits(MLP, (
        "(model(x).sigmoid() - target) ** 2", "0.5 * (model(x).sigmoid() - target) ** 2")),
          *BOTH_MLP),
    wrong("two_over_n", "factor_of_2", edits(MLP, ("(1 / len(errors))", "(2 / len(errors))")),
          *BOTH_MLP),
    wrong("gradients_never_cleared", "missing_zero_grad", edits(VALUE_TRAIN, (
        "        for p in model.parameters():\n            p.grad = 0.0\n", "")), "train_mlp"),
    wrong("gradients_cleared_once", "missing_zero_grad", edits(VALUE_TRAIN, (
        "        for p in model.parameters():\n            p.grad = 0.0\n", ""), (
        "    losses = []\n", "    losses = []\n    for p in model.parameters():\n"
                            "        p.grad = 0.0\n")), "train_mlp"),
    wrong("gradient_ascent", "sign", edits(VALUE_TRAIN, (
        "p.data -= learning_rate * p.grad", "p.data += learning_rate * p.grad")), "train_mlp"),
    wrong("update_by_minus_rate", "sign", edits(VALUE_TRAIN, (
        "p.data -= learning_rate * p.grad", "p.data = p.data - (-learning_rate) * p.grad")),
          "train_mlp"),
    wrong("rate_fixed_at_half", "wrong_learning_rate", edits(VALUE_TRAIN, (
        "p.data -= learning_rate * p.grad", "p.data -= 0.5 * p.grad")), "train_mlp"),
    wrong("rate_fixed_at_one", "wrong_learning_rate", edits(VALUE_TRAIN, (
        "p.data -= learning_rate * p.grad", "p.data -= p.grad")), "train_mlp"),
    wrong("one_epoch_short", "wrong_epochs", edits(VALUE_TRAIN, (
        "range(epochs)", "range(epochs - 1)")), "train_mlp"),
    wrong("ten_epochs", "wrong_epochs", edits(VALUE_TRAIN, ("range(epochs)", "range(10)")),
          "train_mlp"),
    wrong("loss_after_the_step", "loss_after_update", edits(VALUE_TRAIN, (
        "        losses.append(loss.data)\n",
        "        losses.append(mse_loss(model, X, y).data)\n")), "train_mlp"),
    wrong("value_loss_after_the_step", "loss_after_update", edits(VALUE_TRAIN, (
        "        losses.append(loss.data)\n", ""), (
        "    model = MLP(w1, b1, w2, b2)\n    losses = []\n",
        "    model = MLP(w1, b1, w2, b2)\n    losses = []\n    loss = None\n"), (
        "        loss = mse_loss(model, X, y)\n",
        "        loss = mse_loss(model, X, y)\n        step_loss = loss\n"), (
        "            p.data -= learning_rate * p.grad\n",
        "            p.data -= learning_rate * p.grad\n"
        "        losses.append(mse_loss(model, X, y).data + 0 * step_loss.data)\n")),
          "train_mlp"),
    wrong("module_without_zero_grad", "missing_zero_grad", edits(MODULE, (
        "        optimizer.zero_grad()\n", "")), "torch_module"),
    wrong("module_zero_grad_once", "missing_zero_grad", edits(MODULE, (
        "        optimizer.zero_grad()\n", ""), (
        "    losses = []\n", "    losses = []\n    optimizer.zero_grad()\n")), "torch_module"),
    wrong("module_zero_grad_before_step", "cleared_before_step", edits(MODULE, (
        "        optimizer.zero_grad()\n", ""), (
        "        optimizer.step()\n", "        optimizer.zero_grad()\n        optimizer.step()\n")),
          "torch_module"),
    wrong("model_zero_grad_after_backward", "cleared_before_step", edits(MODULE, (
        "        loss.backward()\n", "        loss.backward()\n        model.zero_grad()\n")),
          "torch_module"),
    wrong("module_squared_error", "mse_for_classification", edits(MODULE, (
        "loss = loss_function(model(X), y)",
        "loss = ((torch.sigmoid(model(X)) - y) ** 2).mean()")), "torch_module"),
    wrong("module_mse_loss", "mse_for_classification", edits(MODULE, (
        "loss_function = nn.BCEWithLogitsLoss()", "loss_function = nn.MSELoss()"), (
        "loss_function(model(X), y)", "loss_function(torch.sigmoid(model(X)), y)")),
          "torch_module"),
    wrong("sigmoid_into_logits_loss", "sigmoid_before_logits_loss", edits(MODULE, (
        "loss_function(model(X), y)", "loss_function(torch.sigmoid(model(X)), y)")),
          "torch_module"),
    wrong("forward_returns_probabilities", "sigmoid_before_logits_loss", edits(MODULE, (
        "return self.output(torch.tanh(self.hidden(X)))",
        "return torch.sigmoid(self.output(torch.tanh(self.hidden(X))))")), "torch_module"),
    wrong("weights_copied_untransposed", "transposed", edits(MODULE, (
        "model.hidden.weight.copy_(w1.T)", "model.hidden.weight.copy_(w1)")),
          "torch_module"),
    wrong("weights_returned_untransposed", "transposed", edits(MODULE, (
        "(model.hidden.weight.T,", "(model.hidden.weight,")), "torch_module"),
    wrong("layers_in_float32", "float32", edits(MODULE, (
        "self.hidden = nn.Linear(n_in, n_hidden, dtype=torch.float64)",
        "self.hidden = nn.Linear(n_in, n_hidden)"), (
        "self.output = nn.Linear(n_hidden, 1, dtype=torch.float64)",
        "self.output = nn.Linear(n_hidden, 1)")), "torch_module"),
    wrong("parameters_returned_in_float32", "float32", edits(MODULE, (
        "tuple(p.detach().clone() for p in trained)",
        "tuple(p.detach().float() for p in trained)")), "torch_module"),
]
CORPUS["autograd_from_scratch"] = AUTOGRAD_FROM_SCRATCH
UNNAMED["autograd_from_scratch"] = [
    unnamed("power_rule_without_the_minus_one", edits(VALUE, (
        "exponent * self.data ** (exponent - 1) * result.grad",
        "exponent * self.data ** exponent * result.grad")), "local_gradients", "backward",
            *BOTH_MLP),
    unnamed("tanh_computed_as_a_sigmoid", edits(VALUE, (
        "Value(math.tanh(self.data), (self,))",
        "Value(1 / (1 + math.exp(-self.data)), (self,))")), "operations", "local_gradients",
            "backward", *BOTH_MLP),
    unnamed("no_reflected_multiplication", edits(VALUE, (
        "    def __rmul__(self, other):\n", "    def __rmul_unused__(self, other):\n")),
            operations="exception", local_gradients="exception", backward="exception",
            mlp_gradients="exception", train_mlp="exception"),
    unnamed("tanh_slope_without_the_square", edits(VALUE, (
        "(1 - result.data ** 2) * result.grad", "(1 - result.data) * result.grad")),
            "local_gradients", "backward", *BOTH_MLP),
    unnamed("output_never_seeded", edits(TOPO, ("    self.grad = 1.0\n", "")), "backward",
            *BOTH_MLP),
    unnamed("relu_hidden_units", edits(MLP, (
        "self.b1[0][j]).tanh()", "self.b1[0][j]).relu()")), *BOTH_MLP),
    unnamed("squared_error_of_the_logit", edits(MLP, (
        "(model(x).sigmoid() - target) ** 2", "(model(x) - target) ** 2")), *BOTH_MLP),
    unnamed("biases_never_updated", edits(VALUE_TRAIN, (
        "        for p in model.parameters():\n            p.data -= ",
        "        for p in model.parameters()[:len(model.parameters()) // 2]:\n"
        "            p.data -= ")), "train_mlp"),
    unnamed("sgd_with_momentum", edits(MODULE, (
        "lr=learning_rate)", "lr=learning_rate, momentum=0.9)")), "torch_module"),
    unnamed("adam_instead_of_sgd", edits(MODULE, (
        "optim.SGD(model.parameters(), lr=learning_rate)",
        "optim.Adam(model.parameters(), lr=learning_rate)")), "torch_module"),
]
CORRECT["autograd_from_scratch"] = [
    ("answer_key", ()),
    ("topological_sort_with_a_stack", edits(TOPO, (
        "    def build(node):\n" + VISITED + "\n    build(self)\n",
        "    stack = [(self, False)]\n    while stack:\n        node, done = stack.pop()\n"
        "        if done:\n            topo.append(node)\n"
        "        elif node not in visited:\n            visited.add(node)\n"
        "            stack.append((node, True))\n"
        "            stack.extend((child, False) for child in node._prev)\n"))),
    ("mean_by_division", edits(MLP, ("sum(errors, Value(0.0)) * (1 / len(errors))",
                                     "sum(errors, Value(0.0)) / len(errors)"))),
    ("cross_entropy_of_probabilities", edits(MODULE, (
        "loss_function = nn.BCEWithLogitsLoss()", "loss_function = nn.BCELoss()"), (
        "loss_function(model(X), y)", "loss_function(torch.sigmoid(model(X)), y)"))),
]
