# ruff: noqa: E501 - the submissions quote code: a replaced line is kept whole, as it reads in the notebook
"""single_neuron: functions that change their inputs (and a few correct variants)."""

from . import CHANGES_INPUTS, Loss, Submission, edited

ASSIGNMENT = "single_neuron"
# The graded parts when the corpus was written: a part added since is not judged.
PARTS = ("linear", "relu_backprop", "dead_relu", "leaky_relu", "bias", "several_inputs")

BASE = {
    "linear_answer": '''
def neuron_with(weight, bias=None):
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                      dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def train_linear(x, y, weight, learning_rate, epochs):
    neuron = neuron_with(weight)
    optimizer = optim.SGD(neuron.parameters(), lr=learning_rate)
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = loss_fn(neuron(x), y)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses, neuron.weight.detach().clone()
''',
    "relu_backprop_answer": '''
def relu_backprop(x, y, weight):
    z = x @ weight.T
    output = torch.relu(z)
    d_loss_d_output = 2 / len(x) * (output - y)
    relu_slope = (z > 0).to(x.dtype)
    neuron = neuron_with(weight)
    loss = nn.MSELoss()(torch.relu(neuron(x)), y)
    loss.backward()
    return d_loss_d_output, relu_slope, neuron.weight.grad.clone()
''',
    "dead_relu_answer": '''
def dead_relu_start(x):
    sign = torch.sign(x[0, 0]).item()
    return torch.tensor([[-0.5 * sign]], dtype=x.dtype)
''',
    "leaky_relu_answer": '''
def leaky_relu_gradient(x, y, weight, negative_slope):
    neuron = neuron_with(weight)
    loss = nn.MSELoss()(nn.LeakyReLU(negative_slope)(neuron(x)), y)
    loss.backward()
    return neuron.weight.grad.clone()
''',
    "bias_answer": '''
def train_neuron(x, y, weight, bias, negative_slope, learning_rate, epochs):
    neuron = neuron_with(weight, bias)
    activation = nn.LeakyReLU(negative_slope)
    optimizer = optim.SGD(neuron.parameters(), lr=learning_rate)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = nn.MSELoss()(activation(neuron(x)), y)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses, neuron.weight.detach().clone(), neuron.bias.detach().clone()
''',
}

LINEAR = "linear_answer"
_COPIED_IN = """    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
"""


def _trains_the_given(name, why, *replacements):
    """neuron_with made to share the given tensors' storage: every training part then
    changes the caller's weight and bias."""
    return Submission(name, ASSIGNMENT, why, edited(BASE, LINEAR, *replacements),
                      {"linear": Loss(0, CHANGES_INPUTS),
                       "bias": Loss(0, CHANGES_INPUTS, ok=(None,)),
                       "several_inputs": Loss(0, CHANGES_INPUTS, ok=(None,))},
                      changes_inputs=True)


SUBMISSIONS = [
    _trains_the_given(
        "sn/parameter_shares_the_weight",
        "neuron_with wraps the given tensors in nn.Parameter: optim.SGD then updates the "
        "caller's weight and bias in place, and the trained weight returned is the caller's "
        "tensor",
        (_COPIED_IN, """    layer.weight = nn.Parameter(weight)
    if bias is not None:
        layer.bias = nn.Parameter(bias)
"""),
        ("    return losses, neuron.weight.detach().clone()",
         "    return losses, neuron.weight.data")),
    _trains_the_given(
        "sn/weight_data_assigned",
        "neuron_with sets layer.weight.data = weight (shares its storage); the trained values "
        "are right, the caller's weight is trained too",
        (_COPIED_IN, """    layer.weight.data = weight
    if bias is not None:
        layer.bias.data = bias
""")),
    Submission("sn/requires_grad_on_weight", ASSIGNMENT,
               "relu_backprop sets weight.requires_grad_() on the given weight and "
               "differentiates it directly (the gradient lands on the caller's tensor)",
               {"relu_backprop_answer": '''
def relu_backprop(x, y, weight):
    weight.requires_grad_()
    z = x @ weight.T
    output = torch.relu(z)
    loss = ((output - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        d_loss_d_output = 2 / len(x) * (output - y)
        relu_slope = (z > 0).to(x.dtype)
    return d_loss_d_output, relu_slope, weight.grad.clone()
'''},
               {"relu_backprop": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("sn/dead_start_negates_x", ASSIGNMENT,
               "dead_relu_start works out the sign with x.mul_(-1) (in place), then undoes "
               "nothing: the caller's x changes sign",
               {"dead_relu_answer": '''
def dead_relu_start(x):
    flipped = x.mul_(-1)
    return flipped[:1, :1].sign() * 0.5
'''},
               {"dead_relu": Loss(0, CHANGES_INPUTS)},
               changes_inputs=True),
    Submission("sn/dead_start_zero", ASSIGNMENT,
               "dead_relu_start returns a weight of exactly 0: the gradient is 0 (relu'(0) "
               "= 0), yet the prose asks every z strictly negative",
               {"dead_relu_answer": '''
def dead_relu_start(x):
    return torch.zeros(1, 1, dtype=x.dtype)
'''},
               {"dead_relu": Loss(0, None)}),
    Submission("sn/neuron_with_parameter_of_a_clone", ASSIGNMENT,
               "correct: nn.Parameter(weight.clone()) and a bias made the same way",
               edited(BASE, LINEAR, (_COPIED_IN, """    layer.weight = nn.Parameter(weight.clone())
    if bias is not None:
        layer.bias = nn.Parameter(bias.clone())
"""))),
]
