"""Autograd built by hand: seeded expressions and networks, autograd references and known
mistakes (grader only; the kit's `autograder.kit.assignment_parts.autograd_from_scratch` says how
each part is called and judged).

Every expression a case describes is built here in torch, on float64 scalars, and autograd
gives every node's gradient. The known mistakes are the student's algorithm with a classic
error, run by a small engine of the grader's own (`simulated_gradients`).
"""

import math
import random
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..kit.assignment_parts import autograd_from_scratch as spec
from ..kit.assignment_parts.autograd_from_scratch import (
    ADD,
    ADD_NUMBER,
    BINARY,
    EXP,
    MUL,
    NUMBER_TIMES,
    OPERATIONS,
    POW,
    RELU,
    SIGMOID,
    TANH,
)
from ..kit.datasets import random_parameters, two_moons
from ..kit.parts import Case
from ..known_mistakes import LOSS_AFTER_UPDATE, KnownMistake, rate_mistakes
from .graded import Grading, graded

_PARAMETERS = spec.PARAMETERS
# Each operation in torch, on tensors a and b (b: the second operand, or the number c).
_TORCH = (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a + b, lambda a, b: b * a,
          lambda a, b: a ** b, lambda a, b: a.exp(), lambda a, b: a.tanh(),
          lambda a, b: a.sigmoid(), lambda a, b: a.relu())


# ---- single operations ------------------------------------------------------------------

_EXPONENTS = (2.0, 3.0, -1.0, 0.5, -2.0, 1.5)


def single_operations(seed: int, per_operation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b): row k holds per_operation inputs of operation k. b is the second Value of
    a + b and a * b, the number c of a + c, c * a and a ** c (an exponent that a's sign
    allows, its size kept away from 0 for a negative one), unused (0) otherwise. ReLU gets an
    exact 0 first, where its slope is 0 (autograd's convention), then both signs."""
    g = torch.Generator().manual_seed(seed)

    def uniform(low, high):
        return low + (high - low) * torch.rand(per_operation, generator=g, dtype=torch.float64)

    signs = torch.where(torch.arange(per_operation) % 2 == 0, 1.0, -1.0).to(torch.float64)
    a, b = torch.zeros(len(OPERATIONS), per_operation, dtype=torch.float64), \
        torch.zeros(len(OPERATIONS), per_operation, dtype=torch.float64)
    a[ADD], b[ADD] = uniform(-2, 2), uniform(-2, 2)
    a[MUL], b[MUL] = uniform(-2, 2), uniform(-2, 2)
    a[ADD_NUMBER], b[ADD_NUMBER] = uniform(-2, 2), signs * uniform(0.5, 3)
    a[NUMBER_TIMES], b[NUMBER_TIMES] = uniform(-2, 2), -signs * uniform(0.5, 3)
    exponents = torch.tensor([_EXPONENTS[(seed + i) % len(_EXPONENTS)]
                              for i in range(per_operation)], dtype=torch.float64)
    whole = exponents == exponents.round()
    a[POW] = torch.where(whole, signs, 1.0) * uniform(0.5, 2)
    b[POW] = exponents
    a[EXP], a[TANH], a[SIGMOID] = uniform(-2, 2), uniform(-2.5, 2.5), uniform(-4, 4)
    a[RELU] = signs * uniform(0.2, 2)
    a[RELU, 0] = 0.0
    return a, b


def reference_operations(a, b):
    """Each operation on each input, in torch."""
    return {name: _TORCH[k](a[k], b[k]) for k, name in enumerate(spec.FORWARD_RETURNS)}


def reference_local_gradients(a, b, upstream, earlier_a, earlier_b):
    """What out._backward() leaves in the inputs' .grad: what they held, plus autograd's
    vector-Jacobian product of each operation with the gradient flowing in."""
    results = {}
    for k, name in enumerate(spec.LOCAL_RETURNS):
        first = a[k].clone().requires_grad_()
        second = b[k].clone().requires_grad_() if k in BINARY else b[k]
        inputs = [first, second] if k in BINARY else [first]
        grads = torch.autograd.grad(_TORCH[k](first, second), inputs, upstream[k])
        after = [earlier + grad for earlier, grad in zip((earlier_a[k], earlier_b[k]), grads,
                                                         strict=False)]
        results[name] = torch.stack(after, 1) if k in BINARY else after[0]
    return results


def _local_variant(a, b, upstream, earlier_a, earlier_b, **mistake):
    """Per operation, what _backward leaves with a mistake in that operation alone: each
    candidate holds one operation's output."""
    for k, name in enumerate(spec.LOCAL_RETURNS):
        rows = []
        for x, c, g, ea, eb in zip(*(t[k].tolist() for t in (a, b, upstream, earlier_a,
                                                             earlier_b)), strict=True):
            derivatives = _derivatives(k, x, c, _forward(k, x, c),
                                       mistake.get("relu_at_zero", False))
            rows.append([_accumulated(earlier, d, g, **mistake)
                         for earlier, d in zip((ea, eb), derivatives, strict=False)])
        tensor = torch.tensor(rows, dtype=torch.float64)
        yield {name: tensor if k in BINARY else tensor[:, 0]}


def _accumulated(earlier: float, derivative: float, upstream: float, *, accumulate=True,
                 chain=True, relu_at_zero=False) -> float:
    """An input's .grad after one _backward (relu_at_zero acts on the derivative, not here)."""
    contribution = derivative * upstream if chain else derivative
    return earlier + contribution if accumulate else contribution


# ---- the grader's own engine, for the known mistakes ------------------------------------

def _forward(operation: int, a: float, b: float) -> float:
    if operation in (ADD, ADD_NUMBER):
        return a + b
    if operation in (MUL, NUMBER_TIMES):
        return a * b
    if operation == POW:
        return a ** b
    if operation == EXP:
        return math.exp(a)
    if operation == TANH:
        return math.tanh(a)
    if operation == SIGMOID:
        return 1 / (1 + math.exp(-a))
    return max(a, 0.0)


def _derivatives(operation: int, a: float, b: float, out: float,
                 relu_at_zero: bool = False) -> tuple[float, ...]:
    """d out / d operand, for each operand that is a Value (b is a number outside BINARY)."""
    if operation == ADD:
        return 1.0, 1.0
    if operation == MUL:
        return b, a
    if operation == ADD_NUMBER:
        return (1.0,)
    if operation == NUMBER_TIMES:
        return (b,)
    if operation == POW:
        return (b * a ** (b - 1),)
    if operation == EXP:
        return (out,)
    if operation == TANH:
        return (1 - out ** 2,)
    if operation == SIGMOID:
        return (out * (1 - out),)
    return (1.0 if a > 0 or relu_at_zero and a == 0 else 0.0,)


def simulated_gradients(leaves, program, constants, *, order="reverse_topological",
                        only=None, **mistake) -> torch.Tensor:
    """Every node's .grad after backward() as the notebook's engine computes it: the local
    gradients of each operation (with `mistake`: accumulate=False overwrites, chain=False
    leaves out the gradient flowing in, relu_at_zero takes ReLU's slope at 0 as 1, in the
    operations `only` names, all by default), run node by node in `order`."""
    data, inputs, locals_ = list(leaves.tolist()), [[] for _ in range(len(leaves))], \
        [() for _ in range(len(leaves))]
    flags = []
    for (operation, first, second), c in zip(program.tolist(), constants.tolist(),
                                             strict=True):
        b = data[second] if operation in BINARY else c
        out = _forward(operation, data[first], b)
        flags.append(mistake if only is None or operation in only else {})
        locals_.append(_derivatives(operation, data[first], b, out,
                                    flags[-1].get("relu_at_zero", False)))
        inputs.append([first, second] if operation in BINARY else [first])
        data.append(out)
    grads = [0.0] * len(data)
    root = len(data) - 1
    grads[root] = 1.0
    for node in list(_ORDERS[order](inputs, root)):
        for child, derivative in zip(inputs[node], locals_[node], strict=True):
            grads[child] = _accumulated(grads[child], derivative, grads[node],
                                        **flags[node - len(leaves)])
    return torch.tensor(grads, dtype=torch.float64)


def _postorder(inputs, root, visited: set | None) -> list[int]:
    """build_topo's list: each node after its inputs; with visited=None, once per path."""
    topo, stack = [], [(root, 0)]
    if visited is not None:
        visited.add(root)
    while stack:
        node, index = stack.pop()
        if index < len(inputs[node]):
            stack.append((node, index + 1))
            child = inputs[node][index]
            if visited is None or child not in visited:
                if visited is not None:
                    visited.add(child)
                stack.append((child, 0))
        else:
            topo.append(node)
    return topo


def _preorder(inputs, root, visited: set | None) -> Iterator[int]:
    """A recursion that runs each node's _backward before its inputs' (no sort)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if visited is not None:
            if node in visited:
                continue
            visited.add(node)
        yield node
        stack.extend(reversed(inputs[node]))


def _breadth_first(inputs, root) -> Iterator[int]:
    queue, seen = [root], {root}
    while queue:
        node = queue.pop(0)
        yield node
        for child in inputs[node]:
            if child not in seen:
                seen.add(child)
                queue.append(child)


_ORDERS = {
    "reverse_topological": lambda i, r: reversed(_postorder(i, r, set())),
    "topological": lambda i, r: _postorder(i, r, set()),
    "no_visited_set": lambda i, r: reversed(_postorder(i, r, None)),
    "preorder": lambda i, r: _preorder(i, r, set()),
    "preorder_no_visited_set": lambda i, r: _preorder(i, r, None),
    "breadth_first": _breadth_first,
}


# ---- expressions: random graphs and deep chains -----------------------------------------

_BOUND = 20.0  # no node's value beyond it: gradients stay of a size that compares well


def _valid(operation: int, a: float, b: float) -> bool:
    """Whether an operation is defined and stays bounded here; ReLU's input is never exactly
    0, where its slope is a convention (the single-operation parts check it)."""
    if operation == RELU and a == 0 or operation == EXP and a > 2.5:
        return False
    if operation == POW and (a == 0 or b != round(b) and a < 0.1 or b < 0 and abs(a) < 0.3):
        return False
    return abs(_forward(operation, a, b)) <= _BOUND


# The exponents of the expressions: whole and positive, so that a wrong value upstream (a
# student's wrong operation) cannot make a later power raise; the single-operation parts
# check the others.
_GRAPH_EXPONENTS = (2.0, 3.0)


def _number_for(operation: int, rng: random.Random) -> float:
    if operation == POW:
        return rng.choice(_GRAPH_EXPONENTS)
    if operation in (ADD_NUMBER, NUMBER_TIMES):
        return rng.choice((-1, 1)) * rng.uniform(0.5, 2.0)
    return 0.0


def random_graph(seed: int, n_leaves: int, n_operations: int, shared: float = 0.35):
    """(leaves, program, constants): n_operations random operations on n_leaves leaves.
    Each operation takes a node that no operation has used yet, so that every node feeds
    the last one, and with probability `shared` a second operand that already feeds another
    (a shared node, where contributions must add up), sometimes the first one itself: a
    third of the way it is x + x, two thirds x * x."""
    rng = random.Random(seed)
    twice = {n_operations // 3: ADD, 2 * n_operations // 3: MUL}
    data = [rng.choice((-1, 1)) * rng.uniform(0.3, 1.5) for _ in range(n_leaves)]
    used = [False] * n_leaves
    program, constants = [], []
    for step in range(n_operations):
        loose = [node for node, is_used in enumerate(used) if not is_used]
        must_merge = len(loose) - 1 >= n_operations - step
        for _ in range(100):
            first = rng.choice(loose[-4:]) if rng.random() < 0.7 else rng.choice(loose)
            operation = rng.choice((ADD, MUL)) if must_merge else rng.randrange(len(OPERATIONS))
            second, c = -1, _number_for(operation, rng)
            if operation in BINARY:
                others = [node for node in loose if node != first]
                if must_merge or others and rng.random() > shared:
                    second = rng.choice(others)
                else:
                    consumed = [node for node, is_used in enumerate(used) if is_used]
                    second = rng.choice(consumed) if consumed and rng.random() < 0.8 else first
            if step in twice and not must_merge:  # on the newest node, not a leaf
                first = loose[-1]
                operation, second = twice[step], first
            b = data[second] if operation in BINARY else c
            if _valid(operation, data[first], b):
                break
        else:  # every node stays one that feeds the last: merge, or halve towards 0
            operation, second, c = (ADD, loose[0] if loose[0] != first else loose[1], 0.0) \
                if must_merge else (ADD_NUMBER, -1, -data[first] / 2)
        b = data[second] if operation in BINARY else c
        data.append(_forward(operation, data[first], b))
        used[first] = True
        if second >= 0:
            used[second] = True
        used.append(False)
        program.append((operation, first, second))
        constants.append(c)
    return _described(data[:n_leaves], program, constants)


def deep_chain(seed: int, n_leaves: int, n_operations: int, skips: int):
    """(leaves, program, constants): a chain of n_operations operations from leaf 0, each on
    the node before it and at times a side leaf (used again and again: shared), with `skips`
    skip connections x + x.tanh(): there x feeds the sum directly and through the tanh, along
    paths of two lengths, so a walk that passes x's gradient on as soon as it reaches x (in
    breadth-first order, or before its users) does it too early. Every operation keeps the
    chain's gradient between e**-3 and e**3 of the last node's, so that none vanishes."""
    rng = random.Random(seed)
    data = [rng.uniform(0.5, 1.5)] + [rng.choice((-1, 1)) * rng.uniform(0.6, 1.4)
                                      for _ in range(n_leaves - 1)]
    program, constants = [], []
    skip_at = set(rng.sample(range(1, n_operations // 2), skips))
    current, log_gradient, side = 0, 0.0, 0

    def emit(operation, first, second, c):
        b = data[second] if operation in BINARY else c
        data.append(_forward(operation, data[first], b))
        program.append((operation, first, second))
        constants.append(c)
        return len(data) - 1

    while len(program) < n_operations:
        if len(program) % 2 == 0 and len(program) // 2 in skip_at \
                and n_operations - len(program) >= 2:
            skip_at.discard(len(program) // 2)
            x = data[current]
            current = emit(ADD, current, emit(TANH, current, -1, 0.0), 0.0)
            log_gradient += math.log(2 - math.tanh(x) ** 2)
            continue
        for _ in range(100):
            operation = rng.randrange(len(OPERATIONS))
            second = -1
            if operation in BINARY:
                second = 1 + side % (n_leaves - 1)
            c = _number_for(operation, rng)
            b = data[second] if operation in BINARY else c
            if not _valid(operation, data[current], b) \
                    or not 0.05 <= abs(_forward(operation, data[current], b)) <= 5:
                continue
            d = _derivatives(operation, data[current], b, _forward(operation, data[current],
                                                                    b))[0]
            if d != 0 and abs(log_gradient + math.log(abs(d))) <= 3:
                break
        else:
            operation, second, c, d = ADD_NUMBER, -1, 0.5, 1.0
        if operation in BINARY:
            side += 1
        log_gradient += math.log(abs(d))
        current = emit(operation, current, second, c)
    return _described(data[:n_leaves], program, constants)


def _described(leaves, program, constants):
    return (torch.tensor(leaves, dtype=torch.float64),
            torch.tensor(program, dtype=torch.int64).reshape(-1, 3),
            torch.tensor(constants, dtype=torch.float64))


def reference_gradients(leaves, program, constants):
    """Autograd's gradient of the last node with respect to every node (0 where none)."""
    nodes = [leaf.clone().requires_grad_() for leaf in leaves]
    for (operation, first, second), c in zip(program.tolist(), constants.tolist(),
                                             strict=True):
        node = _TORCH[operation](nodes[first], nodes[second] if operation in BINARY else c)
        node.retain_grad()
        nodes.append(node)
    nodes[-1].backward()
    return {spec.GRADIENTS: torch.stack([node.grad if node.grad is not None
                                         else torch.zeros_like(node) for node in nodes])}


# ---- known mistakes of the Value parts ---------------------------------------------------

# The operations each method of Value computes: a mistake in __mul__ is one in c * a too.
_METHODS = ({ADD, ADD_NUMBER}, {MUL, NUMBER_TIMES}, {POW}, {EXP}, {TANH}, {SIGMOID}, {RELU})


def _per_method(**mistake):
    """The mistake made in every method, then in each method alone."""
    def compute(_reference, args):
        yield {spec.GRADIENTS: simulated_gradients(*args.values(), **mistake)}
        for operations in _METHODS:
            yield {spec.GRADIENTS: simulated_gradients(*args.values(), only=operations,
                                                       **mistake)}
    return compute


def _in_order(*orders):
    def compute(_reference, args):
        for order in orders:
            yield {spec.GRADIENTS: simulated_gradients(*args.values(), order=order)}
    return compute


def _locally(**mistake):
    return lambda _reference, args: _local_variant(*args.values(), **mistake)


_OVERWRITTEN = (
    "A gradient was overwritten (self.grad = ...) where contributions must add up "
    "(self.grad += ...): a node used in two places, or one whose .grad already holds a "
    "contribution from elsewhere, keeps only the last one.")
_MISSING_CHAIN = (
    "The gradient flowing in, out.grad, is missing from the chain rule: each input's .grad "
    "grows by the local gradient times out.grad, not by the local gradient alone.")
_RELU_AT_ZERO = ("ReLU's slope at exactly 0 was taken as 1: autograd's convention, and the "
                 "check's, is 0 there (out.data > 0, not >= 0).")
_LOCAL_MISTAKES = (
    KnownMistake("overwritten_gradient", _OVERWRITTEN, _locally(accumulate=False)),
    KnownMistake("missing_chain_factor", _MISSING_CHAIN, _locally(chain=False)),
    KnownMistake("relu_slope_at_zero", _RELU_AT_ZERO, _locally(relu_at_zero=True)),
)
_BACKWARD_MISTAKES = (
    KnownMistake("no_visited_set",
                 "A node reached along two paths had its _backward run more than once: the "
                 "recursion that orders the nodes keeps no set of the nodes it has visited, so "
                 "a shared node (and everything below it) is listed once per path, and on a "
                 "deep graph that list grows exponentially. Skip a node already visited.",
                 _in_order("no_visited_set", "preorder_no_visited_set")),
    KnownMistake("wrong_order",
                 "A node's _backward ran before every node that uses it had added its "
                 "contribution to its .grad: run them in reverse topological order (build the "
                 "list with each node after its inputs, then walk it from the end).",
                 _in_order("topological", "preorder", "breadth_first")),
    KnownMistake("overwritten_gradient", _OVERWRITTEN, _per_method(accumulate=False)),
    KnownMistake("missing_chain_factor", _MISSING_CHAIN, _per_method(chain=False)),
    KnownMistake("relu_slope_at_zero", _RELU_AT_ZERO,
                 lambda _reference, args: [{spec.GRADIENTS: simulated_gradients(
                     *args.values(), relu_at_zero=True)}]),
)


# ---- networks -------------------------------------------------------------------------------

def logits(X, w1, b1, w2, b2):
    """The network of the last three parts: tanh hidden units, one output (a logit)."""
    return torch.tanh(X @ w1 + b1) @ w2 + b2


def mse(X, y, params):
    """The Value network's loss: the mean squared error of sigmoid(logit) against y."""
    return ((torch.sigmoid(logits(X, *params)) - y) ** 2).mean()


def cross_entropy(X, y, params):
    """The module's loss: binary cross-entropy on the logits (nn.BCEWithLogitsLoss)."""
    return F.binary_cross_entropy_with_logits(logits(X, *params), y)


def _gradients(loss_of, X, y, params):
    params = [p.detach().clone().requires_grad_() for p in params]
    loss = loss_of(X, y, params)
    return loss.detach(), torch.autograd.grad(loss, params)


def reference_mlp_gradients(X, y, w1, b1, w2, b2):
    loss, grads = _gradients(mse, X, y, (w1, b1, w2, b2))
    return {"loss": loss, **dict(zip(spec.MLP_RETURNS[1:], grads, strict=True))}


def _train(loss_of, X, y, params, learning_rate, epochs, *, piles_up=False):
    """Full-batch gradient descent: the loss before each step, the parameters after the
    last; piles_up: the gradients are never cleared, each step uses their running sum."""
    params, losses, total = list(params), [], None
    for _ in range(epochs):
        loss, grads = _gradients(loss_of, X, y, params)
        total = grads if total is None or not piles_up \
            else [t + g for t, g in zip(total, grads, strict=True)]
        params = [p - learning_rate * g for p, g in zip(params, total, strict=True)]
        losses.append(loss)
    return {"losses": torch.stack(losses), **dict(zip(_PARAMETERS, params, strict=True))}


def reference_train_mlp(X, y, w1, b1, w2, b2, learning_rate, epochs):
    return _train(mse, X, y, (w1, b1, w2, b2), learning_rate, epochs)


def reference_train_module(X, y, w1, b1, w2, b2, learning_rate, epochs):
    return _train(cross_entropy, X, y, (w1, b1, w2, b2), learning_rate, epochs)


def _trained(loss_of, **how):
    def compute(_reference, args):
        X, y, w1, b1, w2, b2, rate, epochs = args.values()
        yield _train(loss_of, X, y, (w1, b1, w2, b2), rate, epochs, **how)
    return compute


def _sigmoid_then_logits_loss(X, y, params):
    return F.binary_cross_entropy_with_logits(torch.sigmoid(logits(X, *params)), y)


_PILED_UP = ("The gradients pile up: they were never cleared, so each step used the sum of "
             "every gradient so far. Clear them before each backward(): p.grad = 0 for each "
             "Value, optimizer.zero_grad() for a module.")
NOTEBOOK_RATES = (0.5, 1.0, 2.0)  # the rates of the notebook's runs: the ones written in by mistake
_MLP_TRAINING_MISTAKES = (
    KnownMistake("missing_zero_grad", _PILED_UP, _trained(mse, piles_up=True)),
    LOSS_AFTER_UPDATE,
    *rate_mistakes(usual_rates=NOTEBOOK_RATES),
)
_MODULE_MISTAKES = (
    KnownMistake("missing_zero_grad", _PILED_UP, _trained(cross_entropy, piles_up=True)),
    KnownMistake("mse_for_classification",
                 "It trained with the mean squared error of sigmoid(logit), the loss of the "
                 "Value network: this part asks for cross-entropy, nn.BCEWithLogitsLoss() on "
                 "the logits.", _trained(mse)),
    KnownMistake("sigmoid_before_logits_loss",
                 "The sigmoid was applied before nn.BCEWithLogitsLoss, which applies its own: "
                 "give it the logits, the network's output before any sigmoid.",
                 _trained(_sigmoid_then_logits_loss)),
    LOSS_AFTER_UPDATE,
    *rate_mistakes(usual_rates=NOTEBOOK_RATES),
)


# ---- cases ------------------------------------------------------------------------------

def _hidden(kind: str, label: str) -> str:
    return label if kind == "visible" else f"a hidden case ({label})"


# Inputs per operation in each case of the single-operation parts.
_VISIBLE_PER_OPERATION, _HIDDEN_PER_OPERATION = (2, 3), (4, 5)


def _operations_cases(kind, seed):
    sizes = _VISIBLE_PER_OPERATION if kind == "visible" else _HIDDEN_PER_OPERATION
    cases = []
    for index, size in enumerate(sizes):
        a, b = single_operations(seed + index, size)
        cases.append(Case(_hidden(kind, f"each operation on {size} inputs"), {"a": a, "b": b}))
    return cases


def _local_gradients_cases(kind, seed):
    cases = []
    for index, case in enumerate(_operations_cases(kind, seed)):
        g = torch.Generator().manual_seed(seed + 100 + index)
        shape = case.args["a"].shape
        upstream, earlier_a, earlier_b = (torch.randn(*shape, generator=g, dtype=torch.float64)
                                          for _ in range(3))
        label = case.label.replace("inputs", "inputs, out.grad set, the inputs' .grad not 0")
        cases.append(Case(label, {**case.args, "upstream": upstream, "earlier_a": earlier_a,
                                  "earlier_b": earlier_b}))
    return cases


# (leaves, operations) of the random graphs, (leaves, operations, skip connections) of the
# chain.
_VISIBLE_GRAPHS, _VISIBLE_CHAIN = ((3, 8), (6, 30)), (5, 120, 3)
_HIDDEN_GRAPHS, _HIDDEN_CHAIN = ((4, 12), (7, 40)), (6, 200, 4)


def with_relu_at_zero(leaves, program, constants):
    """The expression (leaves, program, constants), its last node then added to
    relu(0 * its first leaf) (3 operations more): a ReLU at exactly 0, whatever the leaf's
    value and whoever computes it, where the prose defines its slope (0, as autograd). Its
    input is the only node whose gradient that slope changes: every node's .grad is
    compared, so a slope of 1 at 0 fails the part as it fails the local gradients."""
    last = len(leaves) + len(program) - 1
    tail = torch.tensor([[NUMBER_TIMES, 0, -1], [RELU, last + 1, -1], [ADD, last, last + 2]])
    return (leaves, torch.cat([program, tail]),
            torch.cat([constants, torch.zeros(3, dtype=constants.dtype)]))


# Each method's shared node: (operation, constant) twice on the same node, the unary ones on
# p = x * x (positive, so every one is defined, bounded and of nonzero slope), the binary
# ones as x + p and x * p (x and p each an operand twice, on either side).
_SHARED_UNDER = ((POW, 2.0), (POW, 3.0), (EXP, 0.0), (EXP, 0.0), (TANH, 0.0), (TANH, 0.0),
                 (SIGMOID, 0.0), (SIGMOID, 0.0), (RELU, 0.0), (RELU, 0.0), (ADD, 0.0),
                 (ADD, 0.0), (MUL, 0.0), (MUL, 0.0))


def with_every_method_shared(leaves, program, constants):
    """The expression (leaves, program, constants), its last node then added to a tail in
    which, for each method of Value, one node is the operand of two of its calls (see
    `_SHARED_UNDER`). Whichever of the two _backward calls runs second, one that sets
    .grad in place of adding to it loses the other's contribution: the mistake shows on
    every case, not on the graphs that happen to share a node under that method."""
    x, last = 0, len(leaves) + len(program) - 1
    p = last + 1
    tail, numbers = [[MUL, x, x]], [0.0]
    for operation, c in _SHARED_UNDER:
        tail.append([operation, x if operation in BINARY else p,
                     p if operation in BINARY else -1])
        numbers.append(c)
    total = last
    for used in range(p + 1, p + 1 + len(_SHARED_UNDER)):
        tail.append([ADD, total, used])
        numbers.append(0.0)
        total = p + len(tail) - 1
    return (leaves, torch.cat([program, torch.tensor(tail)]),
            torch.cat([constants, torch.tensor(numbers, dtype=constants.dtype)]))


TAIL_OPERATIONS = 1 + 2 * len(_SHARED_UNDER) + 3  # with_every_method_shared's, then the ReLU's


def _in_full(expression):
    """An expression with every method's shared node, then a ReLU at exactly 0."""
    return with_relu_at_zero(*with_every_method_shared(*expression))


def _backward_cases(kind, seed):
    graphs = _VISIBLE_GRAPHS if kind == "visible" else _HIDDEN_GRAPHS
    leaves, length, skips = _VISIBLE_CHAIN if kind == "visible" else _HIDDEN_CHAIN
    cases = [Case(_hidden(kind, f"an expression of {n} leaves and {m + TAIL_OPERATIONS} "
                                f"operations, some nodes shared under every operation, one "
                                f"ReLU at exactly 0"),
                  dict(zip(("leaves", "program", "constants"),
                           _in_full(random_graph(seed + index, n, m)), strict=True)))
             for index, (n, m) in enumerate(graphs)]
    chain = _in_full(deep_chain(seed + len(graphs), leaves, length, skips))
    cases.append(Case(_hidden(kind, f"a chain of {length} operations with {skips} skip "
                                    f"connections, x + x.tanh(), then a node shared under "
                                    f"every operation and a ReLU at exactly 0"),
                      dict(zip(("leaves", "program", "constants"), chain, strict=True))))
    return cases


def moons_network(seed: int, n: int, hidden: int):
    """X, y: n points of two moons; w1, b1, w2, b2: a 2-hidden-1 network drawn as
    `random_parameters` draws it."""
    X, y = two_moons(n, 0.15, seed)
    return (X, y, *random_parameters(2, hidden, 1, seed + 1))


def _network_label(n: int, hidden: int) -> str:
    return f"two moons: {n} points, a 2-{hidden}-1 network"


# (points, hidden units): non-square layers and a square one (2-2), where a transposed
# weight keeps its shape.
_VISIBLE_NETWORKS, _HIDDEN_NETWORKS = ((5, 3), (7, 2)), ((6, 5), (9, 2))


def _mlp_gradients_cases(kind, seed):
    sizes = _VISIBLE_NETWORKS if kind == "visible" else _HIDDEN_NETWORKS
    return [Case(_hidden(kind, _network_label(n, hidden)),
                 dict(zip(("X", "y", *_PARAMETERS), moons_network(seed + 2 * index, n, hidden),
                          strict=True)))
            for index, (n, hidden) in enumerate(sizes)]


# (points, hidden units, learning rate, epochs). Short: every submission pays for the
# student's Value network and autograd's.
_VISIBLE_MLP_RUNS = ((8, 3, 0.5, 6), (5, 2, 1.0, 4))
_HIDDEN_MLP_RUNS = ((10, 4, 0.8, 5), (6, 2, 1.5, 3))
# The module's runs; the notebook's (200 points, 300 epochs) also classifies 400 held-out
# points with the trained parameters, and each class must be right at least this often.
_VISIBLE_MODULE_RUNS = ((200, 8, 1.0, 300), (12, 3, 0.5, 5))
_HIDDEN_MODULE_RUNS = ((20, 5, 0.7, 8), (9, 2, 1.2, 6))
NOTEBOOK_RUN_BAR = 0.9


def _training_cases(runs, kind, seed, learns_from: int | None = None):
    cases = []
    for index, (n, hidden, rate, epochs) in enumerate(runs):
        truth = {}
        if learns_from is not None and n >= learns_from:
            X_test, y_test = two_moons(400, 0.15, seed + 2 * index + 2)
            truth = {"X_test": X_test, "y_test": y_test,
                     "min_accuracy": torch.tensor(NOTEBOOK_RUN_BAR, dtype=torch.float64)}
        args = dict(zip(("X", "y", *_PARAMETERS), moons_network(seed + 2 * index, n, hidden),
                        strict=True))
        cases.append(Case(_hidden(kind, f"{_network_label(n, hidden)}, learning rate {rate}, "
                                        f"{epochs} epochs"),
                          {**args, "learning_rate": rate, "epochs": epochs}, truth))
    return cases


def _train_mlp_cases(kind, seed):
    return _training_cases(_VISIBLE_MLP_RUNS if kind == "visible" else _HIDDEN_MLP_RUNS,
                           kind, seed)


def _torch_module_cases(kind, seed):
    if kind == "visible":
        return _training_cases(_VISIBLE_MODULE_RUNS, kind, seed, learns_from=100)
    return _training_cases(_HIDDEN_MODULE_RUNS, kind, seed)


ASSIGNMENT = graded(spec.ASSIGNMENT, {
    "operations": Grading(_operations_cases, reference_operations),
    "local_gradients": Grading(_local_gradients_cases, reference_local_gradients,
                               _LOCAL_MISTAKES),
    "backward": Grading(_backward_cases, reference_gradients, _BACKWARD_MISTAKES),
    "mlp_gradients": Grading(_mlp_gradients_cases, reference_mlp_gradients),
    "train_mlp": Grading(_train_mlp_cases, reference_train_mlp, _MLP_TRAINING_MISTAKES),
    "torch_module": Grading(_torch_module_cases, reference_train_module, _MODULE_MISTAKES),
})

EXAMPLES: dict = {}
