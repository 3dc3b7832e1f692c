"""Python-level loops in a function's source, and in the helpers it calls.

A vectorized function runs no Python per entry of a tensor. This counts what betrays such
work in the source: `for` and `while` loops, comprehensions, and calls that run Python once
per entry (`map`, `apply_`, `.tolist()`, `.item()`, `numpy.vectorize`), in the function and
in every function of the same code that it calls by name, however deep.

`loops_in_notebook` reads the notebook's code cells on the trusted side (the engine's
verdict); `loops_of` reads a live function's source (the notebook's own check). The timing
of a timed part catches what no source shows (code built with exec, say).
"""

import ast
import inspect
import json
import textwrap

from .syntax import parse, parse_cell

UNREADABLE = -1  # what the grader records when the source does not show the function
CODE_BYTES_READ = 1 << 20  # more code than this in the cells: the source is not read
HIDING = frozenset({"exec", "eval", "compile", "globals", "vars", "setattr"})
LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
         ast.GeneratorExp)
PER_ENTRY_CALLS = frozenset({"map", "filter", "apply_", "map_", "map2_", "tolist", "item",
                             "vectorize"})


def loops_in_notebook(notebook: bytes, function: str, code_cells) -> int | None:
    """The loops of `function` and its helpers as the notebook's code cells define them;
    None when the source does not show what the name is bound to (see `resolved_definitions`)."""
    found = resolved_definitions(notebook, function, code_cells)
    try:
        return None if found is None else _count(*found)
    except RecursionError:
        return None


def resolved_definitions(notebook: bytes, function: str, code_cells
              ) -> tuple[str, dict[str, ast.AST]] | None:
    """The `def` that `function` is bound to once the cells have run, and every top-level
    `def` of the cells; None when the source does not show what the name is bound to.

    The last top-level binding of a name wins, as when the cells run in order: a `def`, or
    `name = other_name` (followed); any other binding (a lambda, a call, a `def` inside a
    block) hides the function, and so does a `global` statement that names it or a name it
    calls (a function may rebind it whenever it runs), or code that binds names out of the
    source's sight (exec, eval, compile, globals, vars, setattr) anywhere; and more than
    CODE_BYTES_READ of code is not read at all.
    code_cells: notebook dict -> the sources of the cells that run (see engine.child).
    """
    definitions: dict[str, ast.AST] = {}
    bound: dict[str, str | None] = {}  # name -> the def it is bound to, None if unknown
    try:
        cells = code_cells(json.loads(notebook))
    except (ValueError, RecursionError):
        return None
    if sum(len(source) for source in cells) > CODE_BYTES_READ:
        return None
    declared_global: set[str] = set()
    for source in cells:
        try:
            tree = parse_cell(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in HIDING:
                return None
            if isinstance(node, ast.Global):
                declared_global.update(node.names)
        for statement in tree.body:
            _bind(statement, definitions, bound)
    bound.update(dict.fromkeys(declared_global))
    name, seen = function, set()
    while name in bound and bound[name] != name and name not in seen:
        seen.add(name)
        name = bound[name]
    if name is None or name not in definitions or bound.get(name) != name:
        return None
    helpers = _helpers(name, definitions)
    if declared_global & helpers.union(*(_called_names(definitions[h]) for h in helpers)):
        return None  # a name the function calls may be rebound when some function runs
    return name, definitions


def _bind(statement: ast.stmt, definitions: dict[str, ast.AST],
          bound: dict[str, str | None]) -> None:
    """Record what a top-level statement binds names to."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        definitions[statement.name] = statement
        bound[statement.name] = statement.name
        return
    for node in ast.walk(statement):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound[node.name] = None  # defined inside a block: not read
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr,
                                                ast.For)) else []
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    value = getattr(node, "value", None)
                    bound[name.id] = value.id if isinstance(node, ast.Assign) and \
                        isinstance(value, ast.Name) and len(node.targets) == 1 else None
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
            for alias in getattr(node, "names", []):
                bound[(alias.asname or alias.name).split(".")[0]] = None
            if isinstance(node, ast.ClassDef):
                bound[node.name] = None


def loops_of(function) -> int | None:
    """The loops of a live function and of the helpers its globals name; None when its
    source cannot be read."""
    definitions: dict[str, ast.AST] = {}
    pending = [function]
    while pending:
        current = pending.pop()
        try:
            tree = parse(textwrap.dedent(inspect.getsource(current)))
        except (OSError, TypeError, SyntaxError):
            if current is function:
                return None
            continue
        found = _definitions(tree)
        definitions.update(found)
        for node in found.values():
            for name in _called_names(node):
                helper = getattr(current, "__globals__", {}).get(name)
                if inspect.isfunction(helper) and name not in definitions:
                    pending.append(helper)
    return _count(function.__name__, definitions)


def _definitions(tree: ast.AST) -> dict[str, ast.AST]:
    return {node.name: node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _called_names(node: ast.AST) -> set[str]:
    return {call.func.id for call in ast.walk(node)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)}


def _helpers(function: str, definitions: dict[str, ast.AST]) -> set[str]:
    """function and every function of the source it calls by name, however deep."""
    seen, pending = set(), [function]
    while pending:
        name = pending.pop()
        if name not in seen and name in definitions:
            seen.add(name)
            pending += _called_names(definitions[name])
    return seen


def _count(function: str, definitions: dict[str, ast.AST]) -> int:
    return sum(isinstance(inner, LOOPS) or _calls_per_entry(inner)
               for name in _helpers(function, definitions)
               for inner in ast.walk(definitions[name]))


def _calls_per_entry(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    called = node.func
    name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", None)
    return name in PER_ENTRY_CALLS
