"""single_neuron: one neuron, nn.Linear and optim.SGD, ReLU's backprop, dead and Leaky ReLU."""

import textwrap

from . import CHANGES_INPUTS, Corpus, Loss

PARTS = ("linear", "relu_backprop", "dead_relu", "leaky_relu", "bias", "several_inputs")
_corpus = Corpus("single_neuron")
BASE = _corpus.base
SUBMISSIONS = _corpus.submissions
linear = _corpus.with_defs


def _train_neuron(body: str) -> str:
    """train_neuron with this loop body (model, optimizer, loss_function, losses in scope)."""
    return linear("bias_answer", f'''
def train_neuron(x, y, weight, bias, negative_slope, learning_rate, epochs):
    linear = neuron_with(weight, bias)
    model = nn.Sequential(linear, nn.LeakyReLU(negative_slope))
    optimizer = optim.SGD(model.parameters(), lr=learning_rate)
    loss_function = nn.MSELoss()
    losses = []
    for epoch in range(epochs):
{textwrap.indent(textwrap.dedent(body).strip(), " " * 8)}
    return losses, linear.weight.detach().clone(), linear.bias.detach().clone()
''')


def _train_linear(body: str, epochs: str = "range(epochs)", loss: str = "nn.MSELoss()",
                  lr: str = "learning_rate") -> str:
    return linear("linear_answer", f'''
def train_linear(x, y, weight, learning_rate, epochs):
    neuron = neuron_with(weight)
    optimizer = optim.SGD(neuron.parameters(), lr={lr})
    loss_function = {loss}
    losses = []
    for _ in {epochs}:
{textwrap.indent(textwrap.dedent(body).strip(), " " * 8)}
    return losses, neuron.weight.detach().clone()
''')


def _relu_backprop(d_loss_d_output: str, relu_slope: str) -> dict[str, str]:
    """relu_backprop with these two factors; the gradient by autograd."""
    return {"relu_backprop_answer": linear("relu_backprop_answer", f'''
def relu_backprop(x, y, weight):
    neuron = neuron_with(weight)
    z = neuron(x)
    output = torch.relu(z)
    nn.MSELoss()(output, y).backward()
    d_loss_d_output = {d_loss_d_output}
    relu_slope = {relu_slope}
    return d_loss_d_output, relu_slope, neuron.weight.grad
''')}


_STEP = """
optimizer.zero_grad()
loss = loss_function(neuron(x), y)
loss.backward()
optimizer.step()
losses.append(loss.item())
"""

# ---- wrong -------------------------------------------------------------------------------

_corpus.add("epochs_plus_one", "train_linear runs epochs + 1 steps ('from epoch 0 to epochs')",
            {"linear_answer": _train_linear(_STEP, epochs="range(epochs + 1)")},
            linear=Loss(0, "wrong_epochs"))
_corpus.add("module_zero_grad_between", "neuron.zero_grad(set_to_none=True) after backward(), "
            "before step(): the step has no gradient",
            {"linear_answer": _train_linear("""
                loss = loss_function(neuron(x), y)
                loss.backward()
                neuron.zero_grad(set_to_none=True)
                optimizer.step()
                losses.append(loss.item())""")},
            linear=Loss(0, "cleared_before_step"))
_corpus.add("half_sum_of_squares", "train_linear's loss is nn_from_scratch's 0.5 * sum of "
            "squares, not nn.MSELoss",
            {"linear_answer": _train_linear(_STEP, loss="lambda out, t: 0.5 * ((out - t) ** 2)"
                                                         ".sum()")},
            linear=Loss(0, "mean_vs_sum"))
_corpus.add("rate_in_loss", "the learning rate multiplies the loss and SGD uses lr=1: the same "
            "steps, but the recorded losses are scaled",
            {"linear_answer": _train_linear("""
                optimizer.zero_grad()
                loss = learning_rate * loss_function(neuron(x), y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())""", lr="1.0")},
            linear=Loss(0, "learning_rate_scale"))
_corpus.add("parameter_wraps_input", "neuron_with wraps the given tensors in nn.Parameter: "
            "SGD then updates the caller's weight (and bias) in place",
            {"linear_answer": linear("linear_answer", '''
def neuron_with(weight, bias=None):
    neuron = nn.Linear(weight.shape[1], 1, bias=bias is not None, dtype=weight.dtype)
    neuron.weight = nn.Parameter(weight)
    if bias is not None:
        neuron.bias = nn.Parameter(bias)
    return neuron
''')},
            linear=Loss(0, CHANGES_INPUTS), bias=Loss(0, CHANGES_INPUTS),
            several_inputs=Loss(0, CHANGES_INPUTS))
_corpus.add("loss_recomputed_after_step", "train_neuron records the loss recomputed after "
            "the step",
            {"bias_answer": _train_neuron("""
                optimizer.zero_grad()
                loss_function(model(x), y).backward()
                optimizer.step()
                losses.append(loss_function(model(x), y).item())""")},
            bias=Loss(0, "loss_after_update"), several_inputs=Loss(0, "loss_after_update"))
_corpus.add("bias_forgotten", "train_neuron builds neuron_with(weight) without the bias and "
            "returns the bias unchanged",
            {"bias_answer": linear("bias_answer", '''
def train_neuron(x, y, weight, bias, negative_slope, learning_rate, epochs):
    linear = neuron_with(weight)
    model = nn.Sequential(linear, nn.LeakyReLU(negative_slope))
    optimizer = optim.SGD(model.parameters(), lr=learning_rate)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, linear.weight.detach().clone(), bias.clone()
''')},
            bias=Loss(0, None, ok=("not_learned",)),
            several_inputs=Loss(0, None, ok=("not_learned",)))
_corpus.add("one_input_hard_coded", "neuron_with builds nn.Linear(1, 1): right for Parts 1-5, "
            "wrong with several inputs",
            {"linear_answer": linear("linear_answer", '''
def neuron_with(weight, bias=None):
    neuron = nn.Linear(1, 1, bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        neuron.weight.copy_(weight)
        if bias is not None:
            neuron.bias.copy_(bias)
    return neuron
''')},
            several_inputs=Loss(0, None, ok=("exception", "shape")))
_corpus.add("slope_at_zero_inclusive", "relu_backprop's slope is (z >= 0): 1 at the kink",
            _relu_backprop("2 * (output.detach() - y) / y.shape[0]",
                           "(z.detach() >= 0).to(x.dtype)"),
            relu_backprop=Loss(0, "relu_slope_at_zero"))
_corpus.add("d_output_without_2", "d_loss_d_output = (output - y) / N: the 2 of the square "
            "left out",
            _relu_backprop("(output.detach() - y) / len(y)",
                           "(z.detach() > 0).to(x.dtype)"),
            relu_backprop=Loss(0, "factor_of_2"))
_corpus.add("d_output_from_z", "d_loss_d_output uses z, the pre-activation, for y_hat",
            {"relu_backprop_answer": linear("relu_backprop_answer", '''
def relu_backprop(x, y, weight):
    neuron = neuron_with(weight)
    z = neuron(x)
    nn.MSELoss()(torch.relu(z), y).backward()
    z = z.detach()
    d_loss_d_output = 2 * (z - y) / y.shape[0]
    relu_slope = (z > 0).to(x.dtype)
    return d_loss_d_output, relu_slope, neuron.weight.grad
''')},
            relu_backprop=Loss(0, None))
_corpus.add("dead_assumes_positive_x", "dead_relu_start returns -1 always: dead only for "
            "positive inputs",
            {"dead_relu_answer": linear("dead_relu_answer", '''
def dead_relu_start(x):
    return -torch.ones(1, 1, dtype=x.dtype)
''')},
            dead_relu=Loss(0, "not_dead"))
_corpus.add("dead_float32", "dead_relu_start's weight made without dtype: float32",
            {"dead_relu_answer": linear("dead_relu_answer", '''
def dead_relu_start(x):
    return torch.tensor([[-1.0 if x[0, 0] > 0 else 1.0]])
''')},
            dead_relu=Loss(0, "float32"))
_corpus.add("leaky_slope_hard_coded", "nn.LeakyReLU(0.01): the notebook's example slope, not "
            "negative_slope",
            {"leaky_relu_answer": linear("leaky_relu_answer", '''
def leaky_relu_gradient(x, y, weight, negative_slope):
    neuron = neuron_with(weight)
    output = nn.LeakyReLU(0.01)(neuron(x))
    nn.MSELoss()(output, y).backward()
    return neuron.weight.grad
''')},
            leaky_relu=Loss(0, "default_negative_slope"))

# ---- correct, written differently -------------------------------------------------------

_corpus.add("ok_dead_from_first_input", "dead start -x[0:1, 0:1]: against the inputs' sign",
            {"dead_relu_answer": linear("dead_relu_answer", '''
def dead_relu_start(x):
    return -x[:1, :1].clone()
''')})
_corpus.add("ok_leaky_by_where", "Leaky ReLU written with torch.where, slope 1 at 0 (its "
            "gradient in w has the factor x = 0 there)",
            {"leaky_relu_answer": linear("leaky_relu_answer", '''
def leaky_relu_gradient(x, y, weight, negative_slope):
    neuron = neuron_with(weight)
    z = neuron(x)
    output = torch.where(z >= 0, z, negative_slope * z)
    ((output - y) ** 2).mean().backward()
    return neuron.weight.grad.clone()
''')})
_corpus.add("ok_optimizer_per_epoch_tensor_losses", "a new optim.SGD every epoch (no state "
            "to lose) and losses kept as 0-d tensors",
            {"bias_answer": linear("bias_answer", '''
def train_neuron(x, y, weight, bias, negative_slope, learning_rate, epochs):
    linear = neuron_with(weight, bias)
    activation = nn.LeakyReLU(negative_slope)
    losses = []
    for _ in range(epochs):
        optimizer = optim.SGD(linear.parameters(), lr=learning_rate)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(activation(linear(x)), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses), linear.weight.detach().clone(), linear.bias.detach().clone()
''')})
_corpus.add("ok_slope_from_sign", "relu_slope = sign(z).clamp(min=0): 0 at the kink",
            {"relu_backprop_answer": linear("relu_backprop_answer", '''
def relu_backprop(x, y, weight):
    neuron = neuron_with(weight)
    z = neuron(x)
    output = z.clamp(min=0)
    loss = nn.MSELoss()(output, y)
    loss.backward()
    N = x.shape[0]
    return (2.0 / N) * (output - y).detach(), torch.sign(z.detach()).clamp(min=0), \\
        neuron.weight.grad.clone()
''')})
