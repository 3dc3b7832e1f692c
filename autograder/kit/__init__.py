"""backprop-lab's student kit: the only code a student's kernel gets.

It runs the notebooks' visible checks and explains what is wrong. It holds no reference
implementation, no hidden case and no seed of one: what the visible checks expect ships as
data with the release (`visible_checks.safetensors`, next to the notebook), computed once by
the grader. The grader (the rest of `autograder`) uses the same code to judge, with
expectations it computes itself. Install it alone with `pip install ./autograder/kit`.

    notebook.py     `checker` and `example`, what the notebooks' cells call
    visible.py      the release's data file: visible cases, expected outputs, examples
    parts.py        what a gradable part is: how the function is called, what it returns
    assignments/    each assignment's parts, and the calls that report what code did
    grading.py      call a student's function; judge its outputs against expectations
    compare.py      student tensor vs expected tensor -> a finding in plain words
    diagnosis.py    the mistakes the grader names, and how it recognises them
    manual_backprop.py  autograd unavailable while a manual-backprop part runs
    python_loops.py the Python loops in a function's source
    figures.py      SVG figures: loss curves, error maps, bars
    messages.py     an error as its message alone, wrapped to the page
    tolerances.py   every numerical tolerance, with the reason for it
"""

__all__ = ["checker", "example"]


def __getattr__(name: str):
    """`checker` and `example`, imported on first use: the kit's modules that need no torch
    (messages, for nbgrader's feedback pages) load without it."""
    if name in __all__:
        from . import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
