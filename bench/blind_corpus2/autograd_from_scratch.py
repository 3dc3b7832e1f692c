"""autograd_from_scratch: a scalar Value engine, a network on it, then the same in torch."""

from . import Corpus, Loss, cascade

PARTS = ("operations", "local_gradients", "backward", "mlp_gradients", "train_mlp",
         "torch_module")
_corpus = Corpus("autograd_from_scratch")
BASE = _corpus.base
SUBMISSIONS = _corpus.submissions
cell = _corpus.with_defs
_CASCADE = cascade()


def _value(*methods: str) -> dict[str, str]:
    return {"value_answer": cell("value_answer", *methods)}


def _backward(body: str) -> dict[str, str]:
    return {"backward_answer": cell("backward_answer", f'''
def backward(self):
{body}
''')}


def _topological(add: str, *seed: str) -> dict[str, str]:
    """backward() by the notebook's depth-first build, with `add` putting a node in topo and
    `seed` the lines before the walk."""
    lines = "".join(f"    {line}\n" for line in seed)
    return _backward(f'''    topo, visited = [], set()

    def build(node):
        if node not in visited:
            visited.add(node)
            for child in node._prev:
                build(child)
            {add}

    build(self)
{lines}    for node in reversed(topo):
        node._backward()''')


def _train_mlp(body: str) -> dict[str, str]:
    return {"train_mlp_answer": cell("train_mlp_answer", f'''
def train_mlp(X, y, w1, b1, w2, b2, learning_rate, epochs):
    model = MLP(w1, b1, w2, b2)
    losses = []
    for _ in range(epochs):
{body}
    return losses, model.tensors()
''')}


def _train_module(copy: str = "w1.T", returned: str = "model.hidden.weight.T",
                  loop: str = "") -> dict[str, str]:
    loop = loop or '''        optimizer.zero_grad()
        loss = loss_function(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())'''
    return {"torch_module_answer": cell("torch_module_answer", f'''
def train_module(X, y, w1, b1, w2, b2, learning_rate, epochs):
    model = MoonNet(w1.shape[0], w1.shape[1])
    with torch.no_grad():
        model.hidden.weight.copy_({copy})
        model.hidden.bias.copy_(b1[0])
        model.output.weight.copy_(w2.T)
        model.output.bias.copy_(b2[0])
    optimizer = optim.SGD(model.parameters(), lr=learning_rate)
    loss_function = nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(epochs):
{loop}
    trained = ({returned}, model.hidden.bias[None], model.output.weight.T,
               model.output.bias[None])
    return losses, tuple(p.detach().clone() for p in trained)
''')}


_MSE_BODY = '''    model = MLP(w1, b1, w2, b2)
    loss = mse_loss(model, X, y)
    loss.backward()'''

# ---- wrong -------------------------------------------------------------------------------

_corpus.add("pow_grad_overwrites", "__pow__'s _backward sets self.grad (=) instead of adding",
            _value('''
def __pow__(self, exponent):
    result = Value(self.data ** exponent, (self,))

    def backward_of_pow():
        self.grad = exponent * self.data ** (exponent - 1) * result.grad

    result._backward = backward_of_pow
    return result
'''),
            local_gradients=Loss(0, "overwritten_gradient"),
            backward=Loss(0, "overwritten_gradient", ok=(None,)))
_corpus.add("tanh_grad_from_input", "tanh's local gradient 1 - s**2 from the input s, not from "
            "tanh(s)",
            _value('''
def tanh(self):
    result = Value(math.tanh(self.data), (self,))

    def backward_of_tanh():
        self.grad += (1 - self.data ** 2) * result.grad

    result._backward = backward_of_tanh
    return result
'''),
            local_gradients=Loss(0, None), backward=_CASCADE, mlp_gradients=_CASCADE,
            train_mlp=_CASCADE)
_corpus.add("relu_grad_inclusive", "relu's local gradient 1 where s >= 0",
            _value('''
def relu(self):
    result = Value(max(self.data, 0.0), (self,))

    def backward_of_relu():
        self.grad += (1.0 if self.data >= 0 else 0.0) * result.grad

    result._backward = backward_of_relu
    return result
'''),
            local_gradients=Loss(0, "relu_slope_at_zero"),
            # Part 3's prose: each expression holds (0 * a).relu() (checks 827c9bc).
            backward=Loss(0, "relu_slope_at_zero", ok=(None,)))
_corpus.add("sigmoid_grad_without_chain", "sigmoid's _backward adds s(1 - s), not times "
            "out.grad",
            _value('''
def sigmoid(self):
    result = Value(1 / (1 + math.exp(-self.data)), (self,))

    def backward_of_sigmoid():
        self.grad += result.data * (1 - result.data)

    result._backward = backward_of_sigmoid
    return result
'''),
            local_gradients=Loss(0, "missing_chain_factor"),
            backward=Loss(0, "missing_chain_factor", ok=(None,)),
            mlp_gradients=cascade("missing_chain_factor"),
            train_mlp=cascade("missing_chain_factor"))
_corpus.add("exp_grad_from_input", "exp's local gradient taken as s instead of e**s",
            _value('''
def exp(self):
    result = Value(math.exp(self.data), (self,))

    def backward_of_exp():
        self.grad += self.data * result.grad

    result._backward = backward_of_exp
    return result
'''),
            local_gradients=Loss(0, None), backward=_CASCADE)
_corpus.add("topo_reversed_twice", "build() puts each node at the front (topo.insert(0, ...)), "
            "then walks reversed(topo): inputs before outputs",
            _topological("topo.insert(0, node)", "self.grad = 1.0"),
            backward=Loss(0, "wrong_order"), mlp_gradients=cascade("wrong_order"),
            train_mlp=cascade("wrong_order"))
_corpus.add("no_seed_gradient", "backward() never sets the output's grad to 1",
            _topological("topo.append(node)"),
            backward=Loss(0, None), mlp_gradients=_CASCADE, train_mlp=_CASCADE)
_corpus.add("mse_without_mean", "mse_loss returns the sum of the squared errors",
            {"mlp_gradients_answer": cell("mlp_gradients_answer", '''
def mse_loss(model, X, y):
    errors = [(model(x).sigmoid() - target) ** 2
              for x, target in zip(X.tolist(), y[:, 0].tolist())]
    return sum(errors, Value(0.0))
''')},
            mlp_gradients=Loss(0, "mean_vs_sum"), train_mlp=cascade("mean_vs_sum"))
_corpus.add("mlp_loss_python_float", "mlp_gradients returns loss.data, a Python float",
            {"mlp_gradients_answer": cell("mlp_gradients_answer", f'''
def mlp_gradients(X, y, w1, b1, w2, b2):
{_MSE_BODY}
    return (loss.data, *model.tensors("grad"))
''')},
            mlp_gradients=Loss(0, "wrong_type"))
_corpus.add("mlp_loss_float32", "the loss as torch.tensor(loss.data): float32",
            {"mlp_gradients_answer": cell("mlp_gradients_answer", f'''
def mlp_gradients(X, y, w1, b1, w2, b2):
{_MSE_BODY}
    return (torch.tensor(loss.data), *model.tensors("grad"))
''')},
            mlp_gradients=Loss(0, "float32"))
_corpus.add("mlp_hidden_sigmoid", "the hidden units use sigmoid, like nn_from_scratch, not tanh",
            {"mlp_gradients_answer": cell("mlp_gradients_answer", '''
def __call__(self, x):
    hidden = [sum((x_i * row[j] for x_i, row in zip(x, self.w1)), self.b1[0][j]).sigmoid()
              for j in range(len(self.b1[0]))]
    return sum((h * row[0] for h, row in zip(hidden, self.w2)), self.b2[0][0])
''')},
            mlp_gradients=Loss(0, None), train_mlp=_CASCADE)
_corpus.add("train_clears_after_backward", "train_mlp sets every grad to 0 after backward(), "
            "before the update",
            _train_mlp('''        loss = mse_loss(model, X, y)
        loss.backward()
        for p in model.parameters():
            p.grad = 0.0
            p.data -= learning_rate * p.grad
        losses.append(loss.data)'''),
            train_mlp=Loss(0, "cleared_before_step"))
_corpus.add("train_losses_as_values", "train_mlp keeps the loss Values, not their .data",
            _train_mlp('''        loss = mse_loss(model, X, y)
        for p in model.parameters():
            p.grad = 0.0
        loss.backward()
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        losses.append(loss)'''),
            train_mlp=Loss(0, "wrong_type"))
_corpus.add("train_plus_gradient", "p.data += learning_rate * p.grad: climbs",
            _train_mlp('''        loss = mse_loss(model, X, y)
        for p in model.parameters():
            p.grad = 0.0
        loss.backward()
        for p in model.parameters():
            p.data += learning_rate * p.grad
        losses.append(loss.data)'''),
            train_mlp=Loss(0, "sign"))
_corpus.add("train_model_per_epoch", "a new MLP from the starting tensors every epoch: each "
            "step starts over",
            {"train_mlp_answer": cell("train_mlp_answer", '''
def train_mlp(X, y, w1, b1, w2, b2, learning_rate, epochs):
    losses = []
    for _ in range(epochs):
        model = MLP(w1, b1, w2, b2)
        loss = mse_loss(model, X, y)
        loss.backward()
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        losses.append(loss.data)
    return losses, model.tensors()
''')},
            train_mlp=Loss(0, None))
_corpus.add("module_weight_untransposed", "copies w1 into nn.Linear's weight without .T",
            _train_module(copy="w1"), torch_module=Loss(0, "transposed"))
_corpus.add("module_float32_layers", "MoonNet's layers without dtype=torch.float64",
            {"torch_module_answer": cell("torch_module_answer", '''
def __init__(self, n_in, n_hidden):
    super().__init__()
    self.hidden = nn.Linear(n_in, n_hidden)
    self.output = nn.Linear(n_hidden, 1)
''')},
            torch_module=Loss(0, "float32"))
_corpus.add("module_returns_out_in", "returns nn.Linear's hidden weight as stored, (out, in)",
            _train_module(returned="model.hidden.weight"),
            torch_module=Loss(0, "transposed", ok=("shape",)))
_corpus.add("module_loss_after_step", "each epoch's loss recorded after step(), recomputed",
            _train_module(loop='''        optimizer.zero_grad()
        loss_function(model(X), y).backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(loss_function(model(X), y).item())'''),
            torch_module=Loss(0, "loss_after_update"))

# ---- correct, written differently -------------------------------------------------------

_corpus.add("ok_iterative_topo", "the topological order by an explicit stack, visited a list",
            _backward('''    topo, visited, stack = [], [], [(self, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            topo.append(node)
        elif not any(node is seen for seen in visited):
            visited.append(node)
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev)
    self.grad = 1.0
    for node in reversed(topo):
        node._backward()'''))
_corpus.add("ok_mean_by_division", "mse_loss as sum(errors) / len(errors), through __radd__ "
            "and __truediv__",
            {"mlp_gradients_answer": cell("mlp_gradients_answer", '''
def mse_loss(model, X, y):
    errors = [(model(list(row)).sigmoid() - float(target)) ** 2
              for row, target in zip(X.tolist(), y.flatten().tolist())]
    return sum(errors) / len(errors)
''')})
_corpus.add("ok_module_zero_grad", "model.zero_grad() and nn.functional's BCE with logits",
            _train_module(loop='''        model.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))'''))
