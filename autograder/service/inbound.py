"""The exchange's inbound/ folder, read as hostile input.

Everything in inbound/ was written by students: the folder's name (`student+assignment+
time+random`, as `nbgrader submit` names it), its files, its timestamp.txt. So:

* **who** submitted comes from the folder's owner (a uid the student cannot choose), never
  from its name: the name must agree with the owner's account, and a folder named after
  someone else is refused and counted against the account that wrote it (`--identity
  owner`, the default, for courses whose students are unix accounts). `--identity
  folder-name` trusts the name; it is for a course simulated by one unix user (the demo,
  the bench), where every folder has the same owner.
* **when** comes from the folder's ctime (which no user can set or move back; a change of
  the folder changes it), never from the name or timestamp.txt (the student's claim, kept
  beside it); the copy then takes the latest ctime of everything it copied (see collect).
* **names** follow one rule (`student_ids`), the assignment must be one this course grades
  (in its gradebook, and one the kit knows), and the student must be on the course's roster
  (the gradebook's students) before anything is made for them.
"""

import os
import pwd
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..student_ids import is_student_id, shown, student_id_problem

SECRET = "submission_secret.txt"
TIMESTAMP = "timestamp.txt"
COMPLETE_MODE = 0o777  # nbgrader submit's last step: the inbound folder made rwx for all
IDENTITIES = ("owner", "folder-name")


@dataclass(frozen=True)
class Inbound:
    """One submission folder in inbound/, as first seen."""

    name: str  # the folder's name, as the student wrote it
    path: Path
    student: str  # the student it names
    assignment: str
    account: str  # who wrote it: the owner's account (or the name, with folder-name identity)
    uid: int
    seen_time: float  # the folder's ctime when first seen (UTC seconds): the trusted time
    claimed: str  # the time in the folder's name: the student's claim

    @property
    def key(self) -> tuple[str, str]:
        return self.student, self.assignment

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.seen_time, UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Refusal:
    """A folder the service will not grade, and why (logged; nothing is released for it,
    since its name may be someone else's)."""

    name: str
    account: str
    reason: str  # a word: impersonation, bad-name, unknown-assignment, not-on-roster
    why: str
    seen_time: float  # the folder's ctime (UTC seconds)


def account_of(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def examine(entry: os.DirEntry, info: os.stat_result, identity: str, book: "GradebookLists"
            ) -> Inbound | Refusal | None:
    """What a folder in inbound/ (its lstat in info) is: a submission, a refusal, or None
    while it is not complete."""
    owner = account_of(info.st_uid) or f"uid {info.st_uid}"

    def refused(account: str, reason: str, why: str) -> Refusal:
        return Refusal(entry.name, account, reason, why, info.st_ctime)

    if not stat.S_ISDIR(info.st_mode):
        return refused(owner, "not-a-folder",
                       f"{_kind(info.st_mode)} where a submission folder should be")
    if not is_complete(entry.path, info):
        return None
    parts = entry.name.rsplit("+", 3)
    if len(parts) != 4:
        return refused(owner, "bad-name", "the folder's name is not nbgrader's "
                       "student+assignment+time+random")
    student, assignment, claimed = parts[0], parts[1], parts[2]
    account = student if identity == "folder-name" else owner
    problem = student_id_problem(student)
    if problem:
        return refused(account, "bad-name",
                       f"the student id {shown(student)!r} is refused: {problem}")
    if identity == "owner" and owner != student:
        return refused(account, "impersonation",
                       f"the folder names student {student} but account {owner} wrote it")
    if not book.has_assignment(assignment):
        return refused(account, "unknown-assignment",
                       f"{shown(assignment)!r} is not an assignment this course grades")
    if not book.has_student(student):
        return refused(account, "not-on-roster",
                       f"{student} is not a student of this course (its gradebook)")
    return Inbound(entry.name, Path(entry.path), student, assignment, account, info.st_uid,
                   info.st_ctime, claimed)


def is_complete(folder: str, info: os.stat_result) -> bool:
    """Whether nbgrader submit has finished this folder: it writes the secret (a regular,
    non-empty file), then makes the folder rwx for all."""
    if not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o777 != COMPLETE_MODE:
        return False
    try:
        secret = os.stat(os.path.join(folder, SECRET), follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(secret.st_mode) and secret.st_size > 0


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a link"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "an odd entry"


class GradebookLists:
    """The course's students and the assignments it grades (those of its gradebook that the
    kit knows), as its gradebook lists them; read again at most every REFRESH_SECONDS, when
    a name is not on a list (a flood of made-up names costs one query)."""

    REFRESH_SECONDS = 10.0

    def __init__(self, db_url: str, course_id: str, gradable: frozenset[str]):
        self.db_url, self.course_id, self.gradable = db_url, course_id, gradable
        self.students: set[str] = set()
        self.assignments: set[str] = set()
        self.read_at = float("-inf")

    def has_student(self, student: str) -> bool:
        if student not in self.students and is_student_id(student):
            self._refresh_if_due()
        return student in self.students

    def has_assignment(self, assignment: str) -> bool:
        if assignment not in self.assignments and assignment in self.gradable:
            self._refresh_if_due()
        return assignment in self.assignments

    def _refresh_if_due(self) -> None:
        if time.monotonic() - self.read_at > self.REFRESH_SECONDS:
            self.refresh()

    def refresh(self) -> None:
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url, self.course_id) as book:
            self.students = {student.id for student in book.students}
            self.assignments = {assignment.name for assignment in book.assignments} \
                & self.gradable
        self.read_at = time.monotonic()
