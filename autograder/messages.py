"""How an error shows in a notebook: its name and message only, wrapped to fit the page.

Used by the checks' WrongAnswer (notebook.py) and by the feedback's preprocessor
(feedback.py); it imports nothing heavy, so that neither pulls in the other's imports
(torch for the checks, nbconvert for the feedback: 3.7 s in every kernel)."""

import textwrap

LINE_WIDTH = 96  # an error is shown preformatted: lines this long fit the page


def error_lines(name: str, message: str) -> list[str]:
    """An error as a traceback of its name and message only, the name in red."""
    lines = textwrap.wrap(f"{name}: {message}", LINE_WIDTH, break_on_hyphens=False)
    lines[0] = lines[0].replace(name, f"\x1b[0;31m{name}\x1b[0m", 1)  # as IPython shows it
    return lines
