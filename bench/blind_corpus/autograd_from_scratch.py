# ruff: noqa: E501 - the submissions quote code: a replaced line is kept whole, as it reads in the notebook
"""autograd_from_scratch: every part (the Value engine, the network on it, its training, the
same network with nn.Module), and functions that change their inputs."""

from . import CHANGES_INPUTS, Loss, Submission, edited

ASSIGNMENT = "autograd_from_scratch"
# The graded parts when the corpus was written: a part added since is not judged.
PARTS = ("operations", "local_gradients", "backward", "mlp_gradients", "train_mlp", "torch_module")

BASE = {
    "value_answer": '''
import math


class Value:
    """A number that remembers the operation that made it and its inputs."""

    def __init__(self, data, _children=()):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)

    def __repr__(self):
        return f"Value(data={self.data:.4g}, grad={self.grad:.4g})"

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += 1.0 * out.grad
            other.grad += 1.0 * out.grad

        out._backward = _backward
        return out

    def __radd__(self, other):
        return self + other

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __rmul__(self, other):
        return self * other

    def __pow__(self, exponent):
        out = Value(self.data ** exponent, (self,))

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,))

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,))

        def _backward():
            self.grad += (1 - t * t) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self):
        if self.data >= 0:
            s = 1.0 / (1.0 + math.exp(-self.data))
        else:
            e = math.exp(self.data)
            s = e / (1.0 + e)
        out = Value(s, (self,))

        def _backward():
            self.grad += s * (1 - s) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        out = Value(self.data if self.data > 0 else 0.0, (self,))

        def _backward():
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __truediv__(self, other):
        return self * (other ** -1)

    def __rtruediv__(self, other):
        return other * self ** -1
''',
    "backward_answer": '''
def backward(self):
    order, seen = [], set()

    def visit(node):
        if node not in seen:
            seen.add(node)
            for child in node._prev:
                visit(child)
            order.append(node)

    visit(self)
    self.grad = 1.0
    for node in reversed(order):
        node._backward()


Value.backward = backward
''',
    "mlp_gradients_answer": '''
class MLP:
    """Two inputs, a layer of tanh units, one output (the logit), all of Values."""

    def __init__(self, w1, b1, w2, b2):
        self.w1, self.b1, self.w2, self.b2 = (
            [[Value(v) for v in row] for row in p.tolist()] for p in (w1, b1, w2, b2))

    def parameters(self):
        """Every parameter's Value: w1, b1, w2 then b2, row by row."""
        return [v for p in (self.w1, self.b1, self.w2, self.b2) for row in p for v in row]

    def tensors(self, attribute="data"):
        """(w1, b1, w2, b2): the parameters' .data (or .grad) as float64 tensors."""
        return tuple(torch.tensor([[getattr(v, attribute) for v in row] for row in p],
                                  dtype=torch.float64)
                     for p in (self.w1, self.b1, self.w2, self.b2))

    def __call__(self, x):
        hidden = []
        for j in range(len(self.b1[0])):
            total = sum((self.w1[i][j] * x[i] for i in range(len(x))), self.b1[0][j])
            hidden.append(total.tanh())
        return sum((hidden[j] * self.w2[j][0] for j in range(len(hidden))), self.b2[0][0])


def mse_loss(model, X, y):
    rows = X.tolist()
    targets = y.tolist()
    total = Value(0.0)
    for x, target in zip(rows, targets):
        total = total + (model(x).sigmoid() - target[0]) ** 2
    return total / len(rows)


def mlp_gradients(X, y, w1, b1, w2, b2):
    model = MLP(w1, b1, w2, b2)
    loss = mse_loss(model, X, y)
    loss.backward()
    grads = model.tensors("grad")
    return (torch.tensor(loss.data, dtype=torch.float64),) + grads
''',
    "train_mlp_answer": '''
def train_mlp(X, y, w1, b1, w2, b2, learning_rate, epochs):
    model = MLP(w1, b1, w2, b2)
    losses = []
    for epoch in range(epochs):
        for p in model.parameters():
            p.grad = 0.0
        loss = mse_loss(model, X, y)
        losses.append(loss.data)
        loss.backward()
        for p in model.parameters():
            p.data -= learning_rate * p.grad
    return losses, model.tensors()
''',
    "torch_module_answer": '''
class MoonNet(nn.Module):
    """A tanh hidden layer and one output unit, whose value is the logit."""

    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.hidden = nn.Linear(n_in, n_hidden, dtype=torch.float64)
        self.output = nn.Linear(n_hidden, 1, dtype=torch.float64)

    def forward(self, X):
        return self.output(torch.tanh(self.hidden(X)))


def train_module(X, y, w1, b1, w2, b2, learning_rate, epochs):
    model = MoonNet(w1.shape[0], w1.shape[1])
    with torch.no_grad():
        model.hidden.weight.copy_(w1.T)
        model.hidden.bias.copy_(b1[0])
        model.output.weight.copy_(w2.T)
        model.output.bias.copy_(b2[0])
    optimizer = optim.SGD(model.parameters(), lr=learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    losses = []
    for epoch in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses, (model.hidden.weight.detach().T.clone(),
                    model.hidden.bias.detach().clone().unsqueeze(0),
                    model.output.weight.detach().T.clone(),
                    model.output.bias.detach().clone().unsqueeze(0))
''',
}

VALUE, BACKWARD, MLP, TRAIN, MODULE = ("value_answer", "backward_answer",
                                       "mlp_gradients_answer", "train_mlp_answer",
                                       "torch_module_answer")


def _edit(cell, *replacements):
    return edited(BASE, cell, *replacements)


def _slip(name, ok=(None,), network=True):
    """A slip in a _backward: Parts 2 and 3 lose their points, and with `network` (an
    operation the MLP and its loss use: +, *, **, tanh, sigmoid) Parts 4 and 5 too."""
    lost = {"local_gradients": Loss(0, name), "backward": Loss(0, name)}
    if network:
        lost.update({part: Loss(0, name, ok=ok) for part in ("mlp_gradients", "train_mlp")})
    return lost


def _order(name):
    """A slip in backward's order: the random expressions of Part 3 show it. The MLP's
    graph shares leaves only (each inner node has one user), where any order that runs a
    node after its one user is right, so Parts 4 and 5 keep their points unless said."""
    return {"backward": Loss(0, name)}


SUBMISSIONS = [
    # ---- Parts 1 to 3, the engine: mistakes with a name ----
    Submission("afs/tanh_overwrites", ASSIGNMENT,
               "tanh's _backward sets self.grad = ... (a one-input operation, the slip of "
               "__mul__ elsewhere)",
               _edit(VALUE, ("self.grad += (1 - t * t) * out.grad", "self.grad = (1 - t * t) * out.grad")),
               _slip("overwritten_gradient", network=False)),
    Submission("afs/add_overwrites", ASSIGNMENT,
               "the worked example __add__ rewritten with = (the given cell edited)",
               _edit(VALUE, ("            self.grad += 1.0 * out.grad\n            other.grad += 1.0 * out.grad",
                             "            self.grad = out.grad\n            other.grad = out.grad")),
               _slip("overwritten_gradient")),
    Submission("afs/exp_no_chain_factor", ASSIGNMENT,
               "exp's _backward adds out.data alone, not times out.grad",
               _edit(VALUE, ("self.grad += out.data * out.grad", "self.grad += out.data")),
               _slip("missing_chain_factor", network=False)),
    Submission("afs/mul_no_chain_factor", ASSIGNMENT,
               "__mul__'s _backward adds other.data and self.data, no out.grad",
               _edit(VALUE, ("            self.grad += other.data * out.grad\n            other.grad += self.data * out.grad",
                             "            self.grad += other.data\n            other.grad += self.data")),
               _slip("missing_chain_factor")),
    Submission("afs/pow_no_chain_factor", ASSIGNMENT,
               "__pow__'s _backward adds c * s**(c-1) alone, not times out.grad",
               _edit(VALUE, ("exponent * self.data ** (exponent - 1) * out.grad", "exponent * self.data ** (exponent - 1)")),
               _slip("missing_chain_factor")),
    Submission("afs/relu_slope_one_at_zero", ASSIGNMENT,
               "relu's _backward with >= 0: slope 1 at 0 (the prose says > 0)",
               _edit(VALUE, ("(1.0 if self.data > 0 else 0.0) * out.grad", "(1.0 if self.data >= 0 else 0.0) * out.grad")),
               # backward relabelled (issue 27's last misses): Part 3 compares every node's
               # .grad with autograd's, whose slope at 0 is 0 (Part 1: relu "at 0 too"), and
               # its expressions now hold a ReLU at exactly 0.
               {"local_gradients": Loss(0, "relu_slope_at_zero"),
                "backward": Loss(0, "relu_slope_at_zero")}),
    Submission("afs/no_visited_set", ASSIGNMENT,
               "backward's depth-first search without the visited set",
               _edit(BACKWARD, ("        if node not in seen:\n            seen.add(node)\n            for child in node._prev:\n                visit(child)\n            order.append(node)",
                                "        for child in node._prev:\n            visit(child)\n        order.append(node)")),
               _order("no_visited_set")),
    Submission("afs/topological_not_reversed", ASSIGNMENT,
               "backward walks the topological order forwards (reversed() forgotten)",
               _edit(BACKWARD, ("for node in reversed(order):", "for node in order:")),
               {"backward": Loss(0, "wrong_order"),  # the MLP's output runs last: all 0
                "mlp_gradients": Loss(0, "wrong_order", ok=(None,)),
                "train_mlp": Loss(0, "wrong_order", ok=(None,))}),
    Submission("afs/breadth_first", ASSIGNMENT,
               "backward in breadth-first order from the output, a visited set kept",
               {BACKWARD: '''
from collections import deque


def backward(self):
    self.grad = 1.0
    queue, seen = deque([self]), {self}
    while queue:
        node = queue.popleft()
        node._backward()
        for child in node._prev:
            if child not in seen:
                seen.add(child)
                queue.append(child)


Value.backward = backward
'''},
               _order("wrong_order")),
    Submission("afs/preorder", ASSIGNMENT,
               "backward appends each node before visiting its inputs (pre-order), then "
               "runs the list as built",
               _edit(BACKWARD, ("            seen.add(node)\n            for child in node._prev:\n                visit(child)\n            order.append(node)",
                                "            seen.add(node)\n            order.append(node)\n            for child in node._prev:\n                visit(child)"),
                     ("for node in reversed(order):", "for node in order:")),
               _order("wrong_order")),
    # ---- Parts 1 to 3: wrong, and no listed name fits ----
    Submission("afs/pow_exponent_not_lowered", ASSIGNMENT,
               "__pow__'s local gradient c * s**c (the -1 of the exponent forgotten)",
               _edit(VALUE, ("exponent * self.data ** (exponent - 1) * out.grad", "exponent * self.data ** exponent * out.grad")),
               _slip(None, ok=())),
    Submission("afs/sigmoid_slope_from_input", ASSIGNMENT,
               "sigmoid's _backward uses s(1 - s) of the input s, not of sigmoid(s)",
               _edit(VALUE, ("self.grad += s * (1 - s) * out.grad", "self.grad += self.data * (1 - self.data) * out.grad")),
               {"local_gradients": Loss(0, None, ok=("delta_of_z",)),
                "backward": Loss(0, None, ok=("delta_of_z",)),
                "mlp_gradients": Loss(0, None, ok=("delta_of_z",)),
                "train_mlp": Loss(0, None, ok=("delta_of_z",))}),
    Submission("afs/mul_copy_paste", ASSIGNMENT,
               "__mul__'s _backward adds self.data * out.grad to both inputs (a line copied)",
               _edit(VALUE, ("self.grad += other.data * out.grad", "self.grad += self.data * out.grad")),
               _slip(None, ok=())),
    Submission("afs/no_seed_gradient", ASSIGNMENT,
               "backward never sets the output's grad to 1: every gradient stays 0",
               _edit(BACKWARD, ("    self.grad = 1.0\n", "")),
               {"backward": Loss(0, None),
                "mlp_gradients": Loss(0, None),
                "train_mlp": Loss(0, None)}),
    Submission("afs/exp_data_of_exp", ASSIGNMENT,
               "exp's data is math.exp(self.data) - 1 (expm1 for accuracy, wrongly)",
               _edit(VALUE, ("out = Value(math.exp(self.data), (self,))", "out = Value(math.expm1(self.data), (self,))")),
               {"operations": Loss(0, None),
                "local_gradients": Loss(0, None),
                "backward": Loss(0, None)}),
    # ---- Parts 1 to 3: correct, written otherwise ----
    Submission("afs/iterative_backward", ASSIGNMENT,
               "correct: post-order with an explicit stack",
               {BACKWARD: '''
def backward(self):
    order, seen, stack = [], set(), [(self, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev if child not in seen)
    self.grad = 1.0
    for node in reversed(order):
        node._backward()


Value.backward = backward
'''}),
    Submission("afs/value_otherwise", ASSIGNMENT,
               "correct: local gradients computed up front, tanh and sigmoid from exp, "
               "__rmul__ by Value(other)",
               _edit(VALUE, ("        t = math.tanh(self.data)\n",
                             "        e2 = math.exp(-2 * abs(self.data))\n"
                             "        t = math.copysign((1 - e2) / (1 + e2), self.data)\n"),
                     ("    def __rmul__(self, other):\n        return self * other",
                      "    def __rmul__(self, other):\n        return Value(other) * self"),
                     ("        def _backward():\n            self.grad += exponent * self.data ** (exponent - 1) * out.grad",
                      "        local = exponent * self.data ** (exponent - 1)\n\n"
                      "        def _backward():\n            self.grad += local * out.grad"))),
    # ---- Part 4, the network: mistakes ----
    Submission("afs/summed_loss", ASSIGNMENT,
               "mse_loss returns the sum over the examples, not the mean",
               _edit(MLP, ("    return total / len(rows)", "    return total")),
               {"mlp_gradients": Loss(0, "mean_vs_sum"),
                "train_mlp": Loss(0, "mean_vs_sum", ok=(None,))}),
    Submission("afs/loss_of_the_logit", ASSIGNMENT,
               "mse_loss squares logit - target: the sigmoid forgotten",
               _edit(MLP, ("(model(x).sigmoid() - target[0]) ** 2", "(model(x) - target[0]) ** 2")),
               {"mlp_gradients": Loss(0, None), "train_mlp": Loss(0, None)}),
    Submission("afs/tanh_on_the_output", ASSIGNMENT,
               "MLP.__call__ applies tanh to the output unit too",
               _edit(MLP, ("        return sum((hidden[j] * self.w2[j][0] for j in range(len(hidden))), self.b2[0][0])",
                           "        return sum((hidden[j] * self.w2[j][0] for j in range(len(hidden))), self.b2[0][0]).tanh()")),
               {"mlp_gradients": Loss(0, None), "train_mlp": Loss(0, None)}),
    Submission("afs/loss_as_float", ASSIGNMENT,
               "mlp_gradients returns the loss as a Python float, not a 0-d tensor",
               _edit(MLP, ("return (torch.tensor(loss.data, dtype=torch.float64),) + grads",
                           "return (loss.data,) + grads")),
               {"mlp_gradients": Loss(0, "wrong_type")}),
    Submission("afs/gradients_in_other_order", ASSIGNMENT,
               "mlp_gradients returns (loss, grad_w1, grad_w2, grad_b1, grad_b2)",
               _edit(MLP, ("return (torch.tensor(loss.data, dtype=torch.float64),) + grads",
                           "return (torch.tensor(loss.data, dtype=torch.float64), grads[0], grads[2], grads[1], grads[3])")),
               {"mlp_gradients": Loss(0, "swapped_outputs", ok=("shape",))}),
    # ---- Part 5, training: mistakes with a name ----
    Submission("afs/grads_never_cleared", ASSIGNMENT,
               "train_mlp never sets .grad back to 0",
               _edit(TRAIN, ("        for p in model.parameters():\n            p.grad = 0.0\n", "")),
               {"train_mlp": Loss(0, "missing_zero_grad")}),
    Submission("afs/cleared_after_backward", ASSIGNMENT,
               "train_mlp zeroes .grad after backward(), before the update",
               _edit(TRAIN, ("        for p in model.parameters():\n            p.grad = 0.0\n", ""),
                     ("        loss.backward()\n", "        loss.backward()\n        for p in model.parameters():\n            p.grad = 0.0\n")),
               {"train_mlp": Loss(0, "cleared_before_step")}),
    Submission("afs/mlp_loss_after_update", ASSIGNMENT,
               "train_mlp records each epoch's loss after its update",
               _edit(TRAIN, ("        losses.append(loss.data)\n", ""),
                     ("            p.data -= learning_rate * p.grad\n",
                      "            p.data -= learning_rate * p.grad\n        losses.append(mse_loss(model, X, y).data)\n")),
               {"train_mlp": Loss(0, "loss_after_update")}),
    Submission("afs/gradient_ascent", ASSIGNMENT,
               "p.data += learning_rate * p.grad",
               _edit(TRAIN, ("p.data -= learning_rate * p.grad", "p.data += learning_rate * p.grad")),
               {"train_mlp": Loss(0, "sign")}),
    Submission("afs/mlp_rate_fixed", ASSIGNMENT,
               "the notebook's 2.0 written into the update",
               _edit(TRAIN, ("p.data -= learning_rate * p.grad", "p.data -= 2.0 * p.grad")),
               {"train_mlp": Loss(0, "wrong_learning_rate")}),
    Submission("afs/cleared_after_update", ASSIGNMENT,
               "correct: the gradients set to 0 after each update (so before the next "
               "backward), and fresh from MLP at the start",
               _edit(TRAIN, ("        for p in model.parameters():\n            p.grad = 0.0\n", ""),
                     ("            p.data -= learning_rate * p.grad\n",
                      "            p.data -= learning_rate * p.grad\n            p.grad = 0.0\n"))),
    # ---- Part 5: wrong, and no listed name fits ----
    Submission("afs/train_mlp_mutable_default", ASSIGNMENT,
               "train_mlp(..., losses=[]): the list carries over between calls",
               _edit(TRAIN, ("def train_mlp(X, y, w1, b1, w2, b2, learning_rate, epochs):",
                             "def train_mlp(X, y, w1, b1, w2, b2, learning_rate, epochs, losses=[]):"),
                     ("    losses = []\n", "")),
               {"train_mlp": Loss(0, None)}),
    Submission("afs/biases_not_trained", ASSIGNMENT,
               "train_mlp updates the weights only (model.w1 and model.w2)",
               _edit(TRAIN, ("        for p in model.parameters():\n            p.data -= learning_rate * p.grad",
                             "        for p in [v for row in model.w1 + model.w2 for v in row]:\n            p.data -= learning_rate * p.grad")),
               {"train_mlp": Loss(0, None)}),
    # ---- Part 6, nn.Module: mistakes with a name ----
    Submission("afs/sigmoid_then_logits_loss", ASSIGNMENT,
               "BCEWithLogitsLoss given torch.sigmoid(model(X))",
               _edit(MODULE, ("loss = loss_fn(model(X), y)", "loss = loss_fn(torch.sigmoid(model(X)), y)")),
               {"torch_module": Loss(0, "sigmoid_before_logits_loss")}),
    Submission("afs/module_mse", ASSIGNMENT,
               "nn.MSELoss on the sigmoid of the logits, as in Part 4",
               _edit(MODULE, ("loss = loss_fn(model(X), y)", "loss = loss_fn(torch.sigmoid(model(X)), y)"),
                     ("loss_fn = nn.BCEWithLogitsLoss()", "loss_fn = nn.MSELoss()")),
               {"torch_module": Loss(0, "mse_for_classification")}),
    Submission("afs/module_no_zero_grad", ASSIGNMENT,
               "optimizer.zero_grad() forgotten",
               _edit(MODULE, ("        optimizer.zero_grad()\n", "")),
               {"torch_module": Loss(0, "missing_zero_grad")}),
    Submission("afs/weights_not_transposed_back", ASSIGNMENT,
               "returns the layers' weights as stored, (out, in), not in the arguments' layout",
               _edit(MODULE, ("model.hidden.weight.detach().T.clone()", "model.hidden.weight.detach().clone()"),
                     ("model.output.weight.detach().T.clone()", "model.output.weight.detach().clone()")),
               {"torch_module": Loss(0, "transposed", ok=("shape",))}),
    Submission("afs/module_float32", ASSIGNMENT,
               "layers without dtype=: float32 weights meet float64 X",
               _edit(MODULE, ("self.hidden = nn.Linear(n_in, n_hidden, dtype=torch.float64)", "self.hidden = nn.Linear(n_in, n_hidden)"),
                     ("self.output = nn.Linear(n_hidden, 1, dtype=torch.float64)", "self.output = nn.Linear(n_hidden, 1)")),
               {"torch_module": Loss(0, "float32")}),
    Submission("afs/module_loss_after_step", ASSIGNMENT,
               "the loss of each epoch recorded after its step",
               _edit(MODULE, ("        losses.append(loss.item())\n", ""),
                     ("        optimizer.step()\n", "        optimizer.step()\n        with torch.no_grad():\n            losses.append(loss_fn(model(X), y).item())\n")),
               {"torch_module": Loss(0, "loss_after_update")}),
    Submission("afs/module_zero_grad_before_step", ASSIGNMENT,
               "optimizer.zero_grad() between backward() and step()",
               _edit(MODULE, ("        optimizer.zero_grad()\n", ""),
                     ("        optimizer.step()\n", "        optimizer.zero_grad()\n        optimizer.step()\n")),
               {"torch_module": Loss(0, "cleared_before_step")}),
    Submission("afs/module_summed_loss", ASSIGNMENT,
               "nn.BCEWithLogitsLoss(reduction='sum'): the sum over the examples, not the mean",
               _edit(MODULE, ("loss_fn = nn.BCEWithLogitsLoss()", "loss_fn = nn.BCEWithLogitsLoss(reduction=\"sum\")")),
               {"torch_module": Loss(0, "mean_vs_sum")}),
    # ---- Part 6: wrong, and no listed name fits ----
    Submission("afs/module_own_start", ASSIGNMENT,
               "the given parameters never copied in: nn.Linear's own random start",
               _edit(MODULE, ("""    with torch.no_grad():
        model.hidden.weight.copy_(w1.T)
        model.hidden.bias.copy_(b1[0])
        model.output.weight.copy_(w2.T)
        model.output.bias.copy_(b2[0])
""", "")),
               {"torch_module": Loss(0, None)}),
    Submission("afs/module_relu", ASSIGNMENT,
               "ReLU where the prose asks tanh in the hidden layer",
               _edit(MODULE, ("return self.output(torch.tanh(self.hidden(X)))", "return self.output(torch.relu(self.hidden(X)))")),
               {"torch_module": Loss(0, None)}),
    # ---- Part 6: correct, written otherwise ----
    Submission("afs/module_sequential", ASSIGNMENT,
               "correct: nn.Sequential, the functional loss, parameters set through .data",
               {MODULE: '''
import torch.nn.functional as F


class MoonNet(nn.Module):
    """A tanh hidden layer and one output unit, whose value is the logit."""

    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_in, n_hidden).double(), nn.Tanh(),
                                    nn.Linear(n_hidden, 1).double())

    def forward(self, X):
        return self.layers(X)


def train_module(X, y, w1, b1, w2, b2, learning_rate, epochs):
    model = MoonNet(w1.shape[0], w1.shape[1])
    first, last = model.layers[0], model.layers[2]
    first.weight.data = w1.t().clone()
    first.bias.data = b1.reshape(-1).clone()
    last.weight.data = w2.t().clone()
    last.bias.data = b2.reshape(-1).clone()
    optimizer = optim.SGD(model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    with torch.no_grad():
        trained = (first.weight.t().clone(), first.bias.reshape(1, -1).clone(),
                   last.weight.t().clone(), last.bias.reshape(1, -1).clone())
    return torch.stack(losses), trained
'''}),
    # ---- changing the inputs ----
    Submission("afs/module_shares_the_weights", ASSIGNMENT,
               "MoonNet's layers given nn.Parameter(w1.T): a view of the caller's w1, which "
               "optim.SGD then updates in place",
               _edit(MODULE, ("""    with torch.no_grad():
        model.hidden.weight.copy_(w1.T)
        model.hidden.bias.copy_(b1[0])
        model.output.weight.copy_(w2.T)
        model.output.bias.copy_(b2[0])
""", """    model.hidden.weight = nn.Parameter(w1.T)
    model.hidden.bias = nn.Parameter(b1[0])
    model.output.weight = nn.Parameter(w2.T)
    model.output.bias = nn.Parameter(b2[0])
""")),
               {"torch_module": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("afs/train_mlp_writes_back", ASSIGNMENT,
               "train_mlp copies the trained values into the tensors it was given and "
               "returns them",
               _edit(TRAIN, ("    return losses, model.tensors()",
                             "    for given, trained in zip((w1, b1, w2, b2), model.tensors()):\n"
                             "        given.copy_(trained)\n"
                             "    return losses, (w1, b1, w2, b2)")),
               {"train_mlp": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
]
