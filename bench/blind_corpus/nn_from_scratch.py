# ruff: noqa: E501 - the submissions quote code: a replaced line is kept whole, as it reads in the notebook
"""nn_from_scratch: the gradient check (Part 4), two moons (Part 7), and functions that
change their inputs anywhere in the notebook."""

from . import CHANGES_INPUTS, Loss, Submission, edited

ASSIGNMENT = "nn_from_scratch"
# The graded parts when the corpus was written: a part added since is not judged.
PARTS = ("sigmoid_activation", "forward", "sigmoid_delta", "gradient_check", "train_step",
         "train", "learn_2d")

BASE = {
    "sigmoid_activation_answer": '''
def sigmoid_activation(z):
    return 1.0 / (1.0 + torch.exp(-z))
''',
    "forward_answer": '''
def forward(X, w1, b1, w2, b2):
    z1 = X @ w1 + b1
    a1 = sigmoid_activation(z1)
    z2 = a1 @ w2 + b2
    output = sigmoid_activation(z2)
    return z1, a1, z2, output
''',
    "sigmoid_delta_answer": '''
def sigmoid_delta(a):
    return a * (1 - a)
''',
    "gradient_check_answer": '''
def loss(X, y, w1, b1, w2, b2):
    """L = 0.5 * sum((y - output)**2) with your forward pass: the loss of Parts 4 to 7."""
    return 0.5 * ((y - forward(X, w1, b1, w2, b2)[3]) ** 2).sum()


def numerical_gradients(X, y, w1, b1, w2, b2, h):
    params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()]
    grads = []
    for p in params:
        grad = torch.zeros_like(p)
        for i in range(p.shape[0]):
            for j in range(p.shape[1]):
                saved = p[i, j].item()
                p[i, j] = saved + h
                plus = loss(X, y, *params)
                p[i, j] = saved - h
                minus = loss(X, y, *params)
                p[i, j] = saved
                grad[i, j] = (plus - minus) / (2 * h)
        grads.append(grad)
    return tuple(grads)
''',
    "train_step_answer": '''
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    z1, a1, z2, output = forward(X, w1, b1, w2, b2)
    d_outp = (y - output) * sigmoid_delta(output)
    d_hidn = (d_outp @ w2.T) * sigmoid_delta(a1)
    new_w2 = w2 + learning_rate * (a1.T @ d_outp)
    new_b2 = b2 + learning_rate * d_outp.sum(0, keepdim=True)
    new_w1 = w1 + learning_rate * (X.T @ d_hidn)
    new_b1 = b1 + learning_rate * d_hidn.sum(0, keepdim=True)
    return new_w1, new_b1, new_w2, new_b2
''',
    "train_answer": '''
def train(X, y, w1, b1, w2, b2, learning_rate=0.1, epochs=500):
    losses = []
    for epoch in range(epochs):
        losses.append(loss(X, y, w1, b1, w2, b2).item())
        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)
    print("final loss:", losses[-1])
    print("w1 =", w1, "\\nb1 =", b1, "\\nw2 =", w2, "\\nb2 =", b2)
    return losses, (w1, b1, w2, b2)
''',
    "learn_2d_answer": '''
def fit(X, y, X_val, y_val, w1, b1, w2, b2, learning_rate, epochs, batch_size):
    train_losses, val_losses = [], []
    for epoch in range(epochs):
        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))
        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))
        for start in range(0, len(X), batch_size):
            stop = start + batch_size
            w1, b1, w2, b2 = train_step(X[start:stop], y[start:stop], w1, b1, w2, b2,
                                        learning_rate)
    return train_losses, val_losses, (w1, b1, w2, b2)
''',
}

GRAD = "gradient_check_answer"
FIT = "learn_2d_answer"


def _grad(*replacements):
    return edited(BASE, GRAD, *replacements)


def _fit(*replacements):
    return edited(BASE, FIT, *replacements)


_CENTRAL = ("grad[i, j] = (plus - minus) / (2 * h)",)

SUBMISSIONS = [
    # ---- Part 4, the gradient check: mistakes with a name ----
    Submission("nn/forward_difference", ASSIGNMENT,
               "(L(p + h) - L(p)) / h: the one-sided difference the prose warns about",
               _grad(("                p[i, j] = saved - h\n                minus = loss(X, y, *params)\n",
                      "                p[i, j] = saved\n                minus = loss(X, y, *params)\n"),
                     ("(plus - minus) / (2 * h)", "(plus - minus) / h")),
               {"gradient_check": Loss(0, "one_sided_difference")}),
    Submission("nn/backward_difference", ASSIGNMENT,
               "(L(p) - L(p - h)) / h: the one-sided difference, the other way",
               _grad(("                p[i, j] = saved + h\n                plus = loss(X, y, *params)\n",
                      "                p[i, j] = saved\n                plus = loss(X, y, *params)\n"),
                     ("(plus - minus) / (2 * h)", "(plus - minus) / h")),
               {"gradient_check": Loss(0, "one_sided_difference")}),
    Submission("nn/perturbation_not_restored", ASSIGNMENT,
               "+h, then -2h from there, and the entry is never put back (left at p - h)",
               _grad(("p[i, j] = saved + h", "p[i, j] += h"),
                     ("p[i, j] = saved - h", "p[i, j] -= 2 * h"),
                     ("                p[i, j] = saved\n", "")),
               {"gradient_check": Loss(0, "perturbation_kept")}),
    Submission("nn/left_at_plus_h", ASSIGNMENT,
               "L(p - h) on a fresh clone; the entry of the first stays at p + h",
               _grad(("for p in params:", "for k, p in enumerate(params):"),
                     ("                p[i, j] = saved - h\n                minus = loss(X, y, *params)\n"
                      "                p[i, j] = saved\n",
                      "                other = [q.clone() for q in params]\n"
                      "                other[k][i, j] = saved - h\n"
                      "                minus = loss(X, y, *other)\n")),
               {"gradient_check": Loss(0, "perturbation_kept")}),
    Submission("nn/divided_by_h", ASSIGNMENT,
               "(L(p + h) - L(p - h)) / h: the 2 of 2h forgotten",
               _grad(("(plus - minus) / (2 * h)", "(plus - minus) / h")),
               {"gradient_check": Loss(0, "factor_of_2")}),
    Submission("nn/difference_reversed", ASSIGNMENT,
               "(L(p - h) - L(p + h)) / 2h: minus the gradient",
               _grad(("(plus - minus) / (2 * h)", "(minus - plus) / (2 * h)")),
               {"gradient_check": Loss(0, "sign")}),
    Submission("nn/mean_loss_in_check", ASSIGNMENT,
               "differences of the mean loss over the batch (a loss of its own, / N)",
               _grad(("plus = loss(X, y, *params)", "plus = loss(X, y, *params) / len(X)"),
                     ("minus = loss(X, y, *params)", "minus = loss(X, y, *params) / len(X)")),
               {"gradient_check": Loss(0, "mean_vs_sum")}),
    Submission("nn/float32_clones", ASSIGNMENT,
               "clones made float32 (.float()): the rounding error of float32 over h",
               _grad(("params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()]",
                      "params = [w1.float(), b1.float(), w2.float(), b2.float()]"),
                     ("plus = loss(X, y, *params)", "plus = loss(X.float(), y.float(), *params)"),
                     ("minus = loss(X, y, *params)", "minus = loss(X.float(), y.float(), *params)")),
               {"gradient_check": Loss(0, "float32")}),
    Submission("nn/gradients_in_other_order", ASSIGNMENT,
               "returns (grad_w1, grad_w2, grad_b1, grad_b2)",
               _grad(("return tuple(grads)", "return grads[0], grads[2], grads[1], grads[3]")),
               {"gradient_check": Loss(0, "swapped_outputs", ok=("shape",))}),
    # ---- Part 4: wrong, and no listed name fits ----
    Submission("nn/step_of_its_own", ASSIGNMENT,
               "h ignored: a fixed step of 1e-2, whose h^2 error is far above the tolerance",
               _grad(("def numerical_gradients(X, y, w1, b1, w2, b2, h):\n",
                      "def numerical_gradients(X, y, w1, b1, w2, b2, h):\n    h = 1e-2\n")),
               {"gradient_check": Loss(0, None)}),
    Submission("nn/first_column_only", ASSIGNMENT,
               "the inner loop runs over one column: the other columns stay 0",
               _grad(("for j in range(p.shape[1]):", "for j in range(1):")),
               {"gradient_check": Loss(0, None)}),
    Submission("nn/all_entries_at_once", ASSIGNMENT,
               "the whole tensor moved by h at once: every entry gets the sum of the "
               "tensor's gradient (a directional derivative)",
               _grad(("p[i, j] = saved + h", "p += h"), ("p[i, j] = saved - h", "p -= 2 * h"),
                     ("                p[i, j] = saved\n", "                p += h\n")),
               {"gradient_check": Loss(0, None, ok=("summed_all_entries",))}),
    # ---- Part 4: correct, written otherwise ----
    Submission("nn/check_on_flat_views", ASSIGNMENT,
               "correct: one loop over p.view(-1) of each clone, the gradient filled the same way",
               {GRAD: '''
def loss(X, y, w1, b1, w2, b2):
    """L = 0.5 * sum((y - output)**2) with your forward pass: the loss of Parts 4 to 7."""
    return 0.5 * ((y - forward(X, w1, b1, w2, b2)[3]) ** 2).sum()


def numerical_gradients(X, y, w1, b1, w2, b2, h):
    originals = (w1, b1, w2, b2)
    result = []
    for k in range(4):
        params = [p.clone() for p in originals]
        flat = params[k].view(-1)
        grad = torch.empty_like(params[k])
        flat_grad = grad.view(-1)
        for n in range(flat.numel()):
            old = flat[n].clone()
            flat[n] = old + h
            up = loss(X, y, *params)
            flat[n] = old - h
            down = loss(X, y, *params)
            flat[n] = old
            flat_grad[n] = (up - down) / (2 * h)
        result.append(grad)
    return result[0], result[1], result[2], result[3]
'''}),
    Submission("nn/half_steps", ASSIGNMENT,
               "correct: (L(p + h/2) - L(p - h/2)) / h, the central difference of step h/2",
               _grad(("p[i, j] = saved + h", "p[i, j] = saved + h / 2"),
                     ("p[i, j] = saved - h", "p[i, j] = saved - h / 2"),
                     ("(plus - minus) / (2 * h)", "(plus - minus) / h"))),
    Submission("nn/check_in_place_restored", ASSIGNMENT,
               "correct: cs231n's way, each entry of the given tensors moved and put back "
               "exactly (its saved value); the inputs end as they came",
               {GRAD: '''
def loss(X, y, w1, b1, w2, b2):
    """L = 0.5 * sum((y - output)**2) with your forward pass: the loss of Parts 4 to 7."""
    return 0.5 * ((y - forward(X, w1, b1, w2, b2)[3]) ** 2).sum()


import itertools


def numerical_gradients(X, y, w1, b1, w2, b2, h):
    params = (w1, b1, w2, b2)
    grads = tuple(torch.zeros_like(p) for p in params)
    for p, grad in zip(params, grads):
        for index in itertools.product(*(range(n) for n in p.shape)):
            saved = p[index].item()
            p[index] = saved + h
            plus = loss(X, y, *params).item()
            p[index] = saved - h
            minus = loss(X, y, *params).item()
            p[index] = saved
            grad[index] = (plus - minus) / (2 * h)
    return grads
'''}),
    # ---- Part 7, two moons: mistakes with a name ----
    Submission("nn/last_batch_dropped", ASSIGNMENT,
               "only whole batches: range(0, len(X) - batch_size + 1, batch_size)",
               _fit(("range(0, len(X), batch_size)", "range(0, len(X) - batch_size + 1, batch_size)")),
               {"learn_2d": Loss(0, "last_batch_dropped")}),
    Submission("nn/one_step_per_epoch", ASSIGNMENT,
               "one train_step on all of X per epoch, batch_size ignored",
               _fit(("""        for start in range(0, len(X), batch_size):
            stop = start + batch_size
            w1, b1, w2, b2 = train_step(X[start:stop], y[start:stop], w1, b1, w2, b2,
                                        learning_rate)""",
                     "        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, learning_rate)")),
               {"learn_2d": Loss(0, "full_batch")}),
    Submission("nn/summed_losses", ASSIGNMENT,
               "the losses recorded as sums over the set, not means per example",
               _fit((".item() / len(X))", ".item())"), (".item() / len(X_val))", ".item())")),
               {"learn_2d": Loss(0, "mean_vs_sum")}),
    Submission("nn/losses_after_epoch", ASSIGNMENT,
               "each epoch's losses recorded after its steps",
               _fit(("""        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))
        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))
""", ""), ("    return train_losses", """        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))
        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))
    return train_losses""")),
               {"learn_2d": Loss(0, "loss_after_update")}),
    Submission("nn/fit_rate_fixed", ASSIGNMENT,
               "the notebook's learning rate 1.0 written into the step",
               _fit(("                                        learning_rate)",
                     "                                        1.0)")),
               {"learn_2d": Loss(0, "wrong_learning_rate")}),
    Submission("nn/fit_one_epoch_more", ASSIGNMENT,
               "range(epochs + 1): one epoch too many",
               _fit(("for epoch in range(epochs):", "for epoch in range(epochs + 1):")),
               {"learn_2d": Loss(0, "wrong_epochs")}),
    Submission("nn/fit_outputs_swapped", ASSIGNMENT,
               "returns (val_losses, train_losses, params)",
               _fit(("return train_losses, val_losses,", "return val_losses, train_losses,")),
               {"learn_2d": Loss(0, "swapped_outputs")}),
    # ---- Part 7: wrong, and no listed name fits ----
    Submission("nn/shuffled_batches", ASSIGNMENT,
               "rows shuffled every epoch (torch.randperm), where the prose asks them in order",
               _fit(("        for start in range(0, len(X), batch_size):\n",
                     "        order = torch.randperm(len(X))\n"
                     "        X, y = X[order], y[order]\n"
                     "        for start in range(0, len(X), batch_size):\n")),
               {"learn_2d": Loss(0, None)}),
    Submission("nn/validation_on_training_set", ASSIGNMENT,
               "the validation loss computed on the training set (a copied line)",
               _fit(("loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val)",
                     "loss(X, y, w1, b1, w2, b2).item() / len(X)")),
               {"learn_2d": Loss(0, None)}),
    Submission("nn/fit_mutable_default", ASSIGNMENT,
               "fit(..., train_losses=[], val_losses=[]): the lists carry over between calls",
               _fit(("def fit(X, y, X_val, y_val, w1, b1, w2, b2, learning_rate, epochs, batch_size):\n"
                     "    train_losses, val_losses = [], []\n",
                     "def fit(X, y, X_val, y_val, w1, b1, w2, b2, learning_rate, epochs, batch_size,\n"
                     "        train_losses=[], val_losses=[]):\n")),
               {"learn_2d": Loss(0, None)}),
    Submission("nn/overlapping_batches", ASSIGNMENT,
               "a window sliding by one row: range(0, len(X), 1)",
               _fit(("range(0, len(X), batch_size)", "range(0, len(X) - batch_size + 1)")),
               {"learn_2d": Loss(0, None)}),
    # ---- Part 7: correct, written otherwise ----
    Submission("nn/fit_with_split", ASSIGNMENT,
               "correct: torch.split into batches, losses as a tensor",
               {FIT: '''
def fit(X, y, X_val, y_val, w1, b1, w2, b2, learning_rate, epochs, batch_size):
    train_losses = torch.zeros(epochs, dtype=X.dtype)
    val_losses = torch.zeros(epochs, dtype=X.dtype)
    params = (w1, b1, w2, b2)
    for epoch in range(epochs):
        train_losses[epoch] = loss(X, y, *params) / X.shape[0]
        val_losses[epoch] = loss(X_val, y_val, *params) / X_val.shape[0]
        for X_batch, y_batch in zip(torch.split(X, batch_size), torch.split(y, batch_size)):
            params = train_step(X_batch, y_batch, *params, learning_rate)
    return train_losses, val_losses, params
'''}),
    # ---- functions that change their inputs ----
    Submission("nn/train_step_plus_equals", ASSIGNMENT,
               "w1 += ... in train_step (issue 27): the caller's parameters change, and train "
               "and fit, which call it, change theirs",
               {"train_step_answer": '''
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    z1, a1, z2, output = forward(X, w1, b1, w2, b2)
    d_outp = (y - output) * sigmoid_delta(output)
    d_hidn = (d_outp @ w2.T) * sigmoid_delta(a1)
    w2 += learning_rate * (a1.T @ d_outp)
    b2 += learning_rate * d_outp.sum(0, keepdim=True)
    w1 += learning_rate * (X.T @ d_hidn)
    b1 += learning_rate * d_hidn.sum(0, keepdim=True)
    return w1, b1, w2, b2
'''},
               {"train_step": Loss(0, CHANGES_INPUTS),
                "train": Loss(0, CHANGES_INPUTS, ok=(None,)),
                "learn_2d": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("nn/train_writes_back", ASSIGNMENT,
               "train copies the trained parameters into the ones it was given (copy_)",
               {"train_answer": '''
def train(X, y, w1, b1, w2, b2, learning_rate=0.1, epochs=500):
    losses = []
    params = (w1, b1, w2, b2)
    current = params
    for epoch in range(epochs):
        losses.append(loss(X, y, *current).item())
        current = train_step(X, y, *current, learning_rate)
    for given, trained in zip(params, current):
        given.copy_(trained)  # keep the trained values in the notebook's variables
    print("final loss:", losses[-1])
    return losses, params
'''},
               {"train": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("nn/sigmoid_in_place", ASSIGNMENT,
               "sigmoid_activation with in-place operations on z: it returns z itself, so "
               "forward's z1 and z2 become a1 and output",
               {"sigmoid_activation_answer": '''
def sigmoid_activation(z):
    return z.neg_().exp_().add_(1).reciprocal_()
'''},
               {"sigmoid_activation": Loss(0, CHANGES_INPUTS),
                "forward": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("nn/sigmoid_delta_in_place", ASSIGNMENT,
               "sigmoid_delta as a.mul_(1 - a): right values, a overwritten and returned; "
               "train_step then reads the overwritten a1 for w2's gradient",
               {"sigmoid_delta_answer": '''
def sigmoid_delta(a):
    return a.mul_(1 - a)
'''},
               {"sigmoid_delta": Loss(0, CHANGES_INPUTS),
                "train_step": Loss(0, None, ok=(CHANGES_INPUTS,)),
                "train": Loss(0, None, ok=(CHANGES_INPUTS,)),
                "learn_2d": Loss(0, None, ok=(CHANGES_INPUTS,))},
               changes_inputs=True),
    Submission("nn/fit_standardises_X", ASSIGNMENT,
               "fit standardises the inputs in place (X -= mean, X /= std) before training",
               _fit(("    train_losses, val_losses = [], []\n",
                     "    train_losses, val_losses = [], []\n"
                     "    mean, std = X.mean(0, keepdim=True), X.std(0, keepdim=True)\n"
                     "    X -= mean\n    X /= std\n    X_val -= mean\n    X_val /= std\n")),
               {"learn_2d": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("nn/check_perturbs_inputs", ASSIGNMENT,
               "the gradient check on the given tensors, the entry never put back: wrong "
               "differences, and the caller's parameters drift",
               _grad(("params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()]",
                      "params = [w1, b1, w2, b2]"),
                     ("p[i, j] = saved + h", "p[i, j] += h"),
                     ("p[i, j] = saved - h", "p[i, j] -= 2 * h"),
                     ("                p[i, j] = saved\n", "")),
               {"gradient_check": Loss(0, "perturbation_kept", ok=(CHANGES_INPUTS,))},
               changes_inputs=True),
    Submission("nn/error_in_y", ASSIGNMENT,
               "train_step builds d_outp in y itself (d_outp = y; d_outp -= output): the "
               "caller's targets change, and train and fit then train on them",
               edited(BASE, "train_step_answer",
                      ("    d_outp = (y - output) * sigmoid_delta(output)\n",
                       "    d_outp = y\n    d_outp -= output\n    d_outp *= sigmoid_delta(output)\n")),
               {"train_step": Loss(0, CHANGES_INPUTS),
                "train": Loss(0, CHANGES_INPUTS, ok=(None,)),
                "learn_2d": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("nn/train_step_clones_then_updates", ASSIGNMENT,
               "correct: clones, then in-place updates of the clones",
               {"train_step_answer": '''
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    w1, b1, w2, b2 = (p.clone() for p in (w1, b1, w2, b2))
    _, a1, _, output = forward(X, w1, b1, w2, b2)
    d_outp = (y - output) * sigmoid_delta(output)
    d_hidn = torch.mm(d_outp, w2.t()) * sigmoid_delta(a1)
    w2 += learning_rate * torch.mm(a1.t(), d_outp)
    b2 += learning_rate * d_outp.sum(dim=0, keepdim=True)
    w1 += learning_rate * torch.mm(X.t(), d_hidn)
    b1 += learning_rate * d_hidn.sum(dim=0, keepdim=True)
    return w1, b1, w2, b2
'''}),
]
