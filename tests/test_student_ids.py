"""One rule for student ids, before any folder, command, page or file uses one."""

import pytest

from autograder.student_ids import is_student_id, shown, student_id_problem


@pytest.mark.parametrize("name", ["ada", "ada.lovelace", "a_b-c", "ada@uni.edu", "_svc",
                                  "s0001", "A" * 64])
def test_ordinary_ids_pass(name):
    assert is_student_id(name), student_id_problem(name)


@pytest.mark.parametrize("name", [
    "", "*", "..", "a..b", ".hidden", "-rf", "=HYPERLINK(1)", "+1", "@SUM(1)", "a/b", "a\\b",
    "a\nb", "a\tb", "a\x1b[2Jb", "a b", "a+b", "<img src=x onerror=alert(1)>", 'a"b', "a'b",
    "a&b", "ädä", "a\u202eb", "a\ud800b", "A" * 65])
def test_what_could_be_a_path_a_formula_markup_or_a_control_is_refused(name):
    problem = student_id_problem(name)
    assert problem and "\n" not in problem and "\x1b" not in problem


def test_shown_is_printable_ascii_whatever_the_name():
    for name in ("a\nb\x1b[31m", "\ud800", "x" * 500):
        assert shown(name).isprintable() and shown(name).isascii()


@pytest.mark.slow
def test_grade_assignment_refuses_a_folder_whose_name_is_not_an_id(tmp_path):
    """Folders in submitted/ are named by whoever wrote them: an odd one is named in one
    printable line, gets no result file, and the run exits 1; the others are graded."""
    from conftest import command_here

    from autograder.course import REPO

    release = REPO / "assignments" / "nn_from_scratch" / "nn_from_scratch.ipynb"
    odd = ["=1+1", "<img src=x onerror=alert(1)>", "a\nb\x1b[31m"]
    for student in ["ada", *odd]:
        path = tmp_path / "submitted" / student / "nn_from_scratch" / release.name
        path.parent.mkdir(parents=True)
        path.write_bytes(release.read_bytes())
    done = command_here("grade-assignment", "nn_from_scratch", "--course", str(tmp_path),
                        "--no-gradebook")
    assert done.returncode == 1, done.stdout + done.stderr
    results = {path.name for path in (tmp_path / "results" / "nn_from_scratch").glob("*.json")}
    assert results == {"ada.json"}
    out = done.stdout + done.stderr
    assert "\x1b" not in out and "student id is refused" in out
    for name in odd:  # each named, in printable ASCII
        assert f"{shown(name)}: not graded: the student id is refused" in out
