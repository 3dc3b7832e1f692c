"""The grading service shares what it writes in a course with the course root's group (so the
instructor's formgrader can autograde over it), never with a group that holds a student:
real unix accounts and groups, a real gradebook, and the service's real command line."""

import grp
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder.engine.course_config import load_course
from autograder.service.serve import shared_with_instructors

ASSIGNMENT = "single_neuron"
STEPS = ("submitted", "autograded", "feedback")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    os.geteuid() != 0, reason="makes unix accounts and groups")]


@pytest.fixture
def accounts():
    """A group of its own, with one student and one teaching assistant in it (names unique to
    the run), removed afterwards."""
    prefix = f"bpg{secrets.token_hex(3)}"
    group, student, assistant = prefix, f"{prefix}-ada", f"{prefix}-ta"
    subprocess.run(["groupadd", group], check=True)
    for account in (student, assistant):
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", "--groups", group, account], check=True)
    try:
        yield group, student, assistant
    finally:
        for account in (student, assistant):
            subprocess.run(["userdel", account], check=False)
        subprocess.run(["groupdel", group], check=False)


@pytest.fixture
def course(generated_course, accounts):
    """A course whose root belongs to the accounts' group, ada on its roster."""
    from nbgrader.api import Gradebook

    group, student, _ = accounts
    workdir = Path(tempfile.mkdtemp(prefix="course-group-", dir="/tmp"))
    made = generated_course(workdir, ASSIGNMENT)
    os.chown(made.root, -1, grp.getgrnam(group).gr_gid)
    loaded = load_course(made.root)
    with Gradebook(loaded.db_url, loaded.course_id) as book:
        book.add_student(student)
    return loaded


def test_a_group_with_a_student_in_it_is_never_given_the_service_files(course, accounts):
    group, student, _ = accounts
    assert shared_with_instructors(course, {student}) is False
    for step in STEPS:
        folder = course.root / step
        assert not folder.exists() or not folder.stat().st_mode & 0o020, step


def test_a_group_of_staff_shares_the_step_folders(course, accounts):
    group, student, assistant = accounts
    assert shared_with_instructors(course, {"someone-else"}) is True
    for step in STEPS:
        mode = (course.root / step).stat()
        assert mode.st_gid == grp.getgrnam(group).gr_gid and mode.st_mode & 0o2070 == 0o2070


def test_the_service_refuses_such_a_course_in_one_line(course, accounts):
    group, student, _ = accounts
    done = subprocess.run([sys.executable, "-m", "autograder", "serve", "--course",
                           str(course.root)], capture_output=True, text=True, timeout=120)
    refusals = [line for line in done.stdout.splitlines() if "holds students" in line]
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert len(refusals) == 1 and group in refusals[0] and student in refusals[0]
