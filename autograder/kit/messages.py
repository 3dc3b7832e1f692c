"""How a verdict shows in a notebook: wrapped to fit the page and `nbgrader validate`.

Used by the checks' WrongAnswer (notebook.py), by the feedback's preprocessor (feedback.py)
and by the sandboxed autograde (engine/nbgrader_grading.py); it imports nothing heavy, so
that none pulls in another's imports (torch for the checks, nbconvert for the feedback:
3.7 s in every kernel)."""

import re
import textwrap

# `nbgrader validate` prints each line of a failing cell's output behind a 4-space indent
# and cuts it at 87 characters; a <pre> in the feedback and the formgrader fits 80 too.
LINE_WIDTH = 80


# What no text from a student's code may carry to a page, a file or a terminal: control
# characters (ESC of ANSI escapes, the carriage return that overwrites a line, C1 codes),
# Unicode's invisible and direction-changing marks, and lone surrogates (not UTF-8 at all).
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u2069\ufeff\ud800-\udfff]")


def plain_text(text: str, newlines: bool = True) -> str:
    """text as valid UTF-8 that shows as what it is: each unsafe character (see _UNSAFE)
    written as its escape (ESC as \\x1b), newlines kept unless newlines is False."""
    text = _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text if newlines else text.replace("\n", "\\n")


def wrap(text: str) -> list[str]:
    """The text in lines of at most LINE_WIDTH characters, words kept whole."""
    return textwrap.wrap(text, LINE_WIDTH, break_on_hyphens=False) or [""]


def error_lines(name: str, message: str) -> list[str]:
    """An error as a traceback of its name and message only, the name in red."""
    lines = wrap(f"{name}: {message}")
    lines[0] = lines[0].replace(name, f"\x1b[0;31m{name}\x1b[0m", 1)  # as IPython shows it
    return lines
