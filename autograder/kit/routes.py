"""Route rules: what a part teaches by hand, and how a solution is checked to take that route.

A `Route` says what the part teaches (`teaches`, shown to the student) as the operations its
guarded outputs may be computed with (`allowed`: the elementary ones of the route taught),
and what the function may not call at all (`anywhere`: autograd, for a part about reading a
gradient off the graph). Any other torch function on an output's path is a built-in doing
the work (`logsigmoid(z).exp()` for a sigmoid, `softmin(-x)` for a softmax, `exp(log a +
log1p(-a))` for a local gradient), whatever its name: the rule lists what the route is made
of, not the built-ins that skip it. It is checked twice:

* where the function runs (`follow`, a Part.call): a TorchFunctionMode follows every torch
  call and marks each tensor computed by an operation outside `allowed`, or from a marked
  one; an output that is marked fails. Aliases, getattr strings and helpers are seen as
  what they call. (In the sandbox this is the student's process: the verdict does not rest
  on it.)
* on the trusted side, in the notebook's source (`route_in_source`): the statements that
  compute each guarded output (followed back through the names they read, what mutates
  them in place, and the helpers they call) may call only `allowed` operations, resolved
  through imports, aliases and getattr with a constant name; a call the source does not
  name (a value passed in, getattr of a computed name) fails too.
"""

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from .parts import StudentError
from .python_loops import resolved_definitions
from .syntax import parse_cell

# Arithmetic, comparisons, exp and log, reductions, shapes and copies: what a formula written
# by hand is made of (in the names `operation` gives).
ELEMENTARY = frozenset({
    "add", "sub", "mul", "div", "neg", "pos", "pow", "reciprocal", "exp", "expm1", "log",
    "log1p", "sqrt", "abs", "clamp", "where", "maximum", "minimum", "max", "min", "amax",
    "amin", "sum", "mean", "gt", "lt", "ge", "le", "eq", "ne", "sign", "reshape", "view",
    "unsqueeze", "squeeze", "transpose", "t", "expand", "expand_as", "broadcast_to",
    "contiguous", "clone", "detach", "to", "double", "float", "type", "ones_like",
    "zeros_like", "full_like", "new_ones", "new_zeros", "new_full", "new_tensor", "tensor",
    "as_tensor", "ones", "zeros", "full", "empty", "empty_like", "copy", "fill", "stack",
    "cat", "getitem", "get", "size", "dim", "numel",
    "requires_grad", "len", "int", "range", "isinstance", "tuple", "list", "zip", "enumerate"})
_ALIASES = {"truediv": "div", "true_divide": "div", "divide": "div", "multiply": "mul",
            "subtract": "sub", "negative": "neg", "clip": "clamp", "power": "pow",
            "greater": "gt", "less": "lt", "greater_equal": "ge", "less_equal": "le",
            "not_equal": "ne", "positive": "pos", "rsub": "sub"}
_IN_PLACE_DUNDERS = frozenset({"__setitem__", "__iadd__", "__isub__", "__imul__",
                               "__itruediv__", "__ipow__", "__imatmul__"})
_OPERATORS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div",
              ast.Pow: "pow", ast.MatMult: "matmul", ast.FloorDiv: "floor_divide",
              ast.Mod: "remainder", ast.USub: "neg", ast.UAdd: "pos", ast.Gt: "gt",
              ast.Lt: "lt", ast.GtE: "ge", ast.LtE: "le", ast.Eq: "eq", ast.NotEq: "ne"}


def operation(name: str) -> str:
    """A torch function's or method's name as an operation: `__rtruediv__`, `true_divide`
    and `div_` are all "div"."""
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name[:1] in ("r", "i") and name[1:] in ("add", "sub", "mul", "div", "truediv",
                                                   "floordiv", "mod", "pow", "matmul"):
            name = name[1:]
    name = name.rstrip("_").lstrip("_")
    return _ALIASES.get(name, name)


@dataclass(frozen=True)
class Route:
    """What a part teaches by hand (see the module's docstring)."""

    teaches: str  # said to the student when a solution skips the route
    allowed: frozenset[str] = ELEMENTARY  # operations an output's path may hold
    outputs: frozenset[str] | None = None  # the outputs it is about; None: all of them
    anywhere: frozenset[str] = frozenset()  # operations the function may not use at all

    def refuses(self, name: str) -> bool:
        return operation(name) in self.anywhere


class _Provenance(TorchFunctionMode):
    """Marks each tensor a torch call computes with the first operation outside the route on
    its path (its own, or one of its inputs'), and notes any `anywhere` operation."""

    def __init__(self, route: Route):
        super().__init__()
        self.route, self.marks, self.kept, self.forbidden = route, {}, [], None

    def mark_of(self, tensor: torch.Tensor) -> str | None:
        return self.marks.get(id(tensor))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = operation(getattr(func, "__name__", "") or "call")
        if name in self.route.anywhere and self.forbidden is None:
            self.forbidden = name
        result = func(*args, **kwargs)
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        mark = name if name not in self.route.allowed else next(
            (m for m in map(self.mark_of, inputs) if m), None)
        outputs = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
        raw = getattr(func, "__name__", "")
        if raw in _IN_PLACE_DUNDERS or raw.endswith("_") and not raw.startswith("__"):
            outputs += inputs[:1]  # the tensor it changed
        for tensor in outputs:
            if mark or id(tensor) not in self.marks:
                self.marks[id(tensor)] = mark
            self.kept.append(tensor)  # alive until the call ends: ids are not reused
        return result


def _named(result, returns) -> dict[str, Any]:
    """The values a function returned, by output name (as `parts.unpack` names them)."""
    if isinstance(returns, str):
        return {returns: result}
    if not isinstance(result, (tuple, list)) or len(result) != len(returns):
        return {}  # unpack says what is wrong with it
    named = {}
    for item, spec in zip(result, returns, strict=True):
        named.update(_named(item, spec))
    return named


def follow(route: Route, returns) -> Callable[..., Any]:
    """A `Part.call` that calls the function and fails it ("route_not_taught", with the
    route's `teaches`) when a guarded output's path leaves the route, or the function used
    an `anywhere` operation. The check runs after the call, so that a try/except in the
    student's code cannot hide it."""
    def call(function, *args):
        mode = _Provenance(route)
        with mode:
            result = function(*args)
        name = getattr(function, "__name__", "it")
        if mode.forbidden:
            raise StudentError(f"{name} used {mode.forbidden}: {route.teaches}",
                               "route_not_taught")
        for output, value in _named(result, returns).items():
            tensor = value if isinstance(value, torch.Tensor) else None
            if (route.outputs is None or output in route.outputs) and tensor is not None \
                    and mode.mark_of(tensor):
                raise StudentError(f"{name} computes {output} with {mode.mark_of(tensor)}: "
                                   f"{route.teaches}", "route_not_taught")
        return result
    call.route = route  # the trusted side reads the source for it too (route_in_source)
    return call


# ---- the trusted side: the route in the notebook's source -----------------------------------

def route_in_source(notebook: bytes, function: str, code_cells, route: Route,
                    returns) -> str | None:
    """Why the notebook's `function` leaves the route, in words, or None when its source
    keeps to it. returns: the part's return spec, to find each guarded output's expression."""
    found = resolved_definitions(notebook, function, code_cells)
    if found is None:
        return (f"the grader cannot read {function} in the notebook's source: define it with "
                f"`def` at the top of a cell, and do not rebind its name or build code with "
                f"exec.")
    name, definitions = found
    aliases = _aliases(notebook, code_cells)
    checker = _SourceRoute(route, definitions, aliases)
    for used in checker.used_anywhere(name):
        return f"{function} uses {used}: {route.teaches}"
    for output, expression in _guarded(definitions[name], returns, route.outputs):
        off_route = checker.off_route(definitions[name], expression)
        if off_route:
            return f"{function} computes {output} with {off_route}: {route.teaches}"
    return None


def _aliases(notebook: bytes, code_cells) -> dict[str, str]:
    """Names the cells bind to a module's function: `from torch import exp as e` and
    `e = torch.exp` make e the operation "exp"; `import torch.nn.functional as F` binds
    nothing callable (its attributes are named where they are used)."""
    aliases: dict[str, str] = {}
    for source in code_cells(json.loads(notebook)):
        try:
            tree = parse_cell(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    aliases[alias.asname or alias.name] = operation(alias.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        aliases[target.id] = operation(node.value.attr)
    return aliases


def _guarded(definition: ast.AST, returns, outputs) -> list[tuple[str, ast.AST]]:
    """(output name, the expression that returns it) for each guarded output: a returned
    tuple's element where the return spec is flat, else the whole returned value."""
    flat = isinstance(returns, tuple) and all(isinstance(item, str) for item in returns)
    found = []
    for node in ast.walk(definition):
        if not isinstance(node, ast.Return) or node.value is None:
            continue
        if flat and isinstance(node.value, ast.Tuple) and len(node.value.elts) == len(returns):
            found += [(output, element) for output, element in zip(returns, node.value.elts,
                                                                  strict=True)
                      if outputs is None or output in outputs]
        else:
            found.append((", ".join(sorted(outputs)) if outputs else "its result",
                          node.value))
    return found


class _SourceRoute:
    """The route rule read in a function's source (see `route_in_source`)."""

    def __init__(self, route: Route, definitions: dict[str, ast.AST], aliases: dict[str, str]):
        self.route, self.definitions, self.aliases = route, definitions, aliases

    def used_anywhere(self, function: str) -> list[str]:
        """The `anywhere` operations that function or its helpers call or read."""
        used = []
        for node in self._helper_nodes(function):
            name = self._called(node) if isinstance(node, ast.Call) else \
                node.attr if isinstance(node, ast.Attribute) else None
            if name and operation(name) in self.route.anywhere:
                used.append(operation(name))
        return used

    def off_route(self, definition: ast.AST, expression: ast.AST) -> str | None:
        """The first operation outside the route in what computes expression (its helpers
        included), or None."""
        nodes = [inner for node in self._slice(definition, expression)
                 for inner in ast.walk(node)]
        # In the order the source calls them (a set's order would change the message from
        # one run to the next).
        for helper in dict.fromkeys(n.func.id for n in nodes if isinstance(n, ast.Call)
                                    and isinstance(n.func, ast.Name)
                                    and n.func.id in self.definitions):
            nodes += self._helper_nodes(helper)
        return next(filter(None, map(self._off, nodes)), None)

    def _off(self, node: ast.AST) -> str | None:
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.AugAssign)):
            name = _OPERATORS.get(type(node.op), type(node.op).__name__.lower())
            return None if name in self.route.allowed else name
        if isinstance(node, ast.Compare):
            names = [_OPERATORS.get(type(op), type(op).__name__.lower()) for op in node.ops]
            return next((n for n in names if n not in self.route.allowed), None)
        if isinstance(node, ast.Subscript):
            return None if "getitem" in self.route.allowed else "getitem"
        if not isinstance(node, ast.Call):
            return None
        if isinstance(node.func, ast.Name) and node.func.id in self.definitions:
            return None  # a helper: its own nodes are checked
        called = self._called(node)
        if called is None:
            return "a call the source does not name"
        return None if operation(called) in self.route.allowed else operation(called)

    def _called(self, call: ast.Call) -> str | None:
        """What a call calls, by name: a method or module function's attribute, an alias,
        getattr's constant name; None when the source does not say."""
        func = call.func
        if isinstance(func, ast.Attribute):
            return func.attr
        if not isinstance(func, ast.Name):
            return None
        if func.id == "getattr":
            named = call.args[1] if len(call.args) > 1 else None
            return named.value if isinstance(named, ast.Constant) and \
                isinstance(named.value, str) else None
        return self.aliases.get(func.id, func.id if func.id in ELEMENTARY else None)

    def _helper_nodes(self, function: str) -> list[ast.AST]:
        seen, pending, nodes = set(), [function], []
        while pending:
            name = pending.pop()
            if name in seen or name not in self.definitions:
                continue
            seen.add(name)
            for node in ast.walk(self.definitions[name]):
                nodes.append(node)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    pending.append(node.func.id)
        return nodes

    def _slice(self, definition: ast.AST, expression: ast.AST) -> list[ast.AST]:
        """expression, and every statement part of the function that computes a name it
        reads (followed back, flow-insensitive), or changes one in place."""
        writers = list(_writers(definition))
        wanted, included = _reads(expression), [expression]
        aliases: set[str] = set()
        changed = True
        while changed:
            changed = False
            for targets, value, in_place in writers:
                if value in included:
                    continue
                touched = targets & (wanted | aliases) if in_place else targets & wanted
                if touched:
                    included.append(value)
                    wanted |= _reads(value)
                    changed = True
                elif not in_place and _reads(value) & wanted and targets - aliases:
                    aliases |= targets  # may be a view of a wanted tensor
                    changed = True
        return included


def _reads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _writers(definition: ast.AST):
    """(names written, the node that computes them, whether it changes them in place) for
    each statement part of a function that writes names."""
    for node in ast.walk(definition):
        if isinstance(node, ast.Assign):
            plain = {n.id for t in node.targets for n in ast.walk(t)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            rooted = {_root(t) for t in node.targets
                      if isinstance(t, (ast.Subscript, ast.Attribute))} - {None}
            if plain:
                yield plain, node.value, False
            if rooted:
                yield rooted, node, True
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            yield {_root(node.target)} - {None}, node, isinstance(node, ast.AugAssign)
        elif isinstance(node, ast.NamedExpr):
            yield {node.target.id}, node.value, False
        elif isinstance(node, (ast.For, ast.comprehension)):
            yield _reads(node.target), node.iter, False
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            yield _reads(node.optional_vars), node.context_expr, False
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr.endswith("_"):
                yield {_root(node.func.value)} - {None}, node, True
            for keyword in node.keywords:
                if keyword.arg == "out":
                    yield _reads(keyword.value), node, True
