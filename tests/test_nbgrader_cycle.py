"""The whole nbgrader cycle, for real: release, fetch, submit, collect, autograde,
feedback and export, for the demo's class of simulated students."""

import csv

import pytest

from autograder import demo
from autograder.course import COURSE_ID

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    rows = demo.run_demo(workdir)
    return workdir, {(row["assignment"], row["student"]): row for row in rows}


def total(row):
    return sum(score for score, _ in row["scores"].values())


def maximum(row):
    return sum(most for _, most in row["scores"].values())


def test_every_student_gets_a_row_and_a_feedback_file(cycle):
    workdir, rows = cycle
    for assignment, students in demo.ROSTER.items():
        for student in students:
            assert (assignment, student.id) in rows
            feedback = workdir / "course" / "feedback" / student.id / assignment
            assert (feedback / f"{assignment}.html").is_file()


def test_answer_key_and_perfect_students_score_full_marks(cycle):
    _, rows = cycle
    for assignment, students in demo.ROSTER.items():
        perfect = [s.id for s in students if s.id in ("ada", "key", "hal", "gus")]
        assert {"ada", "key"} <= set(perfect)
        for student in perfect:
            row = rows[(assignment, student)]
            assert row["scores"] and total(row) == maximum(row) > 0, (student, row)


def test_blank_release_scores_zero(cycle):
    _, rows = cycle
    for assignment in demo.ROSTER:
        row = rows[(assignment, "eve")]
        assert row["scores"] and total(row) == 0


def test_nn_mistakes_lose_exactly_the_parts_they_break(cycle):
    _, rows = cycle
    for student in ("cho", "dev"):
        scores = rows[("nn_from_scratch", student)]["scores"]
        assert scores["train_step"][0] == 0 and scores["train"][0] == 0
        assert all(scores[p][0] == scores[p][1] for p in ("forward", "sigmoid_delta"))
    ben = rows[("nn_from_scratch", "ben")]["scores"]
    assert total({"scores": ben}) == 4


# Per assignment: cho's mistake, the one part it must cost, ben's partial total, and a phrase
# of the feedback cho gets.
TYPICAL_MISTAKES = {
    "single_neuron": ("linear", 5, "losses is wrong"),
    "autograd_basics": ("manual_step", 4, "the parameters did not change"),
    "two_layer_net": ("relu_grad_vectorized", 4, "relu_grad is wrong"),
}


@pytest.mark.parametrize("assignment", list(TYPICAL_MISTAKES))
def test_typical_mistake_loses_exactly_its_part(cycle, assignment):
    workdir, rows = cycle
    broken, ben_total, feedback = TYPICAL_MISTAKES[assignment]
    cho = rows[(assignment, "cho")]["scores"]
    assert cho[broken][0] == 0
    assert all(score == most for part, (score, most) in cho.items() if part != broken)
    assert total(rows[(assignment, "ben")]) == ben_total
    html = (workdir / f"course/feedback/cho/{assignment}/{assignment}.html").read_text()
    assert feedback in html


def test_broken_notebook_gets_a_clear_message_and_stops_nothing(cycle):
    workdir, rows = cycle
    row = rows[("nn_from_scratch", "fay")]
    assert row["scores"] == {}
    assert "not valid JSON (line" in row["note"]
    html = (workdir / "course/feedback/fay/nn_from_scratch/nn_from_scratch.html").read_text()
    assert "not valid JSON" in html


def test_feedback_explains_mistakes_without_showing_hidden_tests(cycle):
    workdir, _ = cycle
    html = (workdir / "course/feedback/dev/nn_from_scratch/nn_from_scratch.html").read_text()
    assert "All its entries are equal" in html
    for student in ("ada", "dev", "eve"):
        page = (workdir / f"course/feedback/{student}/nn_from_scratch/nn_from_scratch.html")
        assert "hidden=True" not in page.read_text()


def test_grades_export_to_csv(cycle):
    workdir, rows = cycle
    with open(workdir / "grades.csv") as f:
        exported = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    for key, row in rows.items():
        if row["scores"]:
            assert float(exported[key]["raw_score"]) == total(row)
    assert COURSE_ID  # the export ran in the demo's course, named in its config
