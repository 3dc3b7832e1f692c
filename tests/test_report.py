"""The class report: what it counts, what it writes, and how the command talks.

The whole path, from graded submissions of the demo's class to the report, runs in
test_nbgrader_cycle.py; here the report is checked on results written by hand."""

import csv
import io

import pytest
from conftest import command_here

from autograder.engine.results import SubmissionResult, write_json
from autograder.kit.grading import PartResult
from autograder.report import ClassReport, NoResults, read_results, write_report


def result(student: str, *parts: tuple[str, float, float, str | None], note: str = ""):
    return SubmissionResult("nn_from_scratch", [
        PartResult(part_id, score, most, "✔" if score == most else "✘ wrong", mistake)
        for part_id, score, most, mistake in parts], seed=1, student=student, note=note)


CLASS = [
    result("ada", ("forward", 2, 2, None), ("train_step", 3, 3, None), ("train", 3, 3, None)),
    result("cho", ("forward", 2, 2, None), ("train_step", 0, 3, "sign"), ("train", 0, 3, "sign")),
    result("dev", ("forward", 2, 2, None), ("train_step", 0, 3, "summed_all_entries"),
           ("train", 0, 3, None)),
    result("eli", ("forward", 2, 2, None), ("train_step", 0, 3, "sign"), ("train", 3, 3, None)),
    result("eve<x>", ("forward", 0, 2, "not_written"), ("train_step", 0, 3, "not_written"),
           ("train", 0, 3, "not_written")),
    result("fay", ("forward", 0, 2, "not_graded"), ("train_step", 0, 3, "not_graded"),
           ("train", 0, 3, "not_graded"), note="the notebook is not valid JSON"),
]


def test_it_counts_scores_passes_and_mistakes():
    report = ClassReport("nn_from_scratch", CLASS)
    assert report.max_score == 8
    distribution = dict(report.distribution())
    assert sum(distribution.values()) == 6
    assert distribution["0–0.8"] == 2 and distribution["7.2–8"] == 1
    assert report.pass_rates() == [("forward", 4), ("train_step", 1), ("train", 2)]
    every_part = ["forward", "train_step", "train"]
    assert report.mistakes() == [  # a student counts once per mistake; the maths first
        ("sign", 2, ["train_step", "train"]), ("summed_all_entries", 1, ["train_step"]),
        ("not_graded", 1, every_part), ("not_written", 1, every_part)]
    assert [r.student for r in report.needing_help()] == ["eve<x>", "fay", "cho", "dev"]


def test_the_csv_has_a_row_per_student_with_each_parts_score_and_mistake():
    rows = list(csv.DictReader(io.StringIO(ClassReport("nn_from_scratch", CLASS).csv())))
    assert [row["student"] for row in rows] == [r.student for r in CLASS]
    cho = rows[1]
    assert cho["score"] == "2" and cho["needs_help"] == "yes"
    assert cho["train_step score"] == "0" and cho["train_step mistake"] == "sign"
    assert rows[0]["train mistake"] == "" and rows[0]["needs_help"] == "no"


def test_the_page_has_its_plots_and_escapes_what_students_chose():
    page = ClassReport("nn_from_scratch", CLASS).html()
    assert page.count("<svg") == 3  # the distribution, the pass rates, the mistakes
    assert "opposite sign: the update climbs the gradient" in page
    assert "eve<x>" not in page and "eve&lt;x&gt;" in page
    assert "the notebook is not valid JSON" in page


def test_the_command_writes_the_report_and_says_where(tmp_path):
    for graded in CLASS:
        write_json(graded, tmp_path / "results" / "nn_from_scratch" / f"{graded.student}.json")
    done = command_here("report", "nn_from_scratch", "--course", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "6 students" in done.stdout and "need help (below 50% of the points)" in done.stdout
    assert f"report: {tmp_path / 'reports' / 'nn_from_scratch.html'}" in done.stdout
    assert (tmp_path / "reports" / "nn_from_scratch.csv").is_file()


def test_nothing_graded_is_a_clear_error(tmp_path):
    with pytest.raises(NoResults, match="grade the assignment first"):
        read_results(tmp_path)
    done = command_here("report", "nn_from_scratch", "--course", str(tmp_path))
    assert done.returncode == 1 and "no graded results in" in done.stderr


def test_written_files_are_complete(tmp_path):
    page, table = write_report(ClassReport("nn_from_scratch", CLASS), tmp_path / "out")
    assert page.read_text().rstrip().endswith("</html>")
    assert len(table.read_text().splitlines()) == 1 + len(CLASS)


def test_written_answers_show_beside_the_automatic_score_given_or_pending():
    """The engine grades the code; a person grades the written answer. The report says
    both, so its score out of 8 is not mistaken for the gradebook's out of 9."""
    written = {"ada": {"kink_written": (1.0, 1.0)}, "cho": {"kink_written": (None, 1.0)}}
    report = ClassReport("nn_from_scratch", CLASS[:2], written=written)
    assert "1 graded, 1 pending" in report.written_summary()
    assert "not in the automatic score" in report.summary()
    rows = list(csv.DictReader(io.StringIO(report.csv())))
    assert [row["kink_written (by hand)"] for row in rows] == ["1/1", "pending/1"]
    assert "1 graded, 1 pending" in report.html()
    assert ClassReport("nn_from_scratch", CLASS).written_summary() == ""
