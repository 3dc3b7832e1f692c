"""An nbgrader course as its own configuration describes it, and the lock of a grading run.

`load_course` reads the course's settings the way nbgrader does: `nbgrader_config.py` (and
`.json`) from Jupyter's config path (~/.jupyter, /etc/jupyter...), then from the course
root, into nbgrader's own `CourseDirectory`: the gradebook's `db_url` (SQLite in the root by
default, as nbgrader computes it), `course_id`, the step folders and `directory_structure`.
A setting the engine cannot use stops it before it grades anything, with a one-line
`CourseError` that names the setting.
"""

import contextlib
import fcntl
import glob
import json
import os
import re
import socket
import string
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "nbgrader_config"
LOCK_NAME = ".backprop-grading.lock"  # in .gitignore
STRUCTURE_KEYS = {"nbgrader_step", "student_id", "assignment_id"}


class CourseError(Exception):
    """A course the engine cannot grade; the message says what is wrong, in one line."""


class CourseBusy(CourseError):
    """Another grading run holds the course's lock."""


@dataclass(frozen=True)
class CourseConfig:
    """The settings of an nbgrader course that the engine grades by."""

    root: Path
    course_id: str
    db_url: str
    submitted_directory: str
    autograded_directory: str
    feedback_directory: str
    directory_structure: str
    config: object  # the traitlets Config, for nbgrader's plugins (late penalties)

    def path(self, step: str, student: str, assignment: str) -> Path:
        """A student's folder of an assignment in a step (submitted, autograded...)."""
        return self.root / self.directory_structure.format(
            nbgrader_step=step, student_id=student, assignment_id=assignment)

    def students(self, assignment: str) -> list[str]:
        """The students with a submission of assignment, found as nbgrader finds them (a
        file or a link where a folder should be is found too: it is refused with a note)."""
        pattern = os.path.join(glob.escape(str(self.root)), self.directory_structure.format(
            nbgrader_step=glob.escape(self.submitted_directory), student_id="*",
            assignment_id=glob.escape(assignment)))
        first, *rest = re.escape(str(self.path(self.submitted_directory, "\0", assignment))
                                 ).split("\0")
        regex = re.compile(first + "".join(f"(?P<id>[^/]+){tail}" if i == 0 else
                                           f"(?P=id){tail}" for i, tail in enumerate(rest)))
        found = (regex.fullmatch(path) for path in glob.glob(pattern))
        return sorted({match["id"] for match in found if match})

    def late_penalty(self):
        """The late-submission plugin `nbgrader autograde` would use (AssignLatePenalties'
        configured `plugin_class`), and the check it makes of the penalty."""
        from nbgrader.preprocessors import AssignLatePenalties

        assigner = AssignLatePenalties(config=self.config)
        assigner.init_plugin()
        return assigner


def skip_iri_grammar() -> None:
    """Importing nbgrader imports jsonschema, whose optional IRI format checker compiles a
    grammar when imported (1.2 s here, half the import). No gradebook or configuration
    value is an IRI: call this before importing nbgrader."""
    sys.modules.setdefault("rfc3987_syntax", None)


def load_course(root: Path, gradebook: bool = True) -> CourseConfig:
    """The course at root, as its nbgrader configuration describes it; CourseError if the
    engine cannot grade it (no such folder, not a course, a setting it cannot use)."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise CourseError(f"{root} is not a directory: give --course the root of an nbgrader "
                          f"course (the folder with nbgrader_config.py).")
    config, own = _read_config(root)
    skip_iri_grammar()
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(config=config)
    configured = own.CourseDirectory.get("root") if "CourseDirectory" in own else None
    if configured and Path(configured).absolute().resolve() != root.resolve():
        raise CourseError(f"{root / 'nbgrader_config.py'} sets CourseDirectory.root = "
                          f"{configured!r}, another folder: grade that course, or fix the "
                          f"setting.")
    coursedir.root = str(root)
    course = CourseConfig(
        root=root, course_id=coursedir.course_id, db_url=coursedir.db_url,
        submitted_directory=coursedir.submitted_directory,
        autograded_directory=coursedir.autograded_directory,
        feedback_directory=coursedir.feedback_directory,
        directory_structure=coursedir.directory_structure, config=config)
    _check_structure(course)
    for setting in ("submitted_directory", "autograded_directory", "feedback_directory"):
        value = getattr(course, setting)
        if not value or "/" in value or value in (".", ".."):
            raise CourseError(f"CourseDirectory.{setting} = {value!r} cannot be used: it must "
                              f"be the name of a folder in the course root.")
    has_config = any((root / f"{CONFIG_NAME}{ext}").is_file() for ext in (".py", ".json"))
    if not (has_config or (root / course.submitted_directory).is_dir()):
        raise CourseError(f"{root} is not an nbgrader course: it has no nbgrader_config.py "
                          f"and no {course.submitted_directory}/ folder.")
    if gradebook:
        _check_db_url(course.db_url)
    return course


def _read_config(root: Path):
    """The configuration: Jupyter's config path (lowest priority first), then the course
    root's files, which also come back on their own."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config

    merged, own = Config(), Config()
    for folder in [*reversed(jupyter_config_path()), str(root)]:
        for path in (Path(folder) / f"{CONFIG_NAME}.py", Path(folder) / f"{CONFIG_NAME}.json"):
            if path.is_file():
                loaded = _read_config_file(path)
                merged.merge(loaded)
                if Path(folder) == root:
                    own.merge(loaded)
    return merged, own


def _read_config_file(path: Path):
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    loader = PyFileConfigLoader if path.suffix == ".py" else JSONFileConfigLoader
    # nbgrader puts the working directory first on sys.path, for modules a config imports.
    sys.path.insert(0, str(path.parent))
    try:
        return loader(path.name, path=str(path.parent)).load_config()
    except Exception as error:  # the instructor's code: any error is a configuration error
        raise CourseError(f"{path} cannot be loaded: {type(error).__name__}: "
                          f"{' '.join(str(error).split())}") from None
    finally:
        sys.path.remove(str(path.parent))


def _check_structure(course: CourseConfig) -> None:
    structure = course.directory_structure
    try:
        keys = {name for _, name, _, _ in string.Formatter().parse(structure) if name}
    except ValueError as error:
        keys = {f"({error})"}
    if keys != STRUCTURE_KEYS or os.path.isabs(structure):
        raise CourseError(f"CourseDirectory.directory_structure = {structure!r} cannot be "
                          f"used: it must be a relative path with exactly the keys "
                          f"{{nbgrader_step}}, {{student_id}} and {{assignment_id}}.")


def _check_db_url(db_url: str) -> None:
    """The gradebook's URL parses, its driver is installed, and a SQLite file exists."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(db_url)
    except ArgumentError:
        raise CourseError(f"CourseDirectory.db_url = {db_url!r} is not a database URL "
                          f"(a SQLAlchemy URL such as postgresql://host/gradebook).") from None
    shown = url.render_as_string(hide_password=True)
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as error:
        raise CourseError(f"CourseDirectory.db_url = {shown!r} needs a database driver that "
                          f"is not installed here ({error}): install it in this environment "
                          f"(for PostgreSQL: pip install psycopg2-binary).") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).is_file():
        raise CourseError(f"no gradebook at {url.database} (CourseDirectory.db_url): create "
                          f"it with nbgrader generate_assignment, or give --no-gradebook.")


@contextlib.contextmanager
def course_lock(root: Path, wait: bool = False,
                on_wait=lambda holder: None) -> Iterator[Path]:
    """Hold the course's lock file (beside its gradebook) for one grading run.

    Another run holding it raises CourseBusy naming that run (host, pid, start), unless
    wait: then on_wait(holder) is called once and the lock is waited for."""
    path = Path(root) / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            if not wait:
                raise CourseBusy(f"another grading run holds {path}: {holder}; wait for it "
                                 f"to end, or run again with --wait.") from None
            on_wait(holder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}).encode() + b"\n", 0)
        yield path
    finally:
        os.close(handle)  # releases the lock; the file stays, for the next run to lock


def _holder(handle: int) -> str:
    """The run that holds the lock, as it wrote itself into the file."""
    for _ in range(20):  # the holder may be writing it just now
        try:
            holder = json.loads(os.pread(handle, 4096, 0))
            return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "a run that did not say which"
