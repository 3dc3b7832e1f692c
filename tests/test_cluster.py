"""Grading on a real Dask cluster: a `dask scheduler` and two `dask worker`s on loopback.

One worker is killed while it grades; the scheduler gives its unfinished submissions to
the other, and every submission ends with exactly one grade.
"""

import collections
import json

import nbformat
import pytest

from autograder.engine import grade_assignment
from autograder.engine.cluster import dask_executor, local_cluster
from autograder.submissions import Edit, answered, student_answers

pytestmark = pytest.mark.slow

ASSIGNMENT = "nn_from_scratch"
# Every notebook takes a while to run, so that the killed worker is grading when it dies.
SLOW = Edit("sigmoid_activation_answer", "def sigmoid_activation(z):",
            "import time\ntime.sleep(1.5)\n\n\ndef sigmoid_activation(z):")
SIGN = Edit("train_step_answer", "(y - output) * sigmoid_delta", "(output - y) * sigmoid_delta")
# Ends the sandboxed process in every part that calls it: a student's own failure, graded
# once with a message, never retried as if a worker had been lost.
EXIT = Edit("sigmoid_delta_answer", "    return a * (1 - a)", "    import os\n    os._exit(3)")
# The points of each kind out of 15: a sign error costs train_step, train and learn_2d (9); an
# exit in sigmoid_delta costs those and sigmoid_delta (10).
KINDS = {"correct": ((SLOW,), 15), "sign": ((SLOW, SIGN), 6), "exits": ((SLOW, EXIT), 5)}
STUDENTS = {f"s{index}": kind for index, kind in enumerate(list(KINDS) * 3)}


@pytest.fixture(scope="module")
def course(tmp_path_factory, generated_course):
    course = generated_course(tmp_path_factory.mktemp("cluster"), ASSIGNMENT)
    release = course.root / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    for student, kind in STUDENTS.items():
        folder = course.root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        edits, _ = KINDS[kind]
        nbformat.write(answered(release, student_answers(ASSIGNMENT, edits=edits)),
                       folder / f"{ASSIGNMENT}.ipynb")
    return course


def test_a_lost_worker_loses_no_submission_and_grades_none_twice(course):
    calls = collections.Counter()
    with local_cluster(workers=2) as (address, workers), dask_executor(address) as executor:
        doomed = workers[0]

        def on_result(result, graded_now):
            calls[result.student] += 1
            if sum(calls.values()) == 1:  # the first result: one worker dies mid-grading
                doomed.kill()
                doomed.wait()

        results = grade_assignment(course.root, ASSIGNMENT, executor=executor,
                                   on_result=on_result)
        assert doomed.poll() is not None and workers[1].poll() is None

    assert calls == {student: 1 for student in STUDENTS}
    for result in results:
        _, points = KINDS[STUDENTS[result.student]]
        assert result.score == points, result.feedback()
    stored = sorted(p.name for p in (course.root / "results" / ASSIGNMENT).glob("*.json")
                    if not p.name.endswith(".gradescope.json"))
    assert stored == sorted(f"{student}.json" for student in STUDENTS)
    exits = json.loads((course.root / "results" / ASSIGNMENT / "s2.json").read_text())
    assert "os._exit" in exits["parts"][2]["message"]


def test_the_cluster_gives_the_grades_of_a_local_run(course, tmp_path):
    local = {r.student: r.score for r in grade_assignment(
        course.root, ASSIGNMENT, results=tmp_path / "local", gradebook=False, jobs=2)}
    assert local == {student: KINDS[kind][1] for student, kind in STUDENTS.items()}
