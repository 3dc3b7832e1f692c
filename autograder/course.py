"""An nbgrader course on one machine: real `nbgrader` commands on a local exchange.

The repository root is itself a course root (source/, assignments/ as the release folder,
solutions/). `Course.scaffold` makes a throw-away course beside it, for the demo and the
tests, that shares the repository's nbgrader_config.py and source notebooks.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COURSE_ID = "backprop-lab"
ALL = "*"  # an assignment id that nbgrader's converters expand to every assignment
# The release's data file (autograder.kit.visible.FILE, named here so that the release
# command imports no torch); nbgrader_config.py names the folders assignments/, solutions/.
VISIBLE_DATA = "visible_checks.safetensors"


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds the end of its log."""


def assignment_names(root: Path = REPO) -> list[str]:
    """The assignments of a course: the folders under its source/."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir())


def nbgrader(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` from this environment (its bin/ goes first on PATH for alembic)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(bin_dir / "nbgrader"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)
    if check and done.returncode != 0:
        log = (done.stdout + done.stderr).strip().splitlines()
        raise NbgraderError(f"nbgrader {' '.join(args)} failed:\n" + "\n".join(log[-25:]))
    return done


def generate_release(root: Path = REPO) -> None:
    """Regenerate the student releases and the answer keys of every assignment from source/.

    nbgrader's generate commands record each assignment in a gradebook: here a throw-away
    one, not the course's (CourseDirectory.db_url, which nbgrader_config_local.py may point
    at a live PostgreSQL), so that regenerating the repository's files changes no course.
    """
    from sqlalchemy.engine import URL

    with tempfile.TemporaryDirectory() as scratch:
        scratch_db = URL.create("sqlite", database=str(Path(scratch) / "gradebook.db"))
        db = f"--CourseDirectory.db_url={scratch_db.render_as_string()}"
        # One command for all assignments (nbgrader globs the id): each pays 3 s of start-up.
        nbgrader("generate_assignment", ALL, "--force", db, cwd=root)
        # The answer keys ship the release's visible data, which the command above computed
        # (nbgrader_config.py's hook): not computed a second time.
        nbgrader("generate_solution", ALL, "--force", db,
                 "--GenerateSolution.post_convert_hook=None", cwd=root)
    for name in assignment_names(root):
        data = root / "assignments" / name / VISIBLE_DATA
        if data.is_file():  # an assignment the grader has no references for has none
            shutil.copyfile(data, root / "solutions" / name / VISIBLE_DATA)


class Course:
    """A course root and its exchange, driven through the nbgrader command line."""

    def __init__(self, root: Path, exchange: Path):
        self.root = root
        self.exchange = exchange

    @classmethod
    def scaffold(cls, workdir: Path, assignments: list[str] | None = None) -> "Course":
        """A fresh course in workdir/course with its exchange in workdir/exchange."""
        root, exchange = workdir / "course", workdir / "exchange"
        if workdir.exists():
            shutil.rmtree(workdir)
        (root / "source").mkdir(parents=True)
        exchange.mkdir(mode=0o777)
        for name in assignments or assignment_names():
            shutil.copytree(REPO / "source" / name, root / "source" / name)
        (root / "nbgrader_config.py").write_text(
            f"load_subconfig({str(REPO / 'nbgrader_config.py')!r})\n"
            "c = get_config()\n"
            f"c.CourseDirectory.root = {str(root)!r}\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
            "# One Unix user plays every student here; nbgrader would call that cheating.\n"
            "c.ExchangeCollect.check_owner = False\n")
        return cls(root, exchange)

    def configure(self, *lines: str) -> None:
        """Add settings (lines of Python) to the course's nbgrader_config.py."""
        config = self.root / "nbgrader_config.py"
        config.write_text(config.read_text() + "".join(f"{line}\n" for line in lines))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """An instructor's command, run in the course root."""
        return nbgrader(*args, cwd=self.root, check=check)

    def student_home(self, student: str) -> Path:
        """The folder a student works in (their Jupyter home)."""
        return self.root.parent / "students" / student

    def _student_action(self, student: str, action: str, assignment: str) -> None:
        """A student's exchange action (fetch_assignment, submit or fetch_feedback) as
        nbgrader's Assignment List extension runs it: nbgrader's exchange classes, here in
        this process (the command line adds 3 s of start-up to each)."""
        from nbgrader.auth import Authenticator
        from nbgrader.coursedir import CourseDirectory
        from nbgrader.exchange import ExchangeFactory
        from traitlets.config import Config

        home = self.student_home(student)
        home.mkdir(parents=True, exist_ok=True)
        config = Config()
        config.CourseDirectory.course_id = COURSE_ID
        config.CourseDirectory.assignment_id = assignment
        config.CourseDirectory.student_id = student
        config.Exchange.root = str(self.exchange)
        config.Exchange.assignment_dir = str(home)
        # A cache per student: a shared one would hand each student everyone's feedback.
        config.Exchange.cache = str(home / ".nbgrader-cache")
        exchange = ExchangeFactory(config=config)
        kind = {"fetch_assignment": exchange.FetchAssignment, "submit": exchange.Submit,
                "fetch_feedback": exchange.FetchFeedback}[action]
        kind(coursedir=CourseDirectory(config=config), authenticator=Authenticator(config=config),
             config=config).start()

    def enroll(self, students) -> None:
        """Put students on the course's roster (its gradebook), as `nbgrader db student
        add` does: only the roster's students are graded."""
        from nbgrader.api import Gradebook

        from .engine.course_config import load_course

        settings = load_course(self.root)
        with Gradebook(settings.db_url, settings.course_id) as book:
            for student in students:
                book.update_or_create_student(student)

    def fetch(self, assignments: dict[str, list[str]]) -> None:
        """Each student of the simulated class is enrolled, then fetches the released
        assignments they take ({assignment: students})."""
        self.enroll(dict.fromkeys(s for students in assignments.values() for s in students))
        for assignment, students in assignments.items():
            for student in students:
                self._student_action(student, "fetch_assignment", assignment)

    def submit(self, assignments: dict[str, list[str]]) -> None:
        """Every student submits their copy of each assignment they take
        ({assignment: students})."""
        for assignment, students in assignments.items():
            for student in students:
                self._student_action(student, "submit", assignment)

    def fetch_feedback(self, assignment: str, students: list[str]) -> dict[str, list[Path]]:
        """Each student fetches their released feedback; {student: the pages they got}."""
        for student in students:
            self._student_action(student, "fetch_feedback", assignment)
        return {s: sorted((self.student_home(s) / assignment / "feedback").glob("*/*.html"))
                for s in students}

    def validate(self, student: str, assignment: str) -> str:
        """What `nbgrader validate` tells a student about their notebook."""
        notebook = self.student_home(student) / assignment / f"{assignment}.ipynb"
        done = nbgrader("validate", str(notebook), cwd=self.student_home(student), check=False)
        return done.stdout + done.stderr

    def notebook_of(self, step: str, student: str, assignment: str) -> Path:
        """Where a student's notebook lies after a step: submitted, autograded, feedback..."""
        suffix = ".html" if step == "feedback" else ".ipynb"
        return self.root / step / student / assignment / f"{assignment}{suffix}"
