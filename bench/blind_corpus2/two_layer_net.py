"""two_layer_net: ReLU's slope by a loop and vectorized, backward by hand, training, speed."""

from . import CHANGES_INPUTS, Corpus, Loss, cascade

PARTS = ("relu_grad_loop", "relu_grad_vectorized", "backward", "train", "speed")
_corpus = Corpus("two_layer_net")
BASE = _corpus.base
SUBMISSIONS = _corpus.submissions
cell = _corpus.with_defs


def _vectorized(body: str) -> dict[str, str]:
    return {"relu_grad_vectorized_answer": cell("relu_grad_vectorized_answer", f'''
def relu_grad_vectorized(h):
    """The slope of ReLU at every entry of h (0 at h == 0), in one tensor operation."""
    {body}
''')}


def _backward(*lines: str) -> dict[str, str]:
    body = "\n    ".join(lines)
    return {"backward_answer": cell("backward_answer", f'''
def backward(x, y, w1, w2):
    h = x.mm(w1)
    h_relu = h.clamp(min=0)
    y_pred = h_relu.mm(w2)
    {body}
''')}


def _train(loop: str, head: str = "") -> dict[str, str]:
    return {"train_answer": cell("train_answer", f'''
def train(x, y, w1, w2, learning_rate, steps):
    losses = []{head}
{loop}
    return losses, w1, w2
''')}


# The speed part measures relu_grad_vectorized: wrong there, it has nothing right to time.
_SPEED_CASCADE = cascade()

# ---- wrong -------------------------------------------------------------------------------

_corpus.add("loop_writes_through_detach", "relu_grad_loop fills grad = h.detach(), thinking "
            "detach copies: the caller's h is overwritten",
            {"relu_grad_loop_answer": cell("relu_grad_loop_answer", '''
def relu_grad_loop(h):
    grad = h.detach()
    flat = grad.view(-1)
    for i in range(flat.numel()):
        flat[i] = 1.0 if flat[i] > 0 else 0.0
    return grad
''')},
            relu_grad_loop=Loss(0, CHANGES_INPUTS))
_corpus.add("loop_epsilon_kink", "relu_grad_loop tests value > -1e-12 'for rounding': slope 1 "
            "at exactly 0",
            {"relu_grad_loop_answer": cell("relu_grad_loop_answer", '''
def relu_grad_loop(h):
    grad = torch.zeros_like(h)
    flat = grad.view(-1)
    for i, value in enumerate(h.reshape(-1)):
        if value > -1e-12:
            flat[i] = 1.0
    return grad
''')},
            relu_grad_loop=Loss(0, "relu_slope_at_zero"))
_corpus.add("loop_float32_zeros", "relu_grad_loop starts from torch.zeros(h.shape): float32",
            {"relu_grad_loop_answer": cell("relu_grad_loop_answer", '''
def relu_grad_loop(h):
    grad = torch.zeros(h.shape, device=h.device)
    flat = grad.view(-1)
    for i, value in enumerate(h.reshape(-1)):
        if value > 0:
            flat[i] = 1.0
    return grad
''')},
            relu_grad_loop=Loss(0, "float32"))
_corpus.add("loop_two_dimensional", "relu_grad_loop loops over rows and columns: right for the "
            "notebook's 2-D h only",
            {"relu_grad_loop_answer": cell("relu_grad_loop_answer", '''
def relu_grad_loop(h):
    grad = torch.zeros_like(h)
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            if h[i, j] > 0:
                grad[i, j] = 1.0
    return grad
''')},
            relu_grad_loop=Loss(0, None, ok=("exception", "shape")))
_corpus.add("vectorized_where_scalars", "torch.where(h > 0, 1.0, 0.0): Python scalars give "
            "float32", _vectorized("return torch.where(h > 0, 1.0, 0.0)"),
            relu_grad_vectorized=Loss(0, "float32"), speed=Loss(0, "float32", ok=(None,)))
_corpus.add("vectorized_sign", "torch.sign(h): -1 where it should be 0",
            _vectorized("return torch.sign(h)"),
            relu_grad_vectorized=Loss(0, None), speed=_SPEED_CASCADE,
            backward=cascade(), train=cascade())
_corpus.add("vectorized_in_place_gt", "h.gt_(0): the comparison written into h, and h returned",
            _vectorized("return h.gt_(0)"),
            relu_grad_vectorized=Loss(0, CHANGES_INPUTS), speed=Loss(0, CHANGES_INPUTS,
                                                                     ok=(None,)))
_corpus.add("vectorized_comprehension", "a list comprehension over the entries, reshaped",
            _vectorized("return torch.tensor([float(v > 0) for v in h.flatten()], "
                        "dtype=h.dtype, device=h.device).reshape(h.shape)"),
            relu_grad_vectorized=Loss(0, "python_loop"), speed=Loss(0, "python_loop",
                                                                    ok=(None,)))
_corpus.add("vectorized_numpy_vectorize", "numpy.vectorize of a Python function: no loop in the "
            "source, one Python call per entry",
            {"relu_grad_vectorized_answer": cell("relu_grad_vectorized_answer", '''
def relu_grad_vectorized(h):
    import numpy
    slope = numpy.vectorize(lambda v: 1.0 if v > 0 else 0.0, otypes=[numpy.float64])
    return torch.from_numpy(slope(h.cpu().numpy())).to(h.device)
''')},
            relu_grad_vectorized=Loss(0, "python_loop"),
            speed=Loss(0, "python_loop", ok=("too_slow",)))
_corpus.add("backward_w1_grad_transposed", "grad_w1 = grad_h.t() @ x: the transpose, which "
            "fits only square w1",
            _backward("loss = (y_pred - y).pow(2).sum()",
                      "grad_y_pred = 2.0 * (y_pred - y)",
                      "grad_w2 = h_relu.t().mm(grad_y_pred)",
                      "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
                      "grad_w1 = grad_h.t().mm(x)",
                      "return loss, grad_w1, grad_w2"),
            backward=Loss(0, "transposed"), train=Loss(0, "transposed", ok=(None,)))
_corpus.add("backward_w2_untransposed", "grad_h_relu = grad_y_pred @ w2 (no .t()): runs only "
            "when w2 is square",
            _backward("loss = (y_pred - y).pow(2).sum()",
                      "grad_y_pred = 2.0 * (y_pred - y)",
                      "grad_w2 = h_relu.t().mm(grad_y_pred)",
                      "grad_h = grad_y_pred.mm(w2) * relu_grad_vectorized(h)",
                      "grad_w1 = x.t().mm(grad_h)",
                      "return loss, grad_w1, grad_w2"),
            backward=Loss(0, "transposed"), train=Loss(0, "transposed", ok=(None,)))
_corpus.add("backward_mean_loss", "the loss reported as a mean while the gradients are the "
            "sum's",
            _backward("loss = (y_pred - y).pow(2).mean()",
                      "grad_y_pred = 2.0 * (y_pred - y)",
                      "grad_w2 = h_relu.t().mm(grad_y_pred)",
                      "grad_h = grad_y_pred.mm(w2.t()) * relu_grad_vectorized(h)",
                      "grad_w1 = x.t().mm(grad_h)",
                      "return loss, grad_w1, grad_w2"),
            backward=Loss(0, "mean_vs_sum"), train=Loss(0, "mean_vs_sum", ok=(None,)))
_corpus.add("train_add_alpha", "train updates with w1.add_(grad_w1, alpha=-learning_rate): "
            "the caller's weights change",
            _train('''    for _ in range(steps):
        loss, grad_w1, grad_w2 = backward(x, y, w1, w2)
        losses.append(loss.item())
        w1.add_(grad_w1, alpha=-learning_rate)
        w2.add_(grad_w2, alpha=-learning_rate)'''),
            train=Loss(0, CHANGES_INPUTS))
_corpus.add("train_from_step_one", "for step in range(1, steps): one step short",
            _train('''    for step in range(1, steps):
        loss, grad_w1, grad_w2 = backward(x, y, w1, w2)
        losses.append(loss.item())
        w1 = w1 - learning_rate * grad_w1
        w2 = w2 - learning_rate * grad_w2'''),
            train=Loss(0, "wrong_epochs"))
_corpus.add("train_jcjohnson_rate", "the tutorial's learning rate 1e-6 hard-coded",
            _train('''    for _ in range(steps):
        loss, grad_w1, grad_w2 = backward(x, y, w1, w2)
        losses.append(loss.item())
        w1 = w1 - 1e-6 * grad_w1
        w2 = w2 - 1e-6 * grad_w2'''),
            train=Loss(0, "wrong_learning_rate"))
_corpus.add("train_w2_after_new_w1", "w1 updated first, then backward again for w2's gradient "
            "at the new w1",
            _train('''    for _ in range(steps):
        loss, grad_w1, _ = backward(x, y, w1, w2)
        losses.append(loss.item())
        w1 = w1 - learning_rate * grad_w1
        _, _, grad_w2 = backward(x, y, w1, w2)
        w2 = w2 - learning_rate * grad_w2'''),
            train=Loss(0, None))

# ---- correct, written differently -------------------------------------------------------

_corpus.add("ok_heaviside", "torch.heaviside(h, 0)", _vectorized(
    "return torch.heaviside(h, torch.zeros_like(h))"))
_corpus.add("ok_backward_mask_from_h_relu", "grad_h masked by (h_relu > 0), and grad_w2 as "
            "(grad_y_pred^T h_relu)^T",
            _backward("loss = ((y_pred - y) ** 2).sum()",
                      "grad_y_pred = (y_pred - y) * 2",
                      "grad_w2 = grad_y_pred.t().mm(h_relu).t()",
                      "grad_h = grad_y_pred.mm(w2.t()) * (h_relu > 0)",
                      "grad_w1 = torch.matmul(x.T, grad_h)",
                      "return loss, grad_w1, grad_w2"))
_corpus.add("ok_train_clones_then_in_place", "train clones the weights, then updates the "
            "clones in place; losses a tensor",
            _train('''    for _ in range(steps):
        loss, grad_w1, grad_w2 = backward(x, y, w1, w2)
        losses.append(loss)
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
    losses = torch.stack(losses)''', head="\n    w1, w2 = w1.clone(), w2.clone()"))
