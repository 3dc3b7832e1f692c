"""CSV that a spreadsheet cannot run, for the class report and `nbgrader export`.

A student chooses their id where nbgrader takes it from a folder name, and a cell that
starts with `=`, `+`, `-` or `@` (after any spaces), a tab or a carriage return is a
formula to Excel, LibreOffice and Google Sheets: `=HYPERLINK(...)` becomes a live link in
the instructor's grade sheet. As OWASP's "CSV Injection" advises, such a cell is written
with a leading `'`, which the spreadsheet shows as text. A plain number (a score, a
negative penalty) is left as it is.
"""

import csv
import io
import re

FORMULA = re.compile(r"[\t\r]|\s*[=+\-@]")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def inert(value) -> str:
    """The value as a CSV cell that no spreadsheet reads as a formula."""
    text = "" if value is None else str(value)
    if FORMULA.match(text) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def inert_rows(rows) -> str:
    """The rows as CSV text, every cell inert and quoted where it must be."""
    out = io.StringIO()
    csv.writer(out).writerows([inert(value) for value in row] for row in rows)
    return out.getvalue()
