"""nn_from_scratch: the 5-3-1 network by hand, its gradient check, training and two moons."""

from . import CHANGES_INPUTS, Corpus, Loss, cascade

PARTS = ("sigmoid_activation", "forward", "sigmoid_delta", "gradient_check", "train_step",
         "train", "learn_2d")
_corpus = Corpus("nn_from_scratch")
BASE = _corpus.base
SUBMISSIONS = _corpus.submissions
cell = _corpus.with_defs
_CASCADE = cascade()


def _step(*lines: str) -> dict[str, str]:
    body = "\n    ".join(lines)
    return {"train_step_answer": cell("train_step_answer", f'''
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    z1, a1, z2, output = forward(X, w1, b1, w2, b2)
    {body}
    return w1, b1, w2, b2
''')}


def _train(epochs: str, rate: str, *record: str) -> dict[str, str]:
    """train looping `for {epochs}`, calling train_step with `rate`, recording each loss
    with `record` (by default loss(...).item())."""
    record = record or ("losses.append(loss(X, y, w1, b1, w2, b2).item())",)
    lines = "\n        ".join(record)
    final = "losses[-1]" if epochs.startswith("_") else "loss(X, y, w1, b1, w2, b2).item()"
    return {"train_answer": cell("train_answer", f'''
def train(X, y, w1, b1, w2, b2, learning_rate=0.1, epochs=500):
    losses = []
    for {epochs}:
        {lines}
        w1, b1, w2, b2 = train_step(X, y, w1, b1, w2, b2, {rate})
    print("final loss", {final}, w1, b1, w2, b2)
    return losses, (w1, b1, w2, b2)
''')}


_DELTAS = ("d_outp = (y - output) * sigmoid_delta(output)",
           "d_hidn = torch.mm(d_outp, w2.t()) * sigmoid_delta(a1)")


def _fit(body: str) -> dict[str, str]:
    return {"learn_2d_answer": cell("learn_2d_answer", f'''
def fit(X, y, X_val, y_val, w1, b1, w2, b2, learning_rate, epochs, batch_size):
    train_losses, val_losses = [], []
    for _ in range(epochs):
{body}
    return train_losses, val_losses, (w1, b1, w2, b2)
''')}


_RECORD = '''        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))
        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X_val))'''
_BATCHES = '''        for start in range(0, len(X), batch_size):
            rows = slice(start, start + batch_size)
            w1, b1, w2, b2 = train_step(X[rows], y[rows], w1, b1, w2, b2, learning_rate)'''


def _numerical(perturb: str, result: str = "gradient") -> dict[str, str]:
    return {"gradient_check_answer": cell("gradient_check_answer", f'''
def numerical_gradients(X, y, w1, b1, w2, b2, h):
    params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()]
    gradients = []
    for p in params:
        gradient = torch.zeros_like(p)
        values = []
        for i in range(p.numel()):
{perturb}
        gradients.append({result})
    return tuple(gradients)
''')}


# ---- wrong -------------------------------------------------------------------------------

_corpus.add("sigmoid_in_place_chain", "sigmoid_activation chains in-place ops on z: the input "
            "is overwritten and returned (forward's z1 becomes a1)",
            {"sigmoid_activation_answer": cell("sigmoid_activation_answer", '''
def sigmoid_activation(z):
    return z.neg_().exp_().add_(1).reciprocal_()
''')},
            sigmoid_activation=Loss(0, CHANGES_INPUTS),
            forward=_CASCADE)
_corpus.add("sigmoid_exp_positive", "1 / (1 + exp(z)): the minus sign of the exponent lost",
            {"sigmoid_activation_answer": cell("sigmoid_activation_answer", '''
def sigmoid_activation(z):
    return 1 / (1 + torch.exp(z))
''')},
            sigmoid_activation=Loss(0, None), forward=_CASCADE, train_step=_CASCADE,
            train=_CASCADE, learn_2d=_CASCADE, gradient_check=_CASCADE)
_corpus.add("forward_bias_transposed", "z1 = X @ w1 + b1.t(): broadcasts to a square, or fails",
            {"forward_answer": cell("forward_answer", '''
def forward(X, w1, b1, w2, b2):
    z1 = torch.mm(X, w1) + b1.t()
    a1 = sigmoid_activation(z1)
    z2 = torch.mm(a1, w2) + b2
    return z1, a1, z2, sigmoid_activation(z2)
''')},
            forward=Loss(0, "transposed", ok=("shape",)),
            **dict.fromkeys(("gradient_check", "train_step", "train", "learn_2d"),
                            cascade("transposed", "shape")))
_corpus.add("forward_one_output_product", "z2 = (a1 * w2.t()).sum(1, keepdim=True) + b2: "
            "right for one output unit only",
            {"forward_answer": cell("forward_answer", '''
def forward(X, w1, b1, w2, b2):
    z1 = X @ w1 + b1
    a1 = sigmoid_activation(z1)
    z2 = (a1 * w2.t()).sum(dim=1, keepdim=True) + b2
    return z1, a1, z2, sigmoid_activation(z2)
''')},
            forward=Loss(0, None, ok=("shape", "exception")),
            **dict.fromkeys(("gradient_check", "train_step", "train"),
                            cascade("shape", "exception")))
_corpus.add("delta_via_exp", "sigmoid_delta(a) = exp(-a) / (1 + exp(-a))**2: the derivative "
            "taken at a, as if a were z",
            {"sigmoid_delta_answer": cell("sigmoid_delta_answer", '''
def sigmoid_delta(a):
    return torch.exp(-a) / (1 + torch.exp(-a)) ** 2
''')},
            sigmoid_delta=Loss(0, "sigmoid_twice", ok=("delta_of_z",)),
            **dict.fromkeys(("train_step", "train", "learn_2d"),
                            cascade("sigmoid_twice", "delta_of_z")))
_corpus.add("delta_in_place", "sigmoid_delta multiplies a in place (a.mul_(1 - a)): train_step "
            "then uses the changed a1",
            {"sigmoid_delta_answer": cell("sigmoid_delta_answer", '''
def sigmoid_delta(a):
    return a.mul_(1 - a)
''')},
            sigmoid_delta=Loss(0, CHANGES_INPUTS), train_step=_CASCADE, train=_CASCADE,
            learn_2d=_CASCADE)
_corpus.add("difference_over_h", "(L(p + h) - L(p - h)) / h: the 2 of 2h left out",
            _numerical('''            start = p.view(-1)[i].item()
            p.view(-1)[i] = start + h
            up = loss(X, y, *params)
            p.view(-1)[i] = start - h
            down = loss(X, y, *params)
            p.view(-1)[i] = start
            gradient.view(-1)[i] = (up - down) / h'''),
            gradient_check=Loss(0, "factor_of_2"))
_corpus.add("gradient_from_python_floats", "the differences collected as Python floats and "
            "turned into torch.tensor(values): float32",
            _numerical('''            start = p.view(-1)[i].item()
            p.view(-1)[i] = start + h
            up = loss(X, y, *params).item()
            p.view(-1)[i] = start - h
            down = loss(X, y, *params).item()
            p.view(-1)[i] = start
            values.append((up - down) / (2 * h))''', "torch.tensor(values).reshape(p.shape)"),
            gradient_check=Loss(0, "float32"))
_corpus.add("perturb_originals_by_addition", "perturbs the given tensors themselves (+h, -2h, "
            "+h): they end changed in their last bits",
            {"gradient_check_answer": cell("gradient_check_answer", '''
def numerical_gradients(X, y, w1, b1, w2, b2, h):
    params = [w1, b1, w2, b2]
    gradients = []
    for p in params:
        gradient = torch.zeros_like(p)
        flat = p.view(-1)
        for i in range(p.numel()):
            flat[i] += h
            up = loss(X, y, *params)
            flat[i] -= 2 * h
            down = loss(X, y, *params)
            flat[i] += h
            gradient.view(-1)[i] = (up - down) / (2 * h)
        gradients.append(gradient)
    return tuple(gradients)
''')},
            gradient_check=Loss(0, CHANGES_INPUTS))
_corpus.add("b1_summed_over_units", "b1's update sums d_hidn over the units (axis 1), not over "
            "the batch", _step(*_DELTAS,
                               "w2 = w2 + learning_rate * torch.mm(a1.t(), d_outp)",
                               "b2 = b2 + learning_rate * d_outp.sum(0, keepdim=True)",
                               "w1 = w1 + learning_rate * torch.mm(X.t(), d_hidn)",
                               "b1 = b1 + learning_rate * d_hidn.sum(1, keepdim=True)"),
            train_step=Loss(0, "bias_wrong_axis"), train=Loss(0, "bias_wrong_axis", ok=(None,)),
            learn_2d=Loss(0, "bias_wrong_axis", ok=(None,)))
_corpus.add("w2_updated_before_d_hidn", "w2 is updated before d_hidn is computed from it",
            _step("d_outp = (y - output) * sigmoid_delta(output)",
                  "w2 = w2 + learning_rate * torch.mm(a1.t(), d_outp)",
                  "b2 = b2 + learning_rate * d_outp.sum(0, keepdim=True)",
                  "d_hidn = torch.mm(d_outp, w2.t()) * sigmoid_delta(a1)",
                  "w1 = w1 + learning_rate * torch.mm(X.t(), d_hidn)",
                  "b1 = b1 + learning_rate * d_hidn.sum(0, keepdim=True)"),
            train_step=Loss(0, None), train=_CASCADE, learn_2d=_CASCADE)
_corpus.add("biases_without_rate", "the learning rate multiplies the weights' updates only",
            _step(*_DELTAS,
                  "w2 = w2 + learning_rate * torch.mm(a1.t(), d_outp)",
                  "b2 = b2 + d_outp.sum(0, keepdim=True)",
                  "w1 = w1 + learning_rate * torch.mm(X.t(), d_hidn)",
                  "b1 = b1 + d_hidn.sum(0, keepdim=True)"),
            train_step=Loss(0, "learning_rate_scale"),
            train=Loss(0, "learning_rate_scale", ok=(None,)),
            learn_2d=Loss(0, "learning_rate_scale", ok=(None,)))
_corpus.add("w2_update_transposed", "w2's update d_outp^T a1: (outputs, hidden), broadcast "
            "onto w2", _step(*_DELTAS,
                             "w2 = w2 + learning_rate * torch.mm(d_outp.t(), a1)",
                             "b2 = b2 + learning_rate * d_outp.sum(0, keepdim=True)",
                             "w1 = w1 + learning_rate * torch.mm(X.t(), d_hidn)",
                             "b1 = b1 + learning_rate * d_hidn.sum(0, keepdim=True)"),
            train_step=Loss(0, "transposed", ok=("shape",)),
            train=Loss(0, "transposed", ok=("shape", None)),
            learn_2d=Loss(0, "transposed", ok=("shape", None)))
_corpus.add("step_updates_in_place", "train_step updates the four tensors in place with add_",
            {"train_step_answer": cell("train_step_answer", '''
def train_step(X, y, w1, b1, w2, b2, learning_rate):
    z1, a1, z2, output = forward(X, w1, b1, w2, b2)
    d_outp = (y - output) * sigmoid_delta(output)
    d_hidn = torch.mm(d_outp, w2.t()) * sigmoid_delta(a1)
    steps = (torch.mm(X.t(), d_hidn), d_hidn.sum(0, keepdim=True), torch.mm(a1.t(), d_outp),
             d_outp.sum(0, keepdim=True))
    for p, step in zip((w1, b1, w2, b2), steps):
        p.add_(learning_rate * step)
    return w1, b1, w2, b2
''')},
            train_step=Loss(0, CHANGES_INPUTS), train=Loss(0, CHANGES_INPUTS, ok=(None,)),
            learn_2d=Loss(0, CHANGES_INPUTS, ok=(None,)))
_corpus.add("train_from_epoch_one", "train loops for epoch in range(1, epochs): one epoch short",
            _train("epoch in range(1, epochs)", "learning_rate"),
            train=Loss(0, "wrong_epochs"))
_corpus.add("train_default_rate", "train_step called with the default 0.1, not learning_rate",
            _train("_ in range(epochs)", "0.1"),
            train=Loss(0, "wrong_learning_rate"))
_corpus.add("train_records_mse", "train records the mean squared error, not 0.5 * sum",
            _train("_ in range(epochs)", "learning_rate",
                   "output = forward(X, w1, b1, w2, b2)[3]",
                   "losses.append(((y - output) ** 2).mean().item())"),
            train=Loss(0, "mean_vs_sum", ok=("factor_of_2",)))
_corpus.add("fit_losses_summed", "fit records the summed loss, not the mean per example",
            _fit('''        train_losses.append(loss(X, y, w1, b1, w2, b2).item())
        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item())
''' + _BATCHES),
            learn_2d=Loss(0, "mean_vs_sum"))
_corpus.add("fit_val_over_train_size", "the validation loss divided by len(X), the training "
            "set's size",
            _fit('''        train_losses.append(loss(X, y, w1, b1, w2, b2).item() / len(X))
        val_losses.append(loss(X_val, y_val, w1, b1, w2, b2).item() / len(X))
''' + _BATCHES),
            learn_2d=Loss(0, None))
_corpus.add("fit_shuffled", "fit shuffles the rows every epoch, as the usual recipe does, where "
            "the prose asks them in order",
            _fit(_RECORD + '''
        order = torch.randperm(len(X))
        X, y = X[order], y[order]
''' + _BATCHES),
            learn_2d=Loss(0, None))
_corpus.add("fit_losses_after_epoch", "fit records the losses after the epoch's steps",
            _fit(_BATCHES + "\n" + _RECORD),
            learn_2d=Loss(0, "loss_after_update"))

# ---- correct, written differently -------------------------------------------------------

_corpus.add("ok_delta_expanded", "sigmoid_delta as a - a**2", {
    "sigmoid_delta_answer": cell("sigmoid_delta_answer", '''
def sigmoid_delta(a):
    return a - a ** 2
''')})
_corpus.add("ok_gradient_by_basis_vector", "each difference from p + h e_i and p - h e_i, "
            "new tensors, no entry to put back",
            _numerical('''            step = torch.zeros_like(p)
            step.view(-1)[i] = h
            up = loss(X, y, *[q + step if q is p else q for q in params])
            down = loss(X, y, *[q - step if q is p else q for q in params])
            gradient.view(-1)[i] = (up - down) / (2 * h)'''))
_corpus.add("ok_fit_index_batches", "fit cuts the batches with torch.split and records the "
            "losses with forward",
            _fit('''        sets = ((X, y, train_losses), (X_val, y_val, val_losses))
        for data, target, record in sets:
            output = forward(data, w1, b1, w2, b2)[3]
            record.append((0.5 * ((target - output) ** 2).sum() / data.shape[0]).item())
        for X_batch, y_batch in zip(torch.split(X, batch_size), torch.split(y, batch_size)):
            w1, b1, w2, b2 = train_step(X_batch, y_batch, w1, b1, w2, b2, learning_rate)'''))
