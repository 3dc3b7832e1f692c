"""Wall time per submission: the sandboxed engine vs `nbgrader autograde`, on the demo's class.

    .venv/bin/python bench/grade_timing.py [WORKDIR]

Runs the demo's nbgrader cycle once (to have a collected course), then times, on the same
submissions: `nbgrader autograde --force` for the whole class and for one student, and the
engine's `grade_assignment` (serial, one sandboxed child per submission).
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

from autograder import demo
from autograder.course import Course
from autograder.engine import grade_assignment

ASSIGNMENT = "nn_from_scratch"


def timed(action) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def main(workdir: Path) -> None:
    demo.run_demo(workdir)
    course = Course(workdir / "course", workdir / "exchange")
    students = len(demo.ROSTER[ASSIGNMENT])
    whole = timed(lambda: course.run("autograde", ASSIGNMENT, "--force", check=False))
    one = timed(lambda: course.run("autograde", ASSIGNMENT, "--force", "--student=ada"))
    results = workdir / "engine-results"
    shutil.rmtree(results, ignore_errors=True)
    engine = timed(lambda: grade_assignment(course.root, ASSIGNMENT, results=results))
    print(f"\n{students} submissions of {ASSIGNMENT}")
    print(f"nbgrader autograde, whole class: {whole:6.1f} s ({whole / students:.2f} s each)")
    print(f"nbgrader autograde, one student: {one:6.1f} s")
    print(f"engine grade_assignment:         {engine:6.1f} s ({engine / students:.2f} s each, "
          f"gradebook and feedback notebooks included)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "bench")
