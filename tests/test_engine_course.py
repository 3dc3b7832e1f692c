"""Grading a whole assignment: a run killed midway resumes without losing or duplicating a
grade, and grading again changes nothing."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import command_here

from autograder import demo
from autograder.course import REPO
from autograder.engine.results import read_json

pytestmark = pytest.mark.slow

ASSIGNMENT = "nn_from_scratch"
STUDENTS = {s.id: s for s in demo.ROSTER[ASSIGNMENT]
            if s.id in ("ada", "ben", "cho", "dev", "eve", "fay")}
EXPECTED = {"ada": 15, "ben": 4, "cho": 6, "dev": 6, "eve": 0, "fay": 0}


@pytest.fixture
def course(tmp_path) -> Path:
    release = REPO / "assignments" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    for student in STUDENTS.values():
        path = tmp_path / "submitted" / student.id / ASSIGNMENT / release.name
        path.parent.mkdir(parents=True)
        path.write_bytes(release.read_bytes())
        demo.write_submission(path, student, ASSIGNMENT)
    return tmp_path


def grade_command(course: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autograder", "grade-assignment", ASSIGNMENT, "--course",
         str(course), "--no-gradebook", "--part-seconds", "20", *extra],
        stdout=subprocess.PIPE, text=True, start_new_session=True)


def lines_of(process: subprocess.Popen) -> dict[str, str]:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0
    return {line.split()[0]: line for line in out.splitlines()}


def stored(course: Path) -> dict[str, bytes]:
    folder = course / "results" / ASSIGNMENT
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_killed_run_resumes_and_grading_again_changes_nothing(course):
    first = grade_command(course)
    graded_before_kill = []
    for line in first.stdout:
        graded_before_kill.append(line.split()[0])
        if len(graded_before_kill) == 2:
            os.killpg(first.pid, signal.SIGKILL)
            break
    first.wait()
    # A kill can land between a temporary file's write and its rename: every file under
    # its own name is whole, and the next run removes the temporary litter.
    before = {name: content for name, content in stored(course).items()
              if not Path(name).name.startswith(".")}
    for content in before.values():
        json.loads(content)
    assert 2 <= len([n for n in before if not n.startswith("gradescope/")]) < len(STUDENTS)

    resumed = lines_of(grade_command(course, "--jobs", "2"))
    assert sorted(resumed) == sorted(STUDENTS)
    for student in graded_before_kill:
        assert "already graded" in resumed[student]
    after = stored(course)
    assert not [n for n in after if Path(n).name.startswith(".")], "litter was left"
    for name, content in before.items():
        assert after[name] == content, f"{name} was graded twice"
    for student, points in EXPECTED.items():
        result = read_json(course / "results" / ASSIGNMENT / f"{student}.json")
        assert result.score == points, result.feedback()
        gradescope = json.loads((course / "results" / ASSIGNMENT / "gradescope" /
                                 f"{student}.json").read_text())
        assert gradescope["score"] == points
    assert "not valid JSON" in read_json(course / "results" / ASSIGNMENT / "fay.json").note

    again = command_here("grade-assignment", ASSIGNMENT, "--course", str(course),
                         "--no-gradebook")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(STUDENTS)
    assert all("already graded" in line for line in lines)
    assert stored(course) == after

    regraded = lines_of(grade_command(course, "--regrade"))
    assert all("already" not in line for line in regraded.values())
    for student in STUDENTS:
        old = json.loads(after[f"{student}.json"])
        new = read_json(course / "results" / ASSIGNMENT / f"{student}.json").to_json()
        assert (new["seed"], new["parts"]) == (old["seed"], old["parts"])
