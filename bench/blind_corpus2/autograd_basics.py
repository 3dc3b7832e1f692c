"""autograd_basics: leaves, grad_fn, two losses, .grad accumulating, SGD steps, softmax."""

from . import CHANGES_INPUTS, Corpus, Loss

PARTS = ("requires_grad", "grad_fn", "losses", "accumulate", "sgd_step", "manual_step",
         "softmax_cross_entropy")
_corpus = Corpus("autograd_basics")
BASE = _corpus.base
SUBMISSIONS = _corpus.submissions
cell = _corpus.with_defs


def _losses(body: str) -> dict[str, str]:
    return {"losses_answer": cell("losses_answer", f'''
def sum_and_mean_losses(X, y, w1, b1, w2, b2):
    X, w1, b1, w2, b2 = prepare(X, w1, b1, w2, b2)
    output = forward(X, w1, b1, w2, b2)
{body}
''')}


def _softmax(*lines: str) -> dict[str, str]:
    """softmax_cross_entropy with these lines for the probabilities; the loss and its
    gradient as the prose asks."""
    body = "\n    ".join(lines)
    return {"softmax_cross_entropy_answer": cell("softmax_cross_entropy_answer", f'''
def softmax_cross_entropy(logits, labels):
    {body}
    logits = logits.clone().requires_grad_()
    loss = nn.CrossEntropyLoss()(logits, labels)
    loss.backward()
    return probabilities, loss, logits.grad
''')}


# ---- wrong -------------------------------------------------------------------------------

_corpus.add("prepare_all_five", "prepare makes all five tensors leaves that require grad, X "
            "included, in one comprehension",
            {"requires_grad_answer": cell("requires_grad_answer", '''
def prepare(X, w1, b1, w2, b2):
    return tuple(t.clone().requires_grad_() for t in (X, w1, b1, w2, b2))
''')},
            requires_grad=Loss(0, "requires_grad_on_input"))
_corpus.add("prepare_detach_shares", "prepare uses .detach().requires_grad_(): leaves, but "
            "sharing the caller's memory",
            {"requires_grad_answer": cell("requires_grad_answer", '''
def prepare(X, w1, b1, w2, b2):
    params = [p.detach().requires_grad_() for p in (w1, b1, w2, b2)]
    return (X.detach(), *params)
''')},
            requires_grad=Loss(0, CHANGES_INPUTS))
_corpus.add("grad_fn_no_copy", "sigmoid_local_gradient calls z.requires_grad_() on the input "
            "instead of a leaf copy",
            {"grad_fn_answer": cell("grad_fn_answer", '''
def sigmoid_local_gradient(z):
    z.requires_grad_()
    a = torch.sigmoid(z)
    return a, a.grad_fn(torch.ones_like(a))
''')},
            grad_fn=Loss(0, CHANGES_INPUTS))
_corpus.add("grad_fn_of_hand_sigmoid", "a = 1 / (1 + exp(-z)) by hand, then a.grad_fn: the "
            "node of the division, not of the sigmoid",
            {"grad_fn_answer": cell("grad_fn_answer", '''
def sigmoid_local_gradient(z):
    z = z.clone().requires_grad_()
    a = 1 / (1 + torch.exp(-z))
    local_gradient = a.grad_fn(torch.ones_like(a))
    if isinstance(local_gradient, tuple):
        local_gradient = local_gradient[0]
    return a, local_gradient
''')},
            grad_fn=Loss(0, None, ok=("route_not_taught",)))
_corpus.add("scale_python_float", "scale returned as the Python float 2 / y.numel()",
            _losses('''
    sum_loss = 0.5 * ((output - y) ** 2).sum()
    mse_loss = nn.MSELoss()(output, y)
    sum_loss.backward(retain_graph=True)
    sum_grad_w2 = w2.grad.clone()
    w2.grad = None
    mse_loss.backward()
    return sum_loss, mse_loss, sum_grad_w2, w2.grad.clone(), 2 / y.numel()'''),
            losses=Loss(0, "wrong_type"))
_corpus.add("grad_not_cleared_between_losses", "no w2.grad = None between the two backward "
            "calls: the MSE gradient has the sum's added",
            _losses('''
    sum_loss = 0.5 * ((output - y) ** 2).sum()
    mse_loss = nn.MSELoss()(output, y)
    sum_loss.backward(retain_graph=True)
    sum_grad_w2 = w2.grad.clone()
    mse_loss.backward()
    mse_grad_w2 = w2.grad.clone()
    return sum_loss, mse_loss, sum_grad_w2, mse_grad_w2, torch.tensor(2 / y.numel(),
                                                                      dtype=y.dtype)'''),
            losses=Loss(0, "missing_zero_grad", ok=("accumulation_lost",)))
_corpus.add("sum_loss_without_half", "L_sum written without its 1/2",
            _losses('''
    sum_loss = ((output - y) ** 2).sum()
    mse_loss = nn.MSELoss()(output, y)
    sum_loss.backward(retain_graph=True)
    sum_grad_w2 = w2.grad.clone()
    w2.grad = None
    mse_loss.backward()
    return (sum_loss, mse_loss, sum_grad_w2, w2.grad.clone(),
            torch.tensor(2 / y.numel(), dtype=y.dtype))'''),
            losses=Loss(0, "factor_of_2"))
_corpus.add("accumulate_reduction_sum", "grads_over_two_backward_calls uses "
            "nn.MSELoss(reduction='sum'): the squares' sum without the 1/2",
            {"accumulate_answer": cell("accumulate_answer", '''
def grads_over_two_backward_calls(X, y, w1, b1, w2, b2):
    X, w1, b1, w2, b2 = prepare(X, w1, b1, w2, b2)
    copies = []
    for step in range(3):
        if step == 2:
            w1.grad.zero_()
        nn.MSELoss(reduction="sum")(forward(X, w1, b1, w2, b2), y).backward()
        copies.append(w1.grad.clone())
    return tuple(copies)
''')},
            accumulate=Loss(0, "factor_of_2"))
_corpus.add("accumulate_without_prepare", "grads_over_two_backward_calls forgets prepare: "
            "the parameters do not require grad",
            {"accumulate_answer": cell("accumulate_answer", '''
def grads_over_two_backward_calls(X, y, w1, b1, w2, b2):
    def loss():
        return 0.5 * ((forward(X, w1, b1, w2, b2) - y) ** 2).sum()

    loss().backward()
    after_one = w1.grad.clone()
    loss().backward()
    after_two = w1.grad.clone()
    w1.grad.zero_()
    loss().backward()
    return after_one, after_two, w1.grad.clone()
''')},
            accumulate=Loss(0, "missing_requires_grad"))
_corpus.add("zero_grad_after_step", "sgd_step clears the gradients at the end, after step(), "
            "as a clean-up: the stale .grad is used",
            {"sgd_step_answer": cell("sgd_step_answer", '''
def sgd_step(params, X, y, learning_rate):
    optimizer = optim.SGD(params, lr=learning_rate)
    nn.MSELoss()(forward(X, *params), y).backward()
    optimizer.step()
    optimizer.zero_grad()
''')},
            sgd_step=Loss(0, "missing_zero_grad"))
_corpus.add("sgd_rate_twice", "the loss is multiplied by the learning rate and SGD has "
            "lr=learning_rate too",
            {"sgd_step_answer": cell("sgd_step_answer", '''
def sgd_step(params, X, y, learning_rate):
    optimizer = optim.SGD(params, lr=learning_rate)
    optimizer.zero_grad()
    loss = learning_rate * nn.MSELoss()(forward(X, *params), y)
    loss.backward()
    optimizer.step()
''')},
            sgd_step=Loss(0, "learning_rate_scale"))
_corpus.add("manual_new_list", "manual_step builds a new list of updated tensors: the "
            "parameters are never changed",
            {"manual_step_answer": cell("manual_step_answer", '''
def manual_step(params, X, y, learning_rate):
    for p in params:
        p.grad = None
    nn.MSELoss()(forward(X, *params), y).backward()
    with torch.no_grad():
        params = [p - learning_rate * p.grad for p in params]
    return params
''')},
            manual_step=Loss(0, "rebound_parameter"))
_corpus.add("manual_zero_after_backward", "manual_step zeroes every .grad in place after "
            "backward(), meaning to clear them, then updates by zero",
            {"manual_step_answer": cell("manual_step_answer", '''
def manual_step(params, X, y, learning_rate):
    loss = nn.MSELoss()(forward(X, *params), y)
    for p in params:
        if p.grad is not None:
            p.grad = None
    loss.backward()
    with torch.no_grad():
        for p in params:
            p.grad.zero_()
            p -= learning_rate * p.grad
''')},
            manual_step=Loss(0, "cleared_before_step"))
_corpus.add("manual_sub_negative_alpha", "p.sub_(p.grad, alpha=-learning_rate): climbs",
            {"manual_step_answer": cell("manual_step_answer", '''
def manual_step(params, X, y, learning_rate):
    for p in params:
        p.grad = None
    nn.MSELoss()(forward(X, *params), y).backward()
    with torch.no_grad():
        for p in params:
            p.sub_(p.grad, alpha=-learning_rate)
''')},
            manual_step=Loss(0, "sign"))
_corpus.add("softmax_global_max", "the softmax subtracts the largest logit of the whole batch, "
            "not each row's: ordinary rows underflow to 0/0",
            _softmax("exps = torch.exp(logits - logits.max())",
                     "probabilities = exps / exps.sum(dim=1, keepdim=True)"),
            softmax_cross_entropy=Loss(0, "not_finite"))
_corpus.add("softmax_sum_without_keepdim", "exps / exps.sum(dim=1): the row sums broadcast "
            "along the columns (silently when the batch is as wide as the classes)",
            _softmax("exps = torch.exp(logits - logits.max(dim=1, keepdim=True).values)",
                     "probabilities = exps / exps.sum(dim=1)"),
            softmax_cross_entropy=Loss(0, None))
_corpus.add("softmax_float32", "the softmax computed on logits.float()",
            _softmax("z = logits.float()",
                     "exps = torch.exp(z - z.max(dim=1, keepdim=True).values)",
                     "probabilities = exps / exps.sum(dim=1, keepdim=True)"),
            softmax_cross_entropy=Loss(0, "float32"))

# ---- correct, written differently -------------------------------------------------------

_corpus.add("ok_scale_from_the_losses", "scale = mse_loss / sum_loss (exactly 2/N), a 0-d "
            "tensor that carries a graph",
            _losses('''
    sum_loss = ((output - y) ** 2).sum() / 2
    mse_loss = ((output - y) ** 2).mean()
    sum_loss.backward(retain_graph=True)
    sum_grad_w2 = w2.grad
    w2.grad = None
    mse_loss.backward()
    return sum_loss, mse_loss, sum_grad_w2, w2.grad, mse_loss / sum_loss'''))
_corpus.add("ok_zeroing_stale_nan", "manual_step clears with p.grad.zero_() before backward "
            "(NaN zeroed is 0), and updates through p.data",
            {"manual_step_answer": cell("manual_step_answer", '''
def manual_step(params, X, y, learning_rate):
    for p in params:
        if p.grad is not None:
            p.grad.zero_()
    nn.MSELoss()(forward(X, *params), y).backward()
    for p in params:
        p.data -= learning_rate * p.grad
''')})
_corpus.add("ok_accumulate_grad_none", "clears with w1.grad = None instead of zero_(), and "
            "one retained graph backward three times",
            {"accumulate_answer": cell("accumulate_answer", '''
def grads_over_two_backward_calls(X, y, w1, b1, w2, b2):
    X, w1, b1, w2, b2 = prepare(X, w1, b1, w2, b2)
    loss = 0.5 * ((forward(X, w1, b1, w2, b2) - y) ** 2).sum()
    loss.backward(retain_graph=True)
    after_one = w1.grad.clone()
    loss.backward(retain_graph=True)
    after_two = w1.grad.clone()
    w1.grad = None
    loss.backward()
    return after_one, after_two, w1.grad
''')})
_corpus.add("ok_sgd_momentum_first_step", "optim.SGD with momentum=0.9: its first step is "
            "plain SGD",
            {"sgd_step_answer": cell("sgd_step_answer", '''
def sgd_step(params, X, y, learning_rate):
    optimizer = optim.SGD(params, lr=learning_rate, momentum=0.9)
    optimizer.zero_grad(set_to_none=False)
    loss = ((forward(X, *params) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
''')})
