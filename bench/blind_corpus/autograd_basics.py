# ruff: noqa: E501 - the submissions quote code: a replaced line is kept whole, as it reads in the notebook
"""autograd_basics: functions that change their inputs (and a correct variant)."""

from . import CHANGES_INPUTS, Loss, Submission, edited

ASSIGNMENT = "autograd_basics"
# The graded parts when the corpus was written: a part added since is not judged.
PARTS = ("requires_grad", "grad_fn", "losses", "accumulate", "sgd_step", "manual_step",
         "softmax_cross_entropy")

BASE = {
    "requires_grad_answer": '''
def prepare(X, w1, b1, w2, b2):
    return (X.clone(),) + tuple(p.detach().clone().requires_grad_(True) for p in (w1, b1, w2, b2))
''',
    "grad_fn_answer": '''
def sigmoid_local_gradient(z):
    leaf = z.detach().clone().requires_grad_()
    a = torch.sigmoid(leaf)
    local_gradient = a.grad_fn(torch.ones_like(a))
    return a, local_gradient
''',
    "losses_answer": '''
def forward(X, w1, b1, w2, b2):
    return torch.sigmoid(torch.sigmoid(X @ w1 + b1) @ w2 + b2)


def sum_and_mean_losses(X, y, w1, b1, w2, b2):
    X, w1, b1, w2, b2 = prepare(X, w1, b1, w2, b2)
    output = forward(X, w1, b1, w2, b2)
    sum_loss = 0.5 * ((output - y) ** 2).sum()
    mse_loss = nn.MSELoss()(output, y)
    sum_loss.backward(retain_graph=True)
    sum_grad_w2 = w2.grad.clone()
    w2.grad = None
    mse_loss.backward()
    mse_grad_w2 = w2.grad.clone()
    scale = torch.tensor(2 / y.numel(), dtype=y.dtype)
    return sum_loss, mse_loss, sum_grad_w2, mse_grad_w2, scale
''',
    "accumulate_answer": '''
def grads_over_two_backward_calls(X, y, w1, b1, w2, b2):
    X, w1, b1, w2, b2 = prepare(X, w1, b1, w2, b2)

    def loss():
        return 0.5 * ((forward(X, w1, b1, w2, b2) - y) ** 2).sum()

    loss().backward()
    after_one = w1.grad.clone()
    loss().backward()
    after_two = w1.grad.clone()
    w1.grad.zero_()
    loss().backward()
    after_zeroing = w1.grad.clone()
    return after_one, after_two, after_zeroing
''',
    "sgd_step_answer": '''
def sgd_step(params, X, y, learning_rate):
    optimizer = optim.SGD(params, lr=learning_rate)
    optimizer.zero_grad()
    loss = nn.MSELoss()(forward(X, *params), y)
    loss.backward()
    optimizer.step()
''',
    "manual_step_answer": '''
def manual_step(params, X, y, learning_rate):
    for p in params:
        p.grad = None
    loss = nn.MSELoss()(forward(X, *params), y)
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= learning_rate * p.grad
''',
    "softmax_cross_entropy_answer": '''
def softmax_cross_entropy(logits, labels):
    shifted = logits - logits.max(dim=1, keepdim=True).values
    exps = torch.exp(shifted)
    probabilities = exps / exps.sum(dim=1, keepdim=True)
    leaf = logits.detach().clone().requires_grad_()
    loss = nn.CrossEntropyLoss()(leaf, labels)
    loss.backward()
    return probabilities, loss, leaf.grad
''',
}

SUBMISSIONS = [
    Submission("ab/prepare_requires_grad_in_place", ASSIGNMENT,
               "prepare calls w1.requires_grad_() on the given tensors and returns them "
               "(issue 27); sum_and_mean_losses and Part 4 then fill the caller's .grad",
               {"requires_grad_answer": '''
def prepare(X, w1, b1, w2, b2):
    for p in (w1, b1, w2, b2):
        p.requires_grad_()
    return X, w1, b1, w2, b2
'''},
               {"requires_grad": Loss(0, CHANGES_INPUTS),
                "losses": Loss(0, CHANGES_INPUTS, ok=(None,)),
                "accumulate": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("ab/prepare_returns_X", ASSIGNMENT,
               "prepare returns the given X itself (the parameters are new leaves); the "
               "prose says to return new tensors",
               {"requires_grad_answer": '''
def prepare(X, w1, b1, w2, b2):
    return (X,) + tuple(p.detach().clone().requires_grad_(True) for p in (w1, b1, w2, b2))
'''},
               {"requires_grad": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("ab/local_gradient_on_z", ASSIGNMENT,
               "sigmoid_local_gradient calls z.requires_grad_() on its input instead of "
               "making a leaf copy",
               {"grad_fn_answer": '''
def sigmoid_local_gradient(z):
    z.requires_grad_()
    a = torch.sigmoid(z)
    return a, a.grad_fn(torch.ones_like(a))
'''},
               {"grad_fn": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("ab/softmax_shifts_logits_in_place", ASSIGNMENT,
               "softmax_cross_entropy subtracts the row maximum from logits in place",
               edited(BASE, "softmax_cross_entropy_answer",
                      ("    shifted = logits - logits.max(dim=1, keepdim=True).values\n"
                       "    exps = torch.exp(shifted)\n",
                       "    logits -= logits.max(dim=1, keepdim=True).values\n"
                       "    exps = torch.exp(logits)\n")),
               {"softmax_cross_entropy": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("ab/sgd_step_moves_X", ASSIGNMENT,
               "sgd_step centres the batch in place (X -= X.mean(0)) before its step",
               edited(BASE, "sgd_step_answer",
                      ("    optimizer.zero_grad()\n", "    optimizer.zero_grad()\n    X -= X.mean(0)\n")),
               {"sgd_step": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("ab/prepare_otherwise", ASSIGNMENT,
               "correct: torch.tensor-free copies, requires_grad set on the new tensors",
               {"requires_grad_answer": '''
def prepare(X, w1, b1, w2, b2):
    copies = [t.clone().detach() for t in (X, w1, b1, w2, b2)]
    for p in copies[1:]:
        p.requires_grad = True
    return tuple(copies)
'''}),
]
