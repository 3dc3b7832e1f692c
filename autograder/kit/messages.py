"""How a verdict shows in a notebook: wrapped to fit the page and `nbgrader validate`.

Used by the checks' WrongAnswer (notebook.py), by the feedback's preprocessor (feedback.py)
and by the sandboxed autograde (engine/nbgrader_grading.py); it imports nothing heavy, so
that none pulls in another's imports (torch for the checks, nbconvert for the feedback:
3.7 s in every kernel)."""

import textwrap

# `nbgrader validate` prints each line of a failing cell's output behind a 4-space indent
# and cuts it at 87 characters; a <pre> in the feedback and the formgrader fits 80 too.
LINE_WIDTH = 80


def wrap(text: str) -> list[str]:
    """The text in lines of at most LINE_WIDTH characters, words kept whole."""
    return textwrap.wrap(text, LINE_WIDTH, break_on_hyphens=False) or [""]


def error_lines(name: str, message: str) -> list[str]:
    """An error as a traceback of its name and message only, the name in red."""
    lines = wrap(f"{name}: {message}")
    lines[0] = lines[0].replace(name, f"\x1b[0;31m{name}\x1b[0m", 1)  # as IPython shows it
    return lines
