"""The whole nbgrader cycle, for real: release, fetch, submit, collect, autograde (in the
sandbox), feedback and export, for the demo's class of simulated students."""

import base64
import csv
import html
import re
import shutil

import pytest

from autograder import demo
from autograder.course import COURSE_ID, Course

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


def page_text(path) -> str:
    """A feedback page as its reader sees it: without tags (syntax highlighting splits the
    code into spans), entities decoded, lines joined (long messages are wrapped)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", path.read_text())).split())


def embedded_figures(path) -> list[str]:
    """The SVG figures a feedback page embeds as images (data: URLs)."""
    return [base64.b64decode(data).decode() for data in
            re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", path.read_text())]


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


# Per assignment: the parts cho's mistake must cost, ben's partial total, and a phrase of
# the feedback cho gets. two_layer_net's speed part times cho's wrong vectorized gradient.
TYPICAL_MISTAKES = {
    "single_neuron": ({"linear"}, 5, "losses is wrong"),
    "autograd_basics": ({"manual_step"}, 4, "the parameters did not change"),
    # backward and train call the vectorized gradient, and their cases hold a unit at
    # exactly h = 0 (train's starts dead: a slope of 1 at 0 revives it)
    "two_layer_net": ({"relu_grad_vectorized", "speed", "backward", "train"}, 4,
                      "relu_grad is wrong"),
    "autograd_from_scratch": ({"local_gradients", "backward", "mlp_gradients", "train_mlp"}, 7,
                              "_backward of a * b is wrong"),
}


@pytest.mark.parametrize("assignment", list(TYPICAL_MISTAKES))
def test_typical_mistake_loses_exactly_its_parts(cycle, assignment):
    workdir, rows = cycle
    broken, ben_total, feedback = TYPICAL_MISTAKES[assignment]
    cho = rows[(assignment, "cho")]["scores"]
    assert {part for part, (score, most) in cho.items() if score < most} == broken
    assert all(cho[part][0] == 0 for part in broken)
    assert total(rows[(assignment, "ben")]) == ben_total
    assert feedback in page_text(workdir / f"course/feedback/cho/{assignment}/{assignment}.html")


def test_broken_notebook_gets_a_clear_message_and_stops_nothing(cycle):
    workdir, rows = cycle
    row = rows[("nn_from_scratch", "fay")]
    assert row["scores"] and total(row) == 0
    assert "not valid JSON (line" in row["note"]
    page = (workdir / "course/feedback/fay/nn_from_scratch/nn_from_scratch.html").read_text()
    assert "not valid JSON" in page


def test_feedback_explains_mistakes_without_showing_hidden_tests(cycle):
    workdir, _ = cycle
    dev = page_text(workdir / "course/feedback/dev/nn_from_scratch/nn_from_scratch.html")
    assert "All its entries are equal" in dev
    pages = list((workdir / "course" / "feedback").glob("*/*/*.html"))
    assert len(pages) == sum(map(len, demo.ROSTER.values()))
    for page in pages:  # failing checks included: no traceback quotes the test cell
        text = page_text(page)
        assert "hidden=True" not in text and "HIDDEN TESTS" not in text, page


def test_feedback_shows_the_loss_curve_and_where_a_gradient_differs(cycle):
    workdir, _ = cycle
    cho = workdir / "course/feedback/cho/nn_from_scratch/nn_from_scratch.html"
    titles = [re.search(r"<title>(.*?)</title>", svg).group(1) for svg in embedded_figures(cho)]
    assert any(t.startswith("train: losses per epoch") for t in titles), titles
    assert any(t.startswith("train_step: where the update of w1 differs") for t in titles)
    assert "opposite sign" in page_text(cho)


def test_the_demo_writes_a_class_report_per_assignment(cycle):
    workdir, _ = cycle
    for assignment, students in demo.ROSTER.items():
        page = (workdir / "reports" / f"{assignment}.html").read_text()
        table = (workdir / "reports" / f"{assignment}.csv").read_text().splitlines()
        assert page.count("<svg") >= 2 and len(table) == 1 + len(students)
    nn = (workdir / "reports/nn_from_scratch.html").read_text()
    assert "opposite sign: the update climbs the gradient" in nn  # cho
    assert "the tutorial&#x27;s d_hidn.sum()" in nn  # dev
    helped = nn.split("Students who need help")[1]
    assert "<td>eve</td>" in helped and "<td>fay</td>" in helped and "<td>ada</td>" not in helped


def test_grades_export_to_csv(cycle):
    workdir, rows = cycle
    with open(workdir / "grades.csv") as f:
        exported = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    for key, row in rows.items():
        if row["scores"]:
            assert float(exported[key]["raw_score"]) == total(row)
    assert COURSE_ID  # the export ran in the demo's course, named in its config


@pytest.fixture(scope="module")
def engine_course(cycle, tmp_path_factory):
    """The engine's grades of the demo's class: every assignment as the demo graded it for
    its class reports (workdir/engine-results), and nn_from_scratch graded again by the
    engine into a copy of the demo's course after nbgrader autograde (its gradebook)."""
    from autograder.engine import grade_assignment
    from autograder.engine.results import read_json

    workdir, rows = cycle
    root = tmp_path_factory.mktemp("engine") / "course"
    shutil.copytree(workdir / "course", root)
    config = root / "nbgrader_config.py"
    config.write_text(config.read_text().replace(str(workdir / "course"), str(root)))
    results = {(assignment, student.id): read_json(
        workdir / "engine-results" / assignment / f"{student.id}.json")
        for assignment, students in demo.ROSTER.items() for student in students}
    regraded = {("nn_from_scratch", r.student): r
                for r in grade_assignment(root, "nn_from_scratch")}
    assert set(regraded) == {key for key in results if key[0] == "nn_from_scratch"}
    return root, rows, results, regraded


def test_engine_and_nbgrader_autograde_agree(engine_course):
    _, rows, results, regraded = engine_course
    for key, result in [*results.items(), *regraded.items()]:
        engine_scores = {p.part_id: (p.score, p.max_score) for p in result.parts}
        differ = {part for part, score in engine_scores.items()
                  if rows[key]["scores"].get(part) != score}
        assert not differ, (key, differ, result.feedback())
    assert "not valid JSON" in results[("nn_from_scratch", "fay")].note
    assert "not valid JSON" in regraded[("nn_from_scratch", "fay")].note
    assert {assignment for assignment, _ in results} == set(demo.ROSTER)


def test_engine_grades_feed_nbgrader_feedback_and_export(engine_course):
    root, _, _, results = engine_course
    course = Course(root, root.parent / "exchange")
    course.run("generate_feedback", "nn_from_scratch", "--force")
    course.run("export", f"--to={root / 'grades.csv'}")
    page = page_text(course.notebook_of("feedback", "dev", "nn_from_scratch"))
    assert "All its entries are equal" in page and "hidden=True" not in page
    figures = embedded_figures(course.notebook_of("feedback", "dev", "nn_from_scratch"))
    assert any("train: losses per epoch" in svg for svg in figures)  # the engine's
    deleted = course.notebook_of("feedback", "gus", "nn_from_scratch").read_text()
    assert "sigmoid_activation is correct on" in deleted  # its test cell was deleted
    with open(root / "grades.csv") as f:
        exported = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(f)
                    if r["assignment"] == "nn_from_scratch"}
    for (assignment, student), result in results.items():
        if assignment == "nn_from_scratch":
            assert exported[student] == result.score, student
