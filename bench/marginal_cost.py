"""The engine's marginal cost per submission, assignment by assignment.

    .venv/bin/python bench/marginal_cost.py            # 2 and 12 answer keys, one job
    .venv/bin/python bench/marginal_cost.py --n 30

For each assignment, the answer key is submitted by `small` and by `n` students of a fresh
course folder, and the engine grades each folder in the sandbox with one job and no
gradebook: marginal = (T(n) - T(small)) / (n - small), the seconds each further submission
adds once the engine has started (the bar of issue 18: below 0.3 s on this machine).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder import assignments
from autograder.course import REPO
from autograder.engine import grade_assignment
from autograder.submissions import answered, student_answers


def course_of(root: Path, assignment: str, students: int) -> Path:
    """A course folder holding `students` submissions of the answer key."""
    release = REPO / "assignments" / assignment / f"{assignment}.ipynb"
    notebook = answered(release, student_answers(assignment))
    for index in range(students):
        folder = root / "submitted" / f"key{index:03d}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / f"{assignment}.ipynb")
    return root


def seconds_to_grade(assignment: str, students: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        course = course_of(Path(folder), assignment, students)
        start = time.perf_counter()
        results = grade_assignment(course, assignment, gradebook=False, jobs=1)
        elapsed = time.perf_counter() - start
    full = sum(part.points for part in assignments.get(assignment).parts)
    if len(results) != students or any(result.score != full for result in results):
        sys.exit(f"{assignment}: the answer key did not get {full} points every time")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="submissions of the large run")
    parser.add_argument("--small", type=int, default=2, help="submissions of the small run")
    args = parser.parse_args()
    seconds_to_grade("single_neuron", 1)  # the first run pays for the fork server's start
    print(f"| assignment | {args.small} subs s | {args.n} subs s | marginal s |")
    print("| --- | ---: | ---: | ---: |")
    for assignment in assignments.ASSIGNMENTS:
        small, large = (seconds_to_grade(assignment, count) for count in (args.small, args.n))
        marginal = (large - small) / (args.n - args.small)
        print(f"| {assignment} | {small:.2f} | {large:.2f} | {marginal:.3f} |", flush=True)


if __name__ == "__main__":
    main()
