"""The engine's marginal cost per submission, assignment by assignment.

    .venv/bin/python bench/marginal_cost.py            # 2 and 12 answer keys, one job
    .venv/bin/python bench/marginal_cost.py --n 30 nn_from_scratch

For each assignment, the answer key is submitted by `small` and by `n` students of a fresh
course folder, and the engine grades each folder in the sandbox with one job and no
gradebook: marginal = (T(n) - T(small)) / (n - small), the seconds each further submission
adds once the engine has started (the bars of issue 29: at most 0.1 s for nn_from_scratch,
0.3 s for every other assignment, on an idle machine; `make bench` runs it). The
CPU columns count the same way the CPU seconds of the grading process and of the sandboxes
(the fork server's process tree): on a machine shared with other work, the wall clock
measures the others too.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder import references
from autograder.course import REPO
from autograder.engine import grade_assignment
from autograder.engine.launch import default_launcher
from autograder.submissions import answered, student_answers

# Issue 29's bars on the marginal seconds a submission (on an idle machine).
BAR = 0.3
BARS = {"nn_from_scratch": 0.1}


def course_of(root: Path, assignment: str, students: int) -> Path:
    """A course folder holding `students` submissions of the answer key."""
    release = REPO / "assignments" / assignment / f"{assignment}.ipynb"
    notebook = answered(release, student_answers(assignment))
    for index in range(students):
        folder = root / "submitted" / f"key{index:03d}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")
    return root


def seconds_to_grade(assignment: str, students: int) -> tuple[float, float, float]:
    """Wall seconds, the grading process's CPU seconds and the sandboxes' CPU seconds."""
    with tempfile.TemporaryDirectory() as folder:
        course = course_of(Path(folder), assignment, students)
        launcher = default_launcher()
        start, cpu, sandbox = time.perf_counter(), time.process_time(), sandbox_cpu(launcher)
        results = grade_assignment(course, assignment, gradebook=False, jobs=1)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        time.sleep(0.2)  # the last child reaped
        sandbox = sandbox_cpu(launcher) - sandbox
    full = sum(part.points for part in references.get(assignment).parts)
    if len(results) != students or any(result.score != full for result in results):
        sys.exit(f"{assignment}: the answer key did not get {full} points every time")
    return elapsed, cpu, sandbox


def sandbox_cpu(launcher) -> float:
    """The fork server's CPU seconds so far, with every child it has reaped (its sandboxes).
    In bubblewrap the launcher knows bubblewrap's init; the fork server is its child."""
    pid = launcher.process.pid
    if str(launcher.spool).startswith("/proc/"):
        init = Path(launcher.spool).parts[2]
        while not (children := Path(f"/proc/{init}/task/{init}/children").read_text()):
            time.sleep(0.05)  # bubblewrap is starting it
        pid = children.split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="submissions of the large run")
    parser.add_argument("--small", type=int, default=2, help="submissions of the small run")
    parser.add_argument("assignments", nargs="*", default=list(references.ASSIGNMENTS))
    args = parser.parse_args()
    seconds_to_grade("single_neuron", 1)  # the first run pays for the fork server's start
    print(f"| assignment | {args.small} subs s | {args.n} subs s | marginal s "
          f"| marginal CPU s: grading process | sandbox | both | bar (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for assignment in args.assignments:
        small, large = (seconds_to_grade(assignment, count) for count in (args.small, args.n))
        wall, trusted, sandbox = ((b - a) / (args.n - args.small)
                                  for a, b in zip(small, large, strict=True))
        bar = BARS.get(assignment, BAR)
        print(f"| {assignment} | {small[0]:.2f} | {large[0]:.2f} | {wall:.3f} | {trusted:.3f} "
              f"| {sandbox:.3f} | {trusted + sandbox:.3f} | {bar:g}: "
              f"{'met' if wall <= bar else 'MISSED'} |", flush=True)


if __name__ == "__main__":
    main()
