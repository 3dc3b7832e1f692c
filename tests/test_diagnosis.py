"""The diagnosis names the mistake: the labelled corpus of wrong submissions
(`mistake_corpus.py`), graded by the engine in one run, beside correct submissions written in
other words than the answer key.

Each wrong submission gets the right score (0 on exactly the parts it breaks, full marks on
the others) and, on each part it breaks, the diagnosis its label says. Correct submissions
get full marks and no diagnosis. The hidden cases are fresh for every submission, as in real
grading, so a diagnosis that held on one seed only would fail here sooner or later.
"""

import re
from collections import Counter

import nbformat
import pytest
from mistake_corpus import CORPUS, CORRECT, UNNAMED, labels_hold

from autograder import references
from autograder.course import REPO
from autograder.engine import grade_assignment
from autograder.kit.diagnosis import MISTAKES
from autograder.references.graded import cached_reference
from autograder.submissions import answered, student_answers

pytestmark = pytest.mark.slow

NAMED = [(name, wrong) for name, corpus in CORPUS.items() for wrong in corpus]
# The wrong submissions for which no name fits: they fail their parts with no name.
WRONG = NAMED + [(name, wrong) for name, corpus in UNNAMED.items() for wrong in corpus]
# Names that state a plain fact about a result, not which mistake made it.
PLAIN_FACTS = {"not_finite", "shape"}
RIGHT = [(name, student, changes) for name, variants in CORRECT.items()
         for student, changes in variants]

# The mistakes the diagnosis must name, as the issue lists them (each in every assignment
# where it can occur).
REQUIRED = {"sign", "factor_of_2", "mean_vs_sum", "learning_rate_scale", "transposed",
            "bias_wrong_axis", "summed_all_entries", "sigmoid_twice", "delta_of_z",
            "wrong_epochs", "wrong_learning_rate", "float32", "wrong_device",
            "missing_zero_grad", "in_place_on_leaf", "rebound_parameter"}


def write_submission(course, assignment: str, student: str, edits) -> None:
    release = REPO / "assignments" / assignment / f"{assignment}.ipynb"
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True)
    notebook = answered(release, student_answers(assignment, None, edits))
    nbformat.write(notebook, folder / f"{assignment}.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every submission of the corpus and every correct variant, graded by the engine."""
    course = tmp_path_factory.mktemp("diagnosis")
    for assignment, wrong in WRONG:
        write_submission(course, assignment, wrong.student, wrong.edits)
    for assignment, student, changes in RIGHT:
        write_submission(course, assignment, student, changes)
    return {(assignment, result.student): result for assignment in CORPUS
            for result in grade_assignment(course, assignment, gradebook=False)}


@pytest.mark.parametrize(("assignment", "wrong"), WRONG,
                         ids=[f"{a}-{w.student}" for a, w in WRONG])
def test_each_mistake_gets_its_score_and_its_name(graded, assignment, wrong):
    result = graded[(assignment, wrong.student)]
    got = {part.part_id: part.mistake for part in result.parts if not part.passed}
    seen = {part.part_id: part.message for part in result.parts if not part.passed}
    assert labels_hold(wrong.fails, got), f"seed {result.seed}: {seen}"
    assert all(part.score == 0 for part in result.parts if part.part_id in wrong.fails)


@pytest.mark.parametrize(("assignment", "student", "changes"), RIGHT,
                         ids=[f"{a}-{s}" for a, s, _ in RIGHT])
def test_correct_submissions_get_full_marks_and_no_diagnosis(graded, assignment, student,
                                                             changes):
    result = graded[(assignment, student)]
    assert result.score == result.max_score, f"seed {result.seed}: {result.feedback()}"
    assert all(part.mistake is None for part in result.parts)


def test_training_parts_show_the_loss_curve_and_wrong_gradients_a_map(graded):
    result = graded[("nn_from_scratch", "sign_error_term")]
    parts = {part.part_id: part for part in result.parts}
    (error_map,) = parts["train_step"].figures
    (curve,) = parts["train"].figures
    assert error_map.startswith("<svg") and "relative error of the entry" in error_map
    assert curve.count("<polyline") == 2 and "no values shown" in curve
    key = {part.part_id: part for part in graded[("nn_from_scratch", "answer_key")].parts}
    assert len(key["train"].figures) == 1 and key["train_step"].figures == ()


def shown_text(part) -> str:
    """What a student reads of a part's verdict: its message and its figures' words."""
    return part.message + " ".join(text for svg in part.figures
                                   for text in re.findall(r">([^<>]+)<", svg))


def test_no_message_or_figure_shows_an_expected_value(graded):
    checked = 0
    for (assignment, _), result in graded.items():
        for verdict in result.parts:
            part = references.get(assignment).part(verdict.part_id)
            case = next((case for case in part.cases("hidden", result.seed)
                         if case.label in verdict.message), None)
            if verdict.passed or case is None:
                continue
            shown = shown_text(verdict)
            for expected in cached_reference(part, case).values():
                for value in expected.flatten().tolist():
                    digits = f"{value:.4g}"  # as a message would print it
                    if len(digits.strip("-0.").replace(".", "")) >= 3:  # not 0, 1, 0.5...
                        assert digits not in shown, (assignment, verdict.part_id, digits)
                        checked += 1
    assert checked > 1000


def test_every_required_mistake_is_labelled_twice_where_it_occurs():
    for name, corpus in CORPUS.items():
        counts = Counter(wrong.mistake for wrong in corpus)
        assert all(count >= 2 for count in counts.values()), (name, counts)
        assert set(counts) <= set(MISTAKES)
    labelled = {wrong.mistake for _, wrong in NAMED}
    assert labelled >= REQUIRED, REQUIRED - labelled
    for assignment, wrong in NAMED:  # the parts exist; the mistake is made in the first
        parts = {part.id for part in references.get(assignment).parts}
        assert set(wrong.fails) <= parts and next(iter(wrong.fails.values())) == wrong.mistake
    for assignment, wrong in WRONG[len(NAMED):]:  # no name fits: none is labelled
        parts = {part.id for part in references.get(assignment).parts}
        assert wrong.mistake is None and set(wrong.fails) <= parts
        assert all(MISTAKES[name].maths is False or name in PLAIN_FACTS
                   for name in wrong.fails.values() if name is not None)
