# ruff: noqa: E501 - the submissions quote code: a replaced line is kept whole, as it reads in the notebook
"""two_layer_net: functions that change their inputs (and correct in-place variants)."""

from . import CHANGES_INPUTS, Loss, Submission, edited

ASSIGNMENT = "two_layer_net"
# The graded parts when the corpus was written: a part added since is not judged.
PARTS = ("relu_grad_loop", "relu_grad_vectorized", "backward", "train", "speed")

BASE = {
    "relu_grad_loop_answer": '''
def relu_grad_loop(h):
    grad = torch.zeros_like(h)
    flat_h = h.reshape(-1)
    flat_grad = grad.view(-1)
    for i in range(flat_h.numel()):
        if flat_h[i] > 0:
            flat_grad[i] = 1.0
    return grad
''',
    "relu_grad_vectorized_answer": '''
def relu_grad_vectorized(h):
    return (h > 0).to(h.dtype)
''',
    "backward_answer": '''
def backward(x, y, w1, w2):
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)
    loss = (y_pred - y).pow(2).sum()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)
    grad_w1 = x.t().mm(grad_h)
    return loss, grad_w1, grad_w2
''',
    "train_answer": '''
def train(x, y, w1, w2, learning_rate, steps):
    losses = []
    for _ in range(steps):
        loss, grad_w1, grad_w2 = backward(x, y, w1, w2)
        losses.append(loss.item())
        w1 = w1 - learning_rate * grad_w1
        w2 = w2 - learning_rate * grad_w2
    return losses, w1, w2
''',
}

_IN_PLACE_UPDATES = ("        w1 = w1 - learning_rate * grad_w1\n        w2 = w2 - learning_rate * grad_w2",
                     "        w1 -= learning_rate * grad_w1\n        w2 -= learning_rate * grad_w2")


SUBMISSIONS = [
    Submission("tln/loop_writes_into_h", ASSIGNMENT,
               "relu_grad_loop writes each slope into h.view(-1) and returns h (issue 27)",
               {"relu_grad_loop_answer": '''
def relu_grad_loop(h):
    flat = h.view(-1)
    for i in range(flat.numel()):
        flat[i] = 1.0 if flat[i] > 0 else 0.0
    return h
'''},
               {"relu_grad_loop": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("tln/vectorized_in_place", ASSIGNMENT,
               "relu_grad_vectorized as h.gt_(0): right values, written into h; backward, "
               "which reads h before, stays right, the speed part measures a wrong answer",
               {"relu_grad_vectorized_answer": '''
def relu_grad_vectorized(h):
    return h.gt_(0)
'''},
               {"relu_grad_vectorized": Loss(0, CHANGES_INPUTS),
                "speed": Loss(0, CHANGES_INPUTS, ok=(None,))},
               changes_inputs=True),
    Submission("tln/train_minus_equals", ASSIGNMENT,
               "jcjohnson's w1 -= learning_rate * grad_w1 in train (issue 27)",
               edited(BASE, "train_answer", _IN_PLACE_UPDATES),
               {"train": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("tln/train_detach_then_minus_equals", ASSIGNMENT,
               "train takes w1.detach() as a copy (it shares the storage), then updates in place",
               edited(BASE, "train_answer",
                      ("    losses = []\n", "    losses = []\n    w1, w2 = w1.detach(), w2.detach()\n"),
                      _IN_PLACE_UPDATES),
               {"train": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("tln/backward_masks_grad_in_place", ASSIGNMENT,
               "backward's mask grad_h[h < 0] = 0 on grad_h_relu: slope 1 at h == 0",
               edited(BASE, "backward_answer",
                      ("    grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)\n",
                       "    grad_h = grad_y_pred.mm(w2.t())\n    grad_h[h < 0] = 0\n")),
               {"backward": Loss(0, "relu_slope_at_zero"),
                "train": Loss(0, "relu_slope_at_zero", ok=(None,))}),
    Submission("tln/train_clone_then_minus_equals", ASSIGNMENT,
               "correct: clones of w1 and w2, then in-place updates of the clones",
               edited(BASE, "train_answer",
                      ("    losses = []\n", "    losses = []\n    w1, w2 = w1.clone(), w2.clone()\n"),
                      _IN_PLACE_UPDATES)),
    Submission("tln/backward_clamps_own_h", ASSIGNMENT,
               "correct: backward clamps its own h in place (h.clamp_(min=0)); the mask h > 0 "
               "is the same after",
               edited(BASE, "backward_answer",
                      ("    h_relu = h.clamp(min=0)\n", "    h_relu = h.clamp_(min=0)\n"))),
]
