"""One rule for student ids, applied before any folder, command, page or file uses one.

A student id names folders (`submitted/{student}/...`), reaches nbgrader's commands (where
`*` means every student), spreadsheets (where a leading `=` is a formula) and terminals.
So an id is 1 to 64 characters, letters, digits and `_ . @ -` only (a unix account name,
a hub's user name or an e-mail address fits), starting with a letter, a digit or `_`, and
never holding `..`. nbgrader's own separator `+` is not allowed either: an exchange folder
is named `student+assignment+time+random`.
"""

MAX_LENGTH = 64
ALLOWED_PUNCTUATION = "_.@-"


def student_id_problem(name: str) -> str | None:
    """Why name cannot be a student id, in a few words; None if it can."""
    if not name:
        return "it is empty"
    if len(name) > MAX_LENGTH:
        return f"it is longer than {MAX_LENGTH} characters"
    odd = next((ch for ch in name if not (ch.isascii() and ch.isalnum())
                and ch not in ALLOWED_PUNCTUATION), None)
    if odd is not None:
        return f"it holds {ascii(odd)}, and only letters, digits and {ALLOWED_PUNCTUATION} " \
               f"are allowed"
    if not (name[0].isalnum() or name[0] == "_"):
        return f"it starts with {name[0]!r}"
    if ".." in name:
        return "it holds '..'"
    return None


def is_student_id(name: str) -> bool:
    return student_id_problem(name) is None


def shown(name: str) -> str:
    """A name that failed the rule, made safe to print or log: printable ASCII only."""
    return ascii(name[:MAX_LENGTH * 2])[1:-1]
