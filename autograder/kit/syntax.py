"""Source as syntax trees, for the checks that read a notebook's code.

`ast.parse` is not safe in threads on CPython 3.11 (gh-106905: "AST constructor recursion
depth mismatch" when two threads parse at once), and the engine reads notebooks on its
grading threads: every parse takes one lock. A cell's IPython syntax (magics, `!`) becomes
Python once, however many checks read it.
"""

import ast
import functools
import threading

_PARSING = threading.Lock()


def parse(source: str) -> ast.Module:
    """ast.parse, one thread at a time."""
    with _PARSING:
        return ast.parse(source)


def parse_cell(source: str) -> ast.Module:
    """A notebook cell's syntax tree, its IPython syntax turned into Python first."""
    return parse(_as_python(source))


@functools.lru_cache(maxsize=64)  # one notebook's cells, read by each check in turn
def _as_python(source: str) -> str:
    with _PARSING:
        return _transformer().transform_cell(source)


@functools.cache
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()
